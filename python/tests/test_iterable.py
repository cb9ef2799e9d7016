"""SeispipeIterableDataset: every sample exactly once per epoch for every
split across ranks and DataLoader workers, deterministic for (seed, epoch),
shard-level shuffling with a bounded buffer; and both datasets under real
torch DataLoaders with forked workers."""

import itertools
import multiprocessing

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

import seispipe_data
from conftest import reference
from seispipe_data import SeispipeDataset, SeispipeIterableDataset

N = 18  # samples of data.out


def consumers(path, world, workers, epoch, **kw):
    """(rank, worker) → the dataset indices __iter__ yields there, in order."""
    out = {}
    for rank in range(world):
        ds = SeispipeIterableDataset(path, rank=rank, world_size=world, return_index=True,
                                     labels=False, transform=lambda x: x[:1, :1, :1], **kw)
        ds.set_epoch(epoch)
        for w in range(workers):
            original = seispipe_data._torch_worker
            seispipe_data._torch_worker = lambda w=w: (w, workers)
            try:
                out[rank, w] = [i for i, _ in ds]
            finally:
                seispipe_data._torch_worker = original
            assert out[rank, w] == [int(i) for i in _buffered(ds, w, workers)]
        assert sum(len(out[rank, w]) for w in range(workers)) == len(ds)
    return out


def _buffered(ds, worker, workers):
    """The order __iter__ must follow: indices() through the shuffle buffer,
    written here from its definition (reservoir swap, then the rest permuted)."""
    idx = list(ds.indices(worker, workers))
    if not ds.shuffle:
        return idx
    rng = np.random.default_rng([ds.seed, ds.epoch, ds.rank, worker])
    buf, out = [], []
    for i in idx:
        if len(buf) < ds.buffer_size:
            buf.append(i)
            continue
        j = int(rng.integers(len(buf)))
        buf[j], i = i, buf[j]
        out.append(i)
    return out + [buf[j] for j in rng.permutation(len(buf))]


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_sample_once_per_epoch_for_every_split(data, shuffle):
    for world, workers, epoch in itertools.product([1, 2, 3, 5, 19], [1, 2, 3, 4], [0, 1]):
        got = consumers(data.out, world, workers, epoch, shuffle=shuffle, seed=7,
                        buffer_size=4)
        seen = sorted(i for v in got.values() for i in v)
        assert seen == list(range(N)), (world, workers, epoch)
        per_rank = [sum(len(got[r, w]) for w in range(workers)) for r in range(world)]
        assert max(per_rank) - min(per_rank) <= 1, per_rank


def test_order_is_a_function_of_seed_and_epoch(data):
    def order(seed, epoch):
        ds = SeispipeIterableDataset(data.out, seed=seed, return_index=True, labels=False,
                                     rank=0, world_size=1)
        ds.set_epoch(epoch)
        return [i for i, _ in ds]

    a = order(1, 0)
    assert a == order(1, 0) and sorted(a) == list(range(N))
    assert a != order(1, 1) and a != order(2, 0)
    plain = SeispipeIterableDataset(data.out, shuffle=False, return_index=True, labels=False)
    assert [i for i, _ in plain] == list(range(N))


def test_shuffling_moves_whole_shards_and_the_buffer_bounds_the_mixing(data):
    ds = SeispipeIterableDataset(data.out, seed=5, buffer_size=1, return_index=True,
                                 labels=False)
    order = ds.epoch_order()
    shard = [ds.dataset.location(i).shard for i in order]
    runs = [k for k, _ in itertools.groupby(shard)]
    assert sorted(runs) == [1, 2, 3, 4, 5], "each shard read as one run"
    assert runs != [1, 2, 3, 4, 5]
    # A one-sample buffer cannot reorder: the stream is the epoch order.
    assert [i for i, _ in ds] == list(order)
    wide = SeispipeIterableDataset(data.out, seed=5, buffer_size=8, return_index=True,
                                   labels=False)
    mixed = [i for i, _ in wide]
    assert sorted(mixed) == list(range(N)) and mixed != list(order)
    for k, i in enumerate(mixed):
        # Nothing comes out before it is read: at most buffer_size places early.
        assert list(order).index(i) <= k + 8


def test_rank_and_world_size_default_to_torch_distributed(data, monkeypatch):
    ds = SeispipeIterableDataset(data.out)
    assert (ds.rank, ds.world_size) == (0, 1)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 3)
    ds = SeispipeIterableDataset(data.out)
    assert (ds.rank, ds.world_size, len(ds)) == (2, 3, 6)
    with pytest.raises(seispipe_data.SeispipeDataError, match="rank 3 is not in 0..2"):
        SeispipeIterableDataset(data.out, rank=3, world_size=3)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_dataloader_workers_and_ranks_read_every_sample_once(data):
    ref = reference([data.out])
    assert issubclass(SeispipeIterableDataset, IterableDataset)
    for world, workers in [(1, 0), (1, 3), (2, 2)]:
        seen = []
        for rank in range(world):
            ds = SeispipeIterableDataset(data.out, seed=1, rank=rank, world_size=world,
                                         buffer_size=3, return_index=True)
            ds.set_epoch(4)
            loader = DataLoader(ds, batch_size=4, num_workers=workers,
                                multiprocessing_context="fork" if workers else None)
            for idx, x, y in loader:
                for i, xi, yi in zip(idx.tolist(), x, y):
                    np.testing.assert_array_equal(xi.numpy(), ref[i][0])
                    np.testing.assert_array_equal(yi.numpy(), ref[i][1])
                    seen.append(i)
        assert sorted(seen) == list(range(N)), (world, workers)


def test_spawned_workers_rebuild_the_iterable_class(data):
    ds = SeispipeIterableDataset(data.out, seed=2, labels=False, return_index=True)
    loader = DataLoader(ds, batch_size=6, num_workers=1, multiprocessing_context="spawn")
    assert sorted(i for idx, _ in loader for i in idx.tolist()) == list(range(N))


def _read_in_child(ds, parent_maps, queue):
    fresh = ds._arrays(0)
    queue.put((fresh is not parent_maps, len(ds._open), float(ds[0][1].sum())))


def test_forked_workers_open_their_own_maps(data):
    ds = SeispipeDataset(data.out, return_index=True)
    ds[0]
    ds[17]
    parent_maps = ds._open[0]
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_read_in_child, args=(ds, parent_maps, q))
    p.start()
    own, opened, total = q.get(timeout=60)
    p.join()
    assert own and opened == 1 and total == float(ds[0][1].sum())
    # A map-style DataLoader over forked workers, after the parent has read.
    ref = reference([data.out])
    loader = DataLoader(ds, batch_size=5, shuffle=True, num_workers=2,
                        multiprocessing_context="fork",
                        generator=torch.Generator().manual_seed(0))
    seen = []
    for idx, x, y in loader:
        for i, xi, yi in zip(idx.tolist(), x, y):
            np.testing.assert_array_equal(xi.numpy(), ref[i][0])
            np.testing.assert_array_equal(yi.numpy(), ref[i][1])
            seen.append(i)
    assert sorted(seen) == list(range(N))

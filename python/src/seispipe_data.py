"""seispipe outputs and Kaggle parts as training datasets.

One file on numpy alone (torch is optional), installed with ``pip install
./python`` from the seispipe repository, or copied beside a notebook and
imported as ``seispipe_data``. No seispipe binary is needed.

* :class:`SeispipeDataset` — map-style: ``len(ds)``, ``ds[i]`` → ``(x, y)``
  float32 arrays (``x`` alone for unlabelled data), over one or more output
  directories and/or Kaggle parts (globs such as ``/kaggle/input/slug-part-*``
  welcome), read through their ``manifest.json``.
* :class:`SeispipeIterableDataset` — the same samples streamed for data far
  larger than RAM: shard order and rows shuffled per (seed, epoch), a bounded
  shuffle buffer, every sample read exactly once per epoch across DataLoader
  workers and distributed ranks.

Samples are read from memory maps opened lazily in the process that reads
them (a sample costs its own bytes, not its shard's; forked DataLoader
workers open their own), and each ``(x, y)`` pair comes from the data and
label files of one shard record, at the same row.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import sys
from collections import OrderedDict, namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__version__ = "0.1.0"
__all__ = [
    "SeispipeDataError",
    "SeispipeDataset",
    "SeispipeIterableDataset",
    "SampleLocation",
]

MANIFEST = "manifest.json"
_MAX_LISTED = 20


class SeispipeDataError(ValueError):
    """An input that cannot be read as seispipe data; the message names the files."""


SampleLocation = namedtuple("SampleLocation", "folder shard row data label")
SampleLocation.__doc__ = (
    "Where sample i is: the output or part folder, the shard number in its "
    "output, the row in the shard, and the data and label file paths."
)


def _natural_key(s):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _listing(names, what):
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return f"{what}: {shown}" + (f" … and {more} more" if more > 0 else "")


class _Shard:
    """One shard record of one manifest, with its files' paths resolved."""

    __slots__ = ("folder", "index", "samples", "fingerprint", "data", "label",
                 "prov_inline", "prov_file")

    def __init__(self, folder, fingerprint, record, manifest_path):
        self.folder = folder
        self.fingerprint = fingerprint
        self.index = int(record["index"])
        self.samples = int(record["samples"])
        files = record.get("files") or []
        # Each file by its role, as seispipe names them (dataN.npy, modelN.npy),
        # never by its place in the list.
        by_role = {"data": [], "label": []}
        for f in files:
            name = os.path.basename(f["path"])
            role = ("data" if name.startswith("data")
                    else "label" if name.startswith("model") else None)
            if role is None:
                raise SeispipeDataError(
                    f"{manifest_path}: shard {self.index} lists {f['path']}, which is "
                    "neither a data file (dataN.npy) nor a label file (modelN.npy)")
            by_role[role].append(f)
        if not by_role["data"]:
            raise SeispipeDataError(
                f"{manifest_path}: shard {self.index} lists "
                + (f"label file {os.path.basename(by_role['label'][0]['path'])} without a "
                   "data file" if files else "no files")
                + " (a label shard without data)")
        for role, found in by_role.items():
            if len(found) > 1:
                raise SeispipeDataError(
                    f"{manifest_path}: shard {self.index} lists {len(found)} {role} files "
                    f"({', '.join(f['path'] for f in found)}); a shard has one")
        self.data = by_role["data"][0]
        self.label = by_role["label"][0] if by_role["label"] else None
        for f in filter(None, (self.data, self.label)):
            if int(f["shape"][0]) != self.samples:
                raise SeispipeDataError(
                    f"{manifest_path}: shard {self.index} lists {self.samples} samples "
                    f"but its file {f['path']} has shape {f['shape']}")
        prov = record.get("provenance")
        self.prov_inline = self.prov_file = None
        if isinstance(prov, list):
            if len(prov) != self.samples:
                raise SeispipeDataError(
                    f"{manifest_path}: shard {self.index} lists {self.samples} samples "
                    f"but {len(prov)} provenance records")
            # One string per shard rather than a dict per sample: forked
            # workers would otherwise copy the pages that reference counts touch.
            self.prov_inline = json.dumps(prov, separators=(",", ":"))
        elif isinstance(prov, dict):
            self.prov_file = prov

    def path(self, f):
        return os.path.join(self.folder, f["path"])

    def listed_files(self):
        """(manifest record, path) of the data, label and provenance files."""
        out = [(f, self.path(f)) for f in (self.data, self.label) if f]
        if self.prov_file:
            out.append((self.prov_file, self.path(self.prov_file)))
        return out

    def records(self):
        if self.prov_inline is not None:
            return json.loads(self.prov_inline)
        if self.prov_file is None:
            return None
        p = self.path(self.prov_file)
        recs = []
        try:
            with open(p, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        recs.append(json.loads(line))
        except OSError as e:
            raise SeispipeDataError(f"{p}: cannot read provenance: {e}") from None
        except ValueError as e:
            raise SeispipeDataError(f"{p}: line {n} is not a JSON record: {e}") from None
        if len(recs) != self.samples:
            raise SeispipeDataError(
                f"{p}: {len(recs)} provenance records for shard {self.index}, "
                f"whose manifest record lists {self.samples} samples")
        return recs


def _folders(paths):
    """The folders named by `paths`: one path, a glob, or a list of them."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in map(os.fspath, paths):
        if not os.path.exists(p) and any(c in p for c in "*?["):
            found = sorted((q for q in glob.glob(p) if os.path.isdir(q)), key=_natural_key)
            if not found:
                raise SeispipeDataError(f"{p}: no folder matches this pattern")
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise SeispipeDataError("no paths given")
    return out


def _read_manifest(folder):
    mp = os.path.join(folder, MANIFEST)
    if os.path.isfile(folder):
        raise SeispipeDataError(f"{folder} is a file: give the output or part folder that "
                                f"holds {MANIFEST}")
    if not os.path.isdir(folder):
        raise SeispipeDataError(f"{folder}: no such folder")
    if not os.path.isfile(mp):
        inner = sorted(d for d in os.listdir(folder)
                       if os.path.isfile(os.path.join(folder, d, MANIFEST)))
        hint = (f"; it holds {len(inner)} that are ({inner[0]} …): "
                f"give those, e.g. {os.path.join(folder, '*')}") if inner else ""
        raise SeispipeDataError(
            f"{folder} is neither a seispipe output nor a Kaggle part (no {MANIFEST}){hint}")
    try:
        with open(mp, encoding="utf-8") as fh:
            m = json.load(fh)
    except (OSError, ValueError) as e:
        raise SeispipeDataError(f"{mp}: cannot read: {e}") from None
    if not str(m.get("format", "")).startswith("seispipe-manifest/"):
        raise SeispipeDataError(f"{mp}: not a seispipe manifest (format {m.get('format')!r})")
    return mp, m


def _load_shards(paths, allow_mixed):
    """Every shard of every folder, checked against the disk, in dataset order."""
    shards, meta, missing = [], {}, []
    for folder in _folders(paths):
        mp, m = _read_manifest(folder)
        fp = m.get("fingerprint", "")
        meta[folder] = (fp, tuple(m.get("sample_shape") or ()))
        for n, rec in enumerate(m.get("shards", [])):
            try:
                s = _Shard(folder, fp, rec, mp)
            except (KeyError, TypeError, ValueError, IndexError) as e:
                if isinstance(e, SeispipeDataError):
                    raise
                raise SeispipeDataError(
                    f"{mp}: shard record {n + 1} is not one seispipe writes "
                    f"({type(e).__name__}: {e})") from None
            shards.append(s)
            for f, p in s.listed_files():
                try:
                    size = os.stat(p).st_size
                except OSError:
                    if f is s.data and s.label and os.path.exists(s.path(s.label)):
                        p += f" (its label shard {s.label['path']} is there: labels without data)"
                    missing.append(p)
                    continue
                if size != int(f.get("bytes", size)):
                    missing.append(f"{p} ({size} bytes, the manifest says {f['bytes']})")
    if missing:
        raise SeispipeDataError(_listing(sorted(set(missing)),
                                         "files listed in the manifests are missing or truncated"))
    fingerprints = {}
    for folder, (fp, _) in meta.items():
        fingerprints.setdefault(fp, []).append(folder)
    if len(fingerprints) > 1 and not allow_mixed:
        groups = "; ".join(f"{fp[:12]}: {', '.join(fs)}" for fp, fs in fingerprints.items())
        raise SeispipeDataError(
            "these folders come from different pipelines (manifest fingerprints differ): "
            f"{groups}. Pass allow_mixed=True to read them as one dataset")
    shapes = {shape for _, shape in meta.values()}
    if len(shapes) > 1:
        raise SeispipeDataError(
            "samples of different shapes cannot form one dataset: "
            + "; ".join(f"{f}: {list(s)}" for f, (_, s) in meta.items()))
    # Parts of one output in shard order whatever order they were given in;
    # outputs in the order of their first folder.
    first = {fp: k for k, fp in enumerate(dict.fromkeys(s.fingerprint for s in shards))}
    shards.sort(key=lambda s: (first[s.fingerprint], s.index))
    for a, b in zip(shards, shards[1:]):
        if (a.fingerprint, a.index) == (b.fingerprint, b.index):
            raise SeispipeDataError(
                f"shard {a.index} of one output is in both {a.folder} and {b.folder}: "
                "give each output or part once")
    return shards


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _verify(shards):
    files = [(f, p) for s in shards for f, p in s.listed_files()]

    def check(item):
        f, p = item
        try:
            got = _sha256(p)
        except OSError as e:
            return f"{p} ({e.strerror})"
        return None if got == f["sha256"] else f"{p} (sha256 {got}, the manifest says {f['sha256']})"

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        bad = [b for b in pool.map(check, files) if b]
    if bad:
        raise SeispipeDataError(_listing(bad, f"{len(bad)} of {len(files)} files are corrupt"))


def _applied(rec):
    return rec.get("applied", True)


def _keep(rec, select, stages_applied, param_range, where):
    stages = rec.get("stages") or []
    copy = rec.get("copy", 1)
    if select == "originals" and not (copy == 0 and not stages):
        return False
    if select == "copies" and copy < 1:
        return False
    done = {s.get("type") for s in stages if _applied(s)}
    if any(t not in done for t in stages_applied):
        return False
    for key, (lo, hi) in param_range.items():
        kind, _, name = key.partition(".")
        values = [s.get(name) for s in stages if s.get("type") == kind and _applied(s)]
        if not any(isinstance(v, (int, float)) and lo <= v <= hi for v in values):
            return False
    return where is None or bool(where(rec))


class SeispipeDataset:
    """Map-style dataset over seispipe outputs and Kaggle parts.

    ``paths``: an output directory, a Kaggle part folder, a glob over either
    (``/kaggle/input/fwi-aug-part-*``), or a list of them. Parts of one
    output are ordered by shard whatever the order given; several outputs
    follow the order of their first folder.

    ``ds[i]`` is ``(x, y)``: the seismic sample and its velocity map as
    float32 arrays (f16 shards converted), or ``x`` alone when the data has
    no labels or ``labels=False``; with ``return_index=True`` the index comes
    first, ``(i, x, y)``. ``transform(x, y)`` (``transform(x)`` unlabelled)
    replaces the item.

    Filters over the manifest's provenance, all of which a sample must pass:
    ``select="originals"`` (copy 0 with no stage records) or ``"copies"``
    (copy ≥ 1); ``stages_applied=("flip",)`` — every named stage type was
    applied; ``param_range={"gaussian_noise.std": (lo, hi)}`` — a stage of that
    type was applied with that value in ``[lo, hi]``; ``where=f`` — ``f(record)``
    is true.

    ``verify=True`` re-hashes every file against the manifest's SHA-256 once,
    before anything is read. Folders from different pipelines (different
    fingerprints) are refused unless ``allow_mixed=True``. At most
    ``max_open_shards`` shards are mapped at once per process.
    """

    def __init__(self, paths, *, labels=True, select="all", stages_applied=(),
                 param_range=None, where=None, verify=False, allow_mixed=False,
                 transform=None, return_index=False, max_open_shards=64):
        if select not in ("all", "originals", "copies"):
            raise SeispipeDataError(f"select={select!r}: expected 'all', 'originals' or 'copies'")
        if isinstance(stages_applied, str):
            stages_applied = (stages_applied,)
        self._shards = _load_shards(paths, allow_mixed)
        if verify:
            _verify(self._shards)
        with_labels = [s.label is not None for s in self._shards]
        if labels and any(with_labels) and not all(with_labels):
            a = self._shards[with_labels.index(True)].folder
            b = self._shards[with_labels.index(False)].folder
            raise SeispipeDataError(
                f"labelled data ({a}) mixed with unlabelled data ({b}); pass labels=False "
                "to read only the seismic samples")
        self.labelled = bool(labels) and bool(with_labels) and all(with_labels)
        param_range = dict(param_range or {})
        filtering = select != "all" or stages_applied or param_range or where is not None
        shard_of, row = [], []
        for k, s in enumerate(self._shards):
            if filtering:
                recs = s.records()
                if recs is None:
                    raise SeispipeDataError(
                        f"{s.folder}: shard {s.index} has no provenance to filter on")
                rows = [r for r, rec in enumerate(recs)
                        if _keep(rec, select, stages_applied, param_range, where)]
            else:
                rows = range(s.samples)
            shard_of.append(np.full(len(rows), k, dtype=np.int64))
            row.append(np.asarray(rows, dtype=np.int64))
        self._shard_of = np.concatenate(shard_of) if shard_of else np.zeros(0, np.int64)
        self._row = np.concatenate(row) if row else np.zeros(0, np.int64)
        self.transform, self.return_index = transform, return_index
        self.max_open_shards = max(1, int(max_open_shards))
        self._pid, self._open, self._prov = None, OrderedDict(), (None, None)

    def __len__(self):
        return len(self._row)

    def _index(self, i):
        n = len(self._row)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range for {n} samples")
        return i % n

    def _this_process(self):
        if self._pid != os.getpid():
            # First use here, or after a fork: never use the parent's maps.
            self._pid, self._open, self._prov = os.getpid(), OrderedDict(), (None, None)

    def _arrays(self, k):
        """The memory maps of shard k, opened in this process."""
        self._this_process()
        arrays = self._open.get(k)
        if arrays is not None:
            self._open.move_to_end(k)
            return arrays
        s = self._shards[k]
        arrays = []
        for f in (s.data, s.label if self.labelled else None):
            if f is None:
                arrays.append(None)
                continue
            p = s.path(f)
            try:
                a = np.load(p, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise SeispipeDataError(f"{p}: cannot read as .npy: {e}") from None
            if list(a.shape) != list(f["shape"]) or a.dtype.str != f["dtype"]:
                raise SeispipeDataError(
                    f"{p}: holds {list(a.shape)} {a.dtype.str}, the manifest says "
                    f"{list(f['shape'])} {f['dtype']}")
            arrays.append(a)
        self._open[k] = arrays = tuple(arrays)
        while len(self._open) > self.max_open_shards:
            self._open.popitem(last=False)
        return arrays

    def __getitem__(self, i):
        i = self._index(i)
        k, r = int(self._shard_of[i]), int(self._row[i])
        data, label = self._arrays(k)
        x = np.array(data[r], dtype=np.float32)
        item = (x, np.array(label[r], dtype=np.float32)) if self.labelled else (x,)
        if self.transform is not None:
            item = self.transform(*item)
            item = item if isinstance(item, tuple) else (item,)
        if self.return_index:
            item = (i,) + item
        return item[0] if len(item) == 1 else item

    def provenance(self, i):
        """The manifest's provenance record of sample i (a dict)."""
        i = self._index(i)
        k = int(self._shard_of[i])
        self._this_process()
        if self._prov[0] != k:
            recs = self._shards[k].records()
            if recs is None:
                s = self._shards[k]
                raise SeispipeDataError(f"{s.folder}: shard {s.index} has no provenance")
            self._prov = (k, recs)
        return dict(self._prov[1][int(self._row[i])])

    def location(self, i):
        """Where sample i is read from (a :data:`SampleLocation`)."""
        i = self._index(i)
        s = self._shards[int(self._shard_of[i])]
        return SampleLocation(s.folder, s.index, int(self._row[i]), s.path(s.data),
                              s.path(s.label) if s.label else None)

    def __getstate__(self):
        # Memory maps never travel to another process (spawned workers).
        state = self.__dict__.copy()
        state.update(_pid=None, _open=OrderedDict(), _prov=(None, None))
        return state

    def __repr__(self):
        folders = list(dict.fromkeys(s.folder for s in self._shards))
        return (f"SeispipeDataset({len(self)} samples, {len(self._shards)} shards, "
                f"{'labelled' if self.labelled else 'unlabelled'}, from {len(folders)} folders)")


def _torch_partition():
    """(rank, world_size) of an initialised torch.distributed, else (0, 1)."""
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _torch_worker():
    """(worker id, workers) inside a DataLoader worker, else (0, 1)."""
    torch = sys.modules.get("torch")
    info = torch.utils.data.get_worker_info() if torch is not None else None
    return (info.id, info.num_workers) if info is not None else (0, 1)


class _IterableCore:
    """Iterable dataset over seispipe outputs and Kaggle parts, for data far
    larger than RAM.

    Takes the paths and every option of :class:`SeispipeDataset`, plus:
    ``shuffle`` (default True): per epoch, the shard order and the rows of
    each shard are permuted by ``seed`` and the epoch (:meth:`set_epoch`),
    then items pass through a shuffle buffer of ``buffer_size`` samples (the
    only samples held in memory). ``rank`` and ``world_size`` default to
    those of an initialised ``torch.distributed``, else 0 and 1.

    Each epoch's order is split into contiguous runs, first across ranks
    (counts differ by at most one), then across the DataLoader workers of a
    rank: every sample is yielded exactly once per epoch in all, whatever the
    number of ranks and workers. ``len(ds)`` is this rank's share.
    With ``persistent_workers=True`` the workers keep the epoch they started
    with; create the DataLoader's iterator after :meth:`set_epoch`.
    """

    def __init__(self, paths, *, shuffle=True, seed=0, buffer_size=64, rank=None,
                 world_size=None, **options):
        self.dataset = SeispipeDataset(paths, **options)
        if (rank is None) != (world_size is None):
            raise SeispipeDataError("give both rank and world_size, or neither")
        if rank is None:
            rank, world_size = _torch_partition()
        if not 0 <= rank < world_size:
            raise SeispipeDataError(f"rank {rank} is not in 0..{world_size - 1}")
        self.rank, self.world_size = int(rank), int(world_size)
        self.shuffle, self.seed, self.epoch = bool(shuffle), int(seed), 0
        self.buffer_size = max(1, int(buffer_size))

    def set_epoch(self, epoch):
        """Choose the epoch whose order the next iteration follows."""
        self.epoch = int(epoch)

    def epoch_order(self):
        """Every dataset index of the current epoch, in the order the ranks split."""
        shard_of = self.dataset._shard_of
        if not self.shuffle:
            return np.arange(len(shard_of))
        starts = np.flatnonzero(np.diff(shard_of, prepend=-1))
        groups = np.split(np.arange(len(shard_of)), starts[1:])
        rng = np.random.default_rng([self.seed, self.epoch])
        order = [rng.permutation(groups[g]) for g in rng.permutation(len(groups))]
        return np.concatenate(order) if order else np.zeros(0, np.int64)

    def indices(self, worker=0, num_workers=1):
        """The dataset indices one DataLoader worker of this rank reads, in order."""
        order = self.epoch_order()
        n = len(order)
        lo, hi = n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size
        m = hi - lo
        return order[lo + m * worker // num_workers: lo + m * (worker + 1) // num_workers]

    def __len__(self):
        n = len(self.dataset)
        return n * (self.rank + 1) // self.world_size - n * self.rank // self.world_size

    def __iter__(self):
        worker, workers = _torch_worker()
        indices = self.indices(worker, workers)
        if not self.shuffle:
            for i in indices:
                yield self.dataset[i]
            return
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        buffer = []
        for i in indices:
            item = self.dataset[i]
            if len(buffer) < self.buffer_size:
                buffer.append(item)
                continue
            j = int(rng.integers(len(buffer)))
            buffer[j], item = item, buffer[j]
            yield item
        for j in rng.permutation(len(buffer)):
            yield buffer[j]

    def provenance(self, i):
        """The provenance record of dataset index i (see ``return_index``)."""
        return self.dataset.provenance(i)


def _iterable_class():
    # A torch IterableDataset when torch is installed (the DataLoader needs
    # the subclass to iterate instead of index); torch is imported only here.
    try:
        from torch.utils.data import IterableDataset
        bases = (_IterableCore, IterableDataset)
    except ImportError:
        bases = (_IterableCore,)
    return type("SeispipeIterableDataset", bases,
                {"__module__": __name__, "__qualname__": "SeispipeIterableDataset",
                 "__doc__": _IterableCore.__doc__})


def __getattr__(name):
    if name == "SeispipeIterableDataset":
        cls = globals()[name] = _iterable_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Benchmark: random-access reads of seispipe output, SeispipeDataset vs numpy by hand.

usage: python benches/dataset.py [--inputs 100] [--copies 15] [--reads 400] [--repeat 3]
                                [--dir DIR] [--keep]

Builds a multi-GB output with the seispipe binary (`seispipe synth` of
--inputs FlatVel_A samples, then a run keeping each original and adding
--copies noisy copies: (1 + copies) × inputs samples of 1.42 MB, in shards of
500), then reads the same random sample indices three ways:

* dataset        — seispipe_data.SeispipeDataset(out)[i] → float32 (x, y);
* mmap by hand   — np.load(shard, mmap_mode="r") once per shard, kept open,
                   then np.array(m[row], dtype=np.float32) for x and y (the floor);
* np.load shards — np.load(data shard)[row] and np.load(label shard)[row] per
                   sample: the whole 710 MB shard read for one sample (fewer
                   reads: it is slow).

Each runs cold (the output's pages dropped from the page cache with
posix_fadvise(DONTNEED) first, so reads hit the disk) and warm (everything
cached), --repeat times; the best of each is kept. The dataset and the mmap
floor read --reads samples each, interleaved one read at a time (so both see
the same machine load; each goes first every other turn) over disjoint random indices (so neither finds pages
the other brought in). Prints samples/s and ratios against the mmap-by-hand
floor measured in the same run. Deletes the output at the end unless --keep.
"""
import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "seispipe")
sys.path.insert(0, os.path.join(ROOT, "python", "src"))
from seispipe_data import SeispipeDataset  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import header as machine_header  # noqa: E402


def build(d, inputs, copies):
    out = os.path.join(d, "out")
    if os.path.exists(os.path.join(out, "manifest.json")):
        return out
    subprocess.run([BIN, "synth", os.path.join(d, "in"), "--family", "FlatVel_A",
                    "--samples", str(inputs), "--seed", "3"], check=True, capture_output=True)
    pipe = os.path.join(d, "bench.toml")
    with open(pipe, "w") as f:
        f.write(f'seed = 1\ncopies = {copies}\n[input]\npath = "in"\n[output]\ndir = "out"\n'
                '[[stages]]\ntype = "gaussian_noise"\np = 1.0\nsnr_db = 20.0\n')
    subprocess.run([BIN, "run", "-q", pipe], check=True)
    shutil.rmtree(os.path.join(d, "in"))
    return out


def npy_files(out):
    return [os.path.join(dp, f) for dp, _, fs in os.walk(out) for f in fs if f.endswith(".npy")]


def drop_cache(files):
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(files):
    for p in files:
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


def by_dataset(ds):
    return lambda i: ds[i]


def by_mmap(ds):
    maps = {}

    def read(i):
        loc = ds.location(i)
        if loc.data not in maps:
            maps[loc.data] = (np.load(loc.data, mmap_mode="r"), np.load(loc.label, mmap_mode="r"))
        x, y = maps[loc.data]
        return np.array(x[loc.row], dtype=np.float32), np.array(y[loc.row], dtype=np.float32)
    return read


def by_np_load(ds):
    def read(i):
        loc = ds.location(i)
        return np.load(loc.data)[loc.row].astype(np.float32), \
            np.load(loc.label)[loc.row].astype(np.float32)
    return read


def rates(makers, out, index_sets, files, cold):
    """samples/s of each reader, reads interleaved (one read of each in turn)
    so that all see the same machine; each reads its own indices, so a cold
    reader never finds pages another one brought in."""
    readers = [make(SeispipeDataset(out)) for make in makers]
    drop_cache(files) if cold else warm(files)
    spent = [0.0] * len(readers)
    order = list(range(len(readers)))
    for k in range(len(index_sets[0])):
        # The reader that goes first in a turn is measurably slower (its
        # output buffer is fresh memory): take turns at going first.
        for m in order if k % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            readers[m](int(index_sets[m][k]))
            spent[m] += time.perf_counter() - t
    del readers
    gc.collect()
    return [len(ix) / s for ix, s in zip(index_sets, spent)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=100)
    ap.add_argument("--copies", type=int, default=15)
    ap.add_argument("--reads", type=int, default=400)
    ap.add_argument("--whole-shard-reads", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    print(machine_header(args.dir or tempfile.gettempdir()), flush=True)
    d = args.dir or tempfile.mkdtemp(prefix="seispipe-dataset-bench-", dir="/tmp")
    os.makedirs(d, exist_ok=True)
    try:
        out = build(d, args.inputs, args.copies)
        files = npy_files(out)
        ds = SeispipeDataset(out)
        gb = sum(os.path.getsize(p) for p in files) / 1e9
        if 2 * args.reads + args.whole_shard_reads > len(ds):
            sys.exit(f"--reads {args.reads}: the readers need disjoint samples; "
                     f"there are {len(ds)}")
        perm = np.random.default_rng(0).permutation(len(ds))
        sets = [perm[: args.reads], perm[args.reads: 2 * args.reads]]
        few = perm[2 * args.reads: 2 * args.reads + args.whole_shard_reads]
        # The three readers return the same values.
        for i in perm[:5]:
            a, b, c = by_dataset(ds)(int(i)), by_mmap(ds)(int(i)), by_np_load(ds)(int(i))
            assert all(np.array_equal(p, q) for p, q in zip(a, b)) and \
                all(np.array_equal(p, q) for p, q in zip(a, c))
        print(f"output: {len(ds)} samples, {len(files) // 2} shards, {gb:.2f} GB in {out}")
        print("| reader | cold samples/s | vs mmap | warm samples/s | vs mmap |")
        print("|---|---:|---:|---:|---:|")
        best = {"mmap by hand": [0.0, 0.0], "SeispipeDataset": [0.0, 0.0],
                "np.load shards": [0.0, 0.0]}
        for _ in range(args.repeat):
            for c, cold in enumerate((True, False)):
                a, b = rates([by_mmap, by_dataset], out, sets, files, cold)
                (n,) = rates([by_np_load], out, [few], files, cold)
                for name, r in zip(best, (a, b, n)):
                    best[name][c] = max(best[name][c], r)
        base = best["mmap by hand"]
        for name, (cold, hot) in best.items():
            print(f"| {name} | {cold:.1f} | {cold / base[0]:.3g}× | {hot:.1f} | "
                  f"{hot / base[1]:.3g}× |")
        ds_cold, ds_hot = best["SeispipeDataset"]
        nl_cold, nl_hot = best["np.load shards"]
        print(f"SeispipeDataset vs np.load of whole shards: {ds_cold / nl_cold:.0f}× cold, "
              f"{ds_hot / nl_hot:.0f}× warm")
    finally:
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

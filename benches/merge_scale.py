"""Benchmark: `seispipe merge` on an output the size of a 2 TB run, without the bytes.

usage: python benches/merge_scale.py [--shards 2800] [--samples-per-shard 500]
                                     [--partitions 4] [--keep DIR]
       (run from the repository root after `cargo build --release`)

A 2 TB output is ~1.4 million OpenFWI samples in ~2,800 shards of 500. This
builds one on disk from sparse files: the inputs (2,800 labelled pairs, npy
header + holes) and every shard's data, label and provenance file at its real
size, then writes the journals the partitions would have written (one per
partition, a record per shard with real sizes and made-up hashes) and times
`seispipe merge`, which reads the journals, checks every shard's files and
headers, and writes the manifest (an index: O(shards)). It prints the wall
time, the peak resident memory of the merge (from /proc via wait4) and the
manifest's size. The pipeline has no stages, so the run fingerprint is real:
`seispipe run --partition 0/1000000` (a partition with no shards) records it
before the journals are made up.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import header as machine_header  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "seispipe")
SEISMIC = (5, 1000, 70)
VELOCITY = (1, 70, 70)


def sparse_npy(path, shape, dtype="<f4"):
    """An .npy file with a real header and a hole where the data goes."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
        )
        header = f.tell()
        f.truncate(header + int(np.prod(shape)) * 4)
    return header + int(np.prod(shape)) * 4


def sparse(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=2800)
    ap.add_argument("--samples-per-shard", type=int, default=500)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--keep", help="build in this directory and keep it")
    a = ap.parse_args()
    print(machine_header(a.keep or tempfile.gettempdir()), flush=True)
    work = a.keep or tempfile.mkdtemp(prefix="seispipe-merge-scale-")
    os.makedirs(work, exist_ok=True)
    n, sps = a.shards, a.samples_per_shard
    try:
        t0 = time.time()
        for i in range(n):
            sparse_npy(f"{work}/in/FlatVel_A/data/data{i + 1}.npy", (sps,) + SEISMIC)
            sparse_npy(f"{work}/in/FlatVel_A/model/model{i + 1}.npy", (sps,) + VELOCITY)
        with open(f"{work}/p.toml", "w") as f:
            f.write(
                "seed = 1\ncopies = 0\n[input]\npath = \"in\"\n"
                f"[output]\ndir = \"out\"\nsamples_per_shard = {sps}\n"
            )
        subprocess.run(
            [BIN, "run", "p.toml", "--quiet", "--partition", "0/1000000"],
            cwd=work, check=True,
        )
        # The journals the partitions would have written, and their files.
        prov_line = 400  # bytes of one provenance record, a typical size
        per = [(j * n // a.partitions, (j + 1) * n // a.partitions) for j in range(a.partitions)]
        for p, (lo, hi) in enumerate(per):
            lines = []
            for j in range(lo, hi):
                k = j + 1
                files = []
                for rel, shape in ((f"data/data{k}.npy", (sps,) + SEISMIC),
                                   (f"model/model{k}.npy", (sps,) + VELOCITY)):
                    size = sparse_npy(f"{work}/out/{rel}", shape)
                    files.append({"path": rel, "shape": list(shape), "dtype": "<f4",
                                  "bytes": size, "sha256": f"{k:064x}"})
                prov = f"provenance/prov{k}.jsonl"
                sparse(f"{work}/out/{prov}", prov_line * sps)
                lines.append(json.dumps({
                    "index": k, "samples": sps, "files": files,
                    "provenance": {"path": prov, "shape": [sps], "dtype": "jsonl",
                                   "bytes": prov_line * sps, "sha256": f"{k:064x}"},
                }))
            with open(f"{work}/out/.seispipe/journal-{p}-of-{a.partitions}.jsonl", "w") as f:
                f.write("\n".join(lines) + "\n")
            os.makedirs(f"{work}/out/.seispipe/locks", exist_ok=True)
            open(f"{work}/out/.seispipe/locks/{p}-of-{a.partitions}.lock", "w").close()
        built = time.time() - t0
        apparent = sum(
            os.path.getsize(os.path.join(d, f))
            for d, _, fs in os.walk(f"{work}/out") for f in fs
        )
        t0 = time.time()
        proc = subprocess.Popen([BIN, "merge", "out"], cwd=work, stderr=subprocess.PIPE)
        _, _, usage = os.wait4(proc.pid, 0)
        wall = time.time() - t0
        err = proc.stderr.read().decode()
        if not os.path.exists(f"{work}/out/manifest.json"):
            sys.exit(f"merge failed:\n{err}")
        manifest = os.path.getsize(f"{work}/out/manifest.json")
        print(f"output: {n} shards x {sps} samples = {n * sps:,} samples, "
              f"{apparent / 1e12:.2f} TB apparent (sparse), {a.partitions} partition journals "
              f"(built in {built:.0f} s)")
        print(f"seispipe merge: {wall:.2f} s wall, peak RSS {usage.ru_maxrss / 1024:.1f} MiB, "
              f"manifest.json {manifest / 1e6:.2f} MB")
        print(err.strip())
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

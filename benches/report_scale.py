"""Benchmark: `seispipe report` on a large output, against reading its manifest.

usage: python benches/report_scale.py [--shards 2000] [--per-shard 500] [--dir DIR]

Builds a synthetic finished output of SHARDS shards of PER_SHARD OpenFWI
samples (2000 × 500 = one million samples, 1.4 TB of f32 as the shard sizes
say) without the disk it would need: every shard file is a valid `.npy`
header followed by a hole (a sparse file, reading as zeros), the manifest
lists every sample's provenance (a flip and a noise record each, as
pipelines/demo.toml writes them), and the journal spans three days with a
slow stretch. Then times:

* baseline — Python's json.load of manifest.json (the least any report must
             do: read the manifest once);
* seispipe — `seispipe report DIR`: the manifest, every provenance record
             (parameter histograms), 2 sampled samples per shard (one source
             gather and one velocity map each, partial reads), the journal,
             the previews, the page.

Prints both times and their ratio, for the full size and a tenth of it (the
ratio holds on a shared machine; absolute times drift). The sampled reads
are of holes here, so they cost no disk time: on a real disk the report
reads 2 × (280 KB + 20 KB) per shard, 0.6 GB for 2000 shards.
"""
import argparse
import json
import os
import sys
import subprocess
import tempfile
import time

import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import header as machine_header  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "seispipe")
ZERO = "0" * 64


def sparse_npy(path, shape):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        n = f.tell() + int(np.prod(shape)) * 4
        f.truncate(n)
    return n


def build(d, shards, per):
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    os.makedirs(os.path.join(d, "model"), exist_ok=True)
    os.makedirs(os.path.join(d, ".seispipe"), exist_ok=True)
    rng = np.random.default_rng(0)
    head = {
        "format": "seispipe-manifest/1", "seispipe_version": "0.1.0",
        "pipeline_file": "pipelines/bench.toml",
        "pipeline": {"seed": 1, "copies": 1, "keep_original": False,
                     "input": {"path": "in"}, "output": {"dir": d},
                     "stages": [{"type": "flip", "p": 0.5, "exact": False},
                                {"type": "gaussian_noise", "p": 0.8, "snr_db": 20.0}]},
        "fingerprint": ZERO, "seed": 1, "rng": "seispipe-rng-v1", "layout": "openfwi",
        "sample_shape": [5, 1000, 70], "label_shape": [1, 70, 70], "dtype": "<f4",
        "input_root": "in",
        "inputs": [{"path": f"A/data/data{k + 1}.npy", "label": f"A/model/model{k + 1}.npy",
                    "samples": per, "dtype": "<f4"} for k in range(shards)],
        "skipped_files": [], "samples_in": shards * per, "samples_out": shards * per,
        "samples_dropped": 0,
    }
    text = json.dumps(head)[:-1] + ', "shards": ['
    parts = [text]
    t0, t = 1.7e9, 1.7e9 + 5.0
    journal = []
    for k in range(shards):
        files = []
        for sub, name, shape in [("data", "data", (per, 5, 1000, 70)), ("model", "model", (per, 1, 70, 70))]:
            rel = f"{sub}/{name}{k + 1}.npy"
            n = sparse_npy(os.path.join(d, rel), shape)
            files.append({"path": rel, "shape": list(shape), "dtype": "<f4", "bytes": n, "sha256": ZERO})
        flips = rng.random(per) < 0.5
        noise = rng.random(per) < 0.8
        stds = rng.uniform(0.05, 0.3, per)
        recs = []
        for i in range(per):
            j = k * per + i
            f = ('{"stage":0,"type":"flip","applied":true,"middle_source":"approximate (x=35 after mirror, standard is 34)"}'
                 if flips[i] else '{"stage":0,"type":"flip","applied":false}')
            g = (f'{{"stage":1,"type":"gaussian_noise","applied":true,"std":{float(stds[i])!r}}}'
                 if noise[i] else '{"stage":1,"type":"gaussian_noise","applied":false}')
            recs.append(f'{{"output_index":{j},"id":"A/data/data{k + 1}.npy#{i}","input":"A/data/data{k + 1}.npy",'
                        f'"input_index":{i},"copy":1,"stages":[{f},{g}]}}')
        rec = f'{{"index":{k + 1},"samples":{per},"files":{json.dumps(files)}'
        parts.append(("," if k else "") + rec + ',"provenance":[' + ",".join(recs) + "]}")
        # Three days in all, a shard every ~130 s, four times slower for a stretch.
        t += 130.0 * (4.0 if shards // 3 <= k < shards // 2 else 1.0) * 2000 / shards
        journal.append(rec + f',"provenance":[],"run_started_at":{t0},"finished_at":{t:.3f}}}')
    parts.append("]}")
    with open(os.path.join(d, "manifest.json"), "w") as f:
        f.write("".join(parts))
    with open(os.path.join(d, ".seispipe", "journal.jsonl"), "w") as f:
        f.write("\n".join(journal) + "\n")


def best_of(n, fn):
    times = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        times.append(time.perf_counter() - s)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=2000)
    ap.add_argument("--per-shard", type=int, default=500)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    print(machine_header(a.dir or tempfile.gettempdir()), flush=True)
    base = a.dir or tempfile.mkdtemp(prefix="seispipe-report-bench-")
    print(f"seispipe report vs json.load of the manifest ({os.cpu_count()} CPUs)")
    for shards in [max(1, a.shards // 10), a.shards]:
        d = os.path.join(base, f"out{shards}")
        build(d, shards, a.per_shard)
        mb = os.path.getsize(os.path.join(d, "manifest.json")) / 1e6

        def load():
            with open(os.path.join(d, "manifest.json")) as f:
                json.load(f)

        def report():
            subprocess.run([BIN, "report", d], check=True, stdout=subprocess.DEVNULL)

        tb = best_of(2, load)
        ts = best_of(2, report)
        print(f"{shards} shards × {a.per_shard} = {shards * a.per_shard} samples, manifest {mb:.0f} MB: "
              f"json.load {tb:.2f} s, seispipe report {ts:.2f} s, ratio {ts / tb:.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: flip + Gaussian noise over OpenFWI shards, seispipe vs numpy vs a plain copy.

usage: python benches/flip_noise.py [--samples 1000] [--threads 2] [--dir DIR]
                                    [--repeat 2] [--io auto,direct,buffered]
       (SEISPIPE_BENCH_SPS=N sets the samples per shard, default 500)

Every contender reads the same input shards (page cache warm for all) and
writes the same amount of f32 output, and every timing includes a final
`sync`, so all of them end with the data on disk:

* copy floor  — `cp` of the input files, then `sync` (the I/O floor);
* numpy       — per shard: np.load, x[:, ::-1, :, ::-1] (+ rng.standard_normal(
                shape, dtype=float32) * std for flip+noise), np.save; then sync;
* seispipe    — `seispipe run` of the same pipeline (copies = 1, keep_original
                = false, flip p = 1 [+ gaussian_noise std]), which also checks
                every value, hashes every file (SHA-256) and fsyncs each one;
                it runs once per --io mode given, and its summary names
                the mode it used (printed at the end).

Prints where it ran (CPU, SIMD flags, kernel copy, I/O mode, the disk's copy
floor), samples/s, MB/s (of output), ratios against numpy and the time
against the copy floor measured in the same run, what the report costs a
run (the same flip+noise run with `--no-report`, alternated with the others)
and what `seispipe report` costs afterwards. Absolute times drift on a
shared machine; the ratios hold.
"""
import argparse
import os
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
SPS = int(os.environ.get("SEISPIPE_BENCH_SPS", "500"))  # samples per shard, input and output


def make_inputs(d, samples):
    os.makedirs(os.path.join(d, "Bench_A", "data"), exist_ok=True)
    os.makedirs(os.path.join(d, "Bench_A", "model"), exist_ok=True)
    rng = np.random.default_rng(0)
    k = 0
    while k * SPS < samples:
        n = min(SPS, samples - k * SPS)
        p = os.path.join(d, "Bench_A", "data", f"data{k + 1}.npy")
        if not os.path.exists(p) or np.load(p, mmap_mode="r").shape[0] != n:
            np.save(p, rng.standard_normal((n, 5, 1000, 70), dtype=np.float32) * 5)
            np.save(os.path.join(d, "Bench_A", "model", f"model{k + 1}.npy"),
                    rng.uniform(1500, 4500, (n, 1, 70, 70)).astype(np.float32))
        k += 1
    # Shards left by an earlier, larger run would be read by seispipe (it reads
    # the directory) but not by the numpy baseline (it gets the file list).
    extra = k + 1
    while os.path.exists(os.path.join(d, "Bench_A", "data", f"data{extra}.npy")):
        os.remove(os.path.join(d, "Bench_A", "data", f"data{extra}.npy"))
        os.remove(os.path.join(d, "Bench_A", "model", f"model{extra}.npy"))
        extra += 1
    return [os.path.join(d, "Bench_A", "data", f"data{i + 1}.npy") for i in range(k)]


def warm(files):
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
        m = f.replace("/data/data", "/model/model")
        with open(m, "rb") as fh:
            fh.read()


def timed(fn):
    os.sync()
    t = time.perf_counter()
    fn()
    os.sync()
    return time.perf_counter() - t


def copy_floor(files, out):
    def go():
        for f in files:
            shutil.copyfile(f, os.path.join(out, os.path.basename(f)))
            m = f.replace("/data/data", "/model/model")
            shutil.copyfile(m, os.path.join(out, "m" + os.path.basename(m)))
    return timed(go)


def numpy_run(files, out, noise):
    rng = np.random.default_rng(1)

    def go():
        for i, f in enumerate(files):
            x = np.load(f)
            y = np.load(f.replace("/data/data", "/model/model"))
            x = x[:, ::-1, :, ::-1]
            y = y[..., ::-1]
            if noise:
                x = x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(0.5)
            np.save(os.path.join(out, f"data{i + 1}.npy"), x)
            np.save(os.path.join(out, f"model{i + 1}.npy"), y)
    return timed(go)


def seispipe_run(inp, out, noise, threads, io="auto", facts=None, report=True):
    stages = '[[stages]]\ntype = "flip"\np = 1.0\n'
    if noise:
        stages += '[[stages]]\ntype = "gaussian_noise"\nstd = 0.5\n'
    pipe = os.path.join(os.path.dirname(out), f"bench-{noise}.toml")
    with open(pipe, "w") as f:
        f.write(f'seed = 1\ncopies = 1\nkeep_original = false\n[input]\npath = "{inp}"\n'
                f'[output]\ndir = "{out}"\nsamples_per_shard = {SPS}\n{stages}')
    # Not -q: the summary names the I/O mode the run used. The report is
    # part of the run (and of its time); its own cost is timed after.
    res = {}

    def go():
        res["p"] = subprocess.run([BIN, "run", "--io", io, "--threads", str(threads), pipe]
                                  + ([] if report else ["--no-report"]),
                                  check=True, capture_output=True, text=True)
    t = timed(go)
    if facts is not None:
        for line in res["p"].stderr.splitlines():
            if line.startswith("io: "):
                facts.setdefault("io", set()).add(f"--io {io}: {line[4:]}")
        r = time.perf_counter()
        subprocess.run([BIN, "report", out], check=True, capture_output=True)
        facts.setdefault("report", []).append(time.perf_counter() - r)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", default=os.path.join(ROOT, "target", "bench-data"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--io", default="auto", help="comma-separated --io modes of seispipe to time (auto,direct,buffered)")
    a = ap.parse_args()
    print(machine_header(a.dir), flush=True)
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: run `make build` first")
    inp = os.path.join(a.dir, "inputs")
    files = make_inputs(inp, a.samples)
    mb = a.samples * (5 * 1000 * 70 + 4900) * 4 / 1e6
    results = {}
    facts = {}
    modes = a.io.split(",")
    contenders = [
        ("copy floor (cp + sync)", lambda o: copy_floor(files, o)),
        ("numpy flip", lambda o: numpy_run(files, o, False)),
        ("numpy flip+noise", lambda o: numpy_run(files, o, True)),
    ]
    for m in modes:
        contenders += [
            (f"seispipe flip --io {m}", lambda o, m=m: seispipe_run(inp, o, False, a.threads, m)),
            (f"seispipe flip+noise --io {m}",
             lambda o, m=m: seispipe_run(inp, o, True, a.threads, m, facts)),
        ]
    # The same run without its report, alternated with the others: what the
    # report costs a run (its previews are drawn while the shards are written).
    contenders.append((f"seispipe flip+noise --io {modes[0]} --no-report",
                       lambda o: seispipe_run(inp, o, True, a.threads, modes[0], report=False)))
    names = [n for n, _ in contenders]
    pair = (names.index(f"seispipe flip+noise --io {modes[0]}"),
            names.index(f"seispipe flip+noise --io {modes[0]} --no-report"))
    for rep in range(a.repeat):
        # Every other round the pair swaps places: a run's time depends on
        # what ran just before it (~0.1 s here after numpy's big arrays).
        order = list(contenders)
        if rep % 2:
            order[pair[0]], order[pair[1]] = order[pair[1]], order[pair[0]]
        for name, fn in order:
            warm(files)
            out = tempfile.mkdtemp(dir=a.dir, prefix="out-")
            try:
                t = fn(os.path.join(out, "o") if name.startswith("seispipe") else out)
            finally:
                shutil.rmtree(out)
            results.setdefault(name, []).append(t)
    starts = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([BIN, "stages"], check=True, stdout=subprocess.DEVNULL)
        starts.append(time.perf_counter() - t)
    start = min(starts)
    print(f"{a.samples} samples ({mb:.0f} MB out), {a.threads} threads, best of {a.repeat}")
    best = {k: min(v) for k, v in results.items()}
    for k, t in best.items():
        print(f"  {k:<24} {t:7.2f} s  {a.samples / t:8.1f} samples/s  {mb / t:8.1f} MB/s")
    floor = best["copy floor (cp + sync)"]
    for m in modes:
        fn_, f_ = best[f"seispipe flip+noise --io {m}"], best[f"seispipe flip --io {m}"]
        print(f"--io {m}: seispipe/numpy flip+noise (samples/s) {best['numpy flip+noise'] / fn_:.2f}x, "
              f"flip {best['numpy flip'] / f_:.2f}x; time vs the copy floor: flip+noise {fn_ / floor:.2f}x, "
              f"flip {f_ / floor:.2f}x")
    for line in sorted(facts.get("io", [])):
        print(f"io chosen, {line}")
    with_r = results[f"seispipe flip+noise --io {modes[0]}"]
    without = results[f"seispipe flip+noise --io {modes[0]} --no-report"]
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    print(f"the report's cost in a flip+noise run (--io {modes[0]}, with vs --no-report): "
          f"best {100 * (min(with_r) / min(without) - 1):+.1f} %, "
          f"median {100 * (med(with_r) / med(without) - 1):+.1f} % (of {len(without)} runs each)")
    rep = facts.get("report", [])
    if rep:
        print(f"report.html drawn afterwards (seispipe report, best of {len(rep)}): {min(rep):.3f} s = "
              f"{100 * min(rep) / min(without):.1f} % of the fastest run without it")
    # The numpy baselines run inside this interpreter (no start-up counted);
    # each seispipe run is a new process (`seispipe stages` times its start:
    # ~0 since the binary no longer links libtorch). Without that fixed cost:
    print(f"seispipe process start:                      {start:.2f} s")
    for k in ("flip", "flip+noise"):
        steady = best[f"seispipe {k} --io {modes[0]}"] - start
        print(f"ratio without start-up, {k:<10} (samples/s): {best[f'numpy {k}'] / steady:.2f}x"
              f"  ({a.samples / steady:.0f} samples/s)")


if __name__ == "__main__":
    main()

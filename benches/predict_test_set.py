"""Benchmark: predicting a Kaggle-test-set-sized input (65,818 one-sample
files) with `[output] data = false` (predictions only) against the default
mode that also writes every input back out as labelled data.

  python benches/predict_test_set.py [--files 65818] [--full-files 3000]
                                     [--threads 2] [--batch 32] [--keep DIR]

The input is --files hard links (names like Kaggle's: 10 hex digits) of 8
distinct real-layout (5, 1000, 70) float32 files, so it costs no disk space.
The model is the project's demo model (`seispipe make-demo-model`), the same
in all runs. Printed, from this one invocation:

  * predictions-only run over all files: bytes written, samples/s, peak RSS;
  * the default mode over the first --full-files files (the whole set would
    write ~92 GB): bytes written per sample, samples/s;
  * the model alone (torch.jit, pre-loaded batches, same batch size and
    threads): samples/s, and each pipeline's rate as a share of it.
Needs target/release/seispipe and seispipe-torch (`make build`).
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import header as machine_header  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "seispipe"


def tree_bytes(d):
    return sum(f.stat().st_size for f in pathlib.Path(d).rglob("*") if f.is_file())


def run(cmd, cwd):
    """Run cmd; return (seconds, peak RSS in MiB)."""
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=cwd, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.time() - t0
    err = p.stderr.read().decode()
    if status != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{err}")
    return dt, usage.ru_maxrss / 1024


def pipeline(work, name, inputs, data, batch):
    p = work / f"{name}.toml"
    p.write_text(
        f'seed = 0\ncopies = 1\nkeep_original = false\n[input]\npath = "{inputs}"\n'
        f'[output]\ndir = "{name}"\nsamples_per_shard = 500\n'
        + ("" if data else "data = false\n")
        + f'[[stages]]\ntype = "pseudo_label"\ndevice = "cpu"\nbatch_size = {batch}\n'
        f'models = [{{ path = "model.pt" }}]\nsubmission = "submission.csv"\n'
    )
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=65818)
    ap.add_argument("--full-files", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--keep")
    a = ap.parse_args()
    print(machine_header(a.keep or tempfile.gettempdir()), flush=True)
    work = pathlib.Path(a.keep or tempfile.mkdtemp(prefix="seispipe-predict-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rng = np.random.default_rng(0)
        src = work / "src"
        src.mkdir(exist_ok=True)
        for k in range(8):
            np.save(src / f"{k}.npy", rng.standard_normal((5, 1000, 70)).astype(np.float32))
        for name, n in (("test", a.files), ("test_subset", a.full_files)):
            d = work / name
            d.mkdir(exist_ok=True)
            for i in range(n):
                link = d / f"{(i * 2654435761) % 16**10:010x}.npy"
                if not link.exists():
                    os.link(src / f"{i % 8}.npy", link)
        subprocess.run([BIN, "make-demo-model", "model.pt", "--data", str(ROOT / "data/train_samples")],
                       cwd=work, check=True, capture_output=True)
        threads = ["--threads", str(a.threads), "--quiet"]
        # Predictions only, the whole set.
        p = pipeline(work, "only", "test", False, a.batch)
        t_only, rss_only = run([BIN, "run", p.name] + threads, work)
        b_only = tree_bytes(work / "only")
        # The default mode on the subset.
        p = pipeline(work, "full", "test_subset", True, a.batch)
        t_full, rss_full = run([BIN, "run", p.name] + threads, work)
        b_full = tree_bytes(work / "full")
        # The model alone.
        torch.set_num_threads(a.threads)
        model = torch.jit.load(str(work / "model.pt"))
        x = torch.from_numpy(np.stack([np.load(src / f"{k % 8}.npy") for k in range(a.batch)]))
        with torch.no_grad():
            model(x)
            n, t0 = 0, time.time()
            while time.time() - t0 < 10:
                model(x)
                n += a.batch
        model_rate = n / (time.time() - t0)
        r_only, r_full = a.files / t_only, a.full_files / t_full
        print(f"inputs: {a.files} one-sample files ({a.files * 1.4e-3:.0f} GB as Kaggle ships them)")
        print(f"predictions only (data = false), {a.files} files: {b_only / 1e6:.1f} MB written "
              f"({b_only / a.files / 1e3:.2f} kB per sample), {r_only:.0f} samples/s, peak RSS {rss_only:.0f} MiB")
        print(f"default (data written), {a.full_files} files: {b_full / 1e6:.1f} MB written "
              f"({b_full / a.full_files / 1e3:.0f} kB per sample; {b_full / a.full_files * a.files / 1e9:.0f} GB "
              f"for the whole set), {r_full:.0f} samples/s, peak RSS {rss_full:.0f} MiB")
        print(f"model alone (demo model, batch {a.batch}, {a.threads} threads): {model_rate:.0f} samples/s; "
              f"predictions only = {r_only / model_rate:.2f}x of it, default = {r_full / model_rate:.2f}x")
        print(f"bytes written per sample: default / predictions only = {(b_full / a.full_files) / (b_only / a.files):.0f}x")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

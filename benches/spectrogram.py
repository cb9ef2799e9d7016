"""Spectrograms per second for whole samples (5 sources x 70 receivers x 1000
time steps): seispipe's spectrogram stage vs torch.stft (CPU) vs scipy, on the
same inputs in the same run.

Usage (from the repository root, after `. scripts/env.sh`):
    $SEISPIPE_PYTHON benches/spectrogram.py [--samples 64] [--threads 2] [--repeats 5]

What is timed — compute only, inputs and outputs in memory, no file I/O for
anyone; each side produces float32 magnitudes in seispipe's layout
(source, freq, frame, receiver), one output array allocated per sample:
  seispipe : examples/spectrogram_bench (built here with the project's cargo
             flags) — every sample once per repeat, samples spread over a rayon
             pool of --threads workers, as the executor does.
  torch    : torch.set_num_threads(--threads); per sample
             x.permute(0, 2, 1).reshape(350, T) -> torch.stft(return_complex)
             -> .abs() -> reshape/permute to (5, F, frames, 70).contiguous();
             also once with all samples in one call ("torch batched").
  scipy    : scipy.signal.ShortTimeFFT.stft over the (350, T) traces of a
             sample (single-threaded; scipy has no thread knob here) -> abs ->
             same layout.
Each figure is the best of --repeats runs (after one warm-up); the outputs are
checked to agree before anything is printed.

With --end-to-end, also file to file on one (N, 5, 1000, 70) f32 shard with
its labels: `seispipe run -q --threads T` of a one-stage pipeline (process
start, read, STFT, f32 write, SHA-256, fsync, journal, manifest) vs Python
np.load of data and labels -> the same per-sample torch.stft -> np.save of
both (no hashing, no fsync: the Python side does strictly less work). The
seispipe binary's start-up (`seispipe stages`) is timed separately and
reported.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.signal as ss
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import header as machine_header  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_samples(n):
    """Real-looking samples: the committed sample shards if present, tiled to n."""
    got = []
    for f in sorted(glob.glob(os.path.join(ROOT, "data", "train_samples", "**", "*.npy"), recursive=True)):
        try:
            a = np.load(f, mmap_mode="r")
        except Exception:
            continue
        if a.ndim == 4 and a.shape[1:] == (5, 1000, 70):
            got.append(np.asarray(a, dtype=np.float32))
    if got:
        pool = np.concatenate(got)
    else:
        pool = np.random.default_rng(0).standard_normal((8, 5, 1000, 70)).astype(np.float32)
    reps = -(-n // len(pool))
    return np.ascontiguousarray(np.concatenate([pool] * reps)[:n])


def best(f, repeats):
    f()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t)
    return min(ts), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-fft", type=int, default=128)
    ap.add_argument("--hop", type=int, default=32)
    ap.add_argument("--end-to-end", action="store_true")
    args = ap.parse_args()
    print(machine_header(None), flush=True)
    n_fft, hop, threads = args.n_fft, args.hop, args.threads
    x = load_samples(args.samples)
    n, S, T, R = x.shape
    params = {"n_fft": n_fft, "hop_length": hop, "output": "magnitude"}

    env = dict(os.environ)
    subprocess.run(
        ["cargo", "build", "--release", "--example", "spectrogram_bench", "-q"],
        cwd=ROOT, check=True, env=env,
    )
    exe = os.path.join(ROOT, "target", "release", "examples", "spectrogram_bench")
    with tempfile.TemporaryDirectory() as d:
        inp, outp = os.path.join(d, "in.npy"), os.path.join(d, "out.npy")
        np.save(inp, x)
        r = subprocess.run(
            [exe, inp, str(threads), str(args.repeats + 1), json.dumps(params), outp],
            check=True, capture_output=True, text=True,
        )
        res = json.loads(r.stdout)
        t_sp = min(res["seconds"][1:])  # first repeat is the warm-up
        y_sp = np.load(outp)

    torch.set_num_threads(threads)
    w = torch.hann_window(n_fft, periodic=True)
    xt = torch.from_numpy(x)

    def torch_one(s):
        tr = s.permute(0, 2, 1).reshape(S * R, T)
        m = torch.stft(tr, n_fft, hop, n_fft, w, center=True, pad_mode="reflect", return_complex=True).abs()
        return m.reshape(S, R, m.shape[1], m.shape[2]).permute(0, 2, 3, 1).contiguous()

    t_torch, y_torch = best(lambda: [torch_one(xt[i]) for i in range(n)], args.repeats)

    def torch_batched():
        tr = xt.permute(0, 1, 3, 2).reshape(n * S * R, T)
        m = torch.stft(tr, n_fft, hop, n_fft, w, center=True, pad_mode="reflect", return_complex=True).abs()
        return m.reshape(n, S, R, m.shape[1], m.shape[2]).permute(0, 1, 3, 4, 2).contiguous()

    t_torch_b, _ = best(torch_batched, args.repeats)

    wn = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    stf = ss.ShortTimeFFT(wn, hop, 1000.0, mfft=n_fft, fft_mode="onesided", scale_to=None, phase_shift=None)
    frames = 1 + T // hop

    def scipy_one(s):
        tr = np.transpose(s, (0, 2, 1)).reshape(S * R, T)
        m = np.abs(stf.stft(tr, p0=0, p1=frames, padding="even", axis=-1)).astype(np.float32)
        return np.ascontiguousarray(m.reshape(S, R, m.shape[1], m.shape[2]).transpose(0, 2, 3, 1))

    t_scipy, y_scipy = best(lambda: [scipy_one(x[i]) for i in range(n)], max(1, args.repeats // 2))

    yt = np.stack([a.numpy() for a in y_torch])
    ys = np.stack(y_scipy)
    peak = np.abs(yt).max()
    assert y_sp.shape == yt.shape == ys.shape, (y_sp.shape, yt.shape, ys.shape)
    assert np.abs(y_sp - yt).max() <= 1e-5 * peak, "seispipe and torch disagree"
    assert np.abs(ys - yt).max() <= 1e-5 * peak, "scipy and torch disagree"

    rate = lambda t: n / t
    e2e = end_to_end(x, params, threads, args.repeats, torch_one) if args.end_to_end else None
    print(f"{n} samples of {S}x{T}x{R}, n_fft={n_fft}, hop={hop}, magnitude, output {y_sp.shape[1:]}, "
          f"threads={threads}, best of {args.repeats}")
    print(f"  seispipe        {rate(t_sp):9.1f} samples/s")
    print(f"  torch.stft      {rate(t_torch):9.1f} samples/s   (per-sample calls)")
    print(f"  torch batched   {rate(t_torch_b):9.1f} samples/s   (all {n} samples in one call)")
    print(f"  scipy           {rate(t_scipy):9.1f} samples/s   (ShortTimeFFT, 1 thread)")
    print(f"  seispipe / torch.stft    = {t_torch / t_sp:5.2f}x")
    print(f"  seispipe / torch batched = {t_torch_b / t_sp:5.2f}x")
    print(f"  seispipe / scipy         = {t_scipy / t_sp:5.2f}x")
    if e2e:
        t_run, t_py, t_start = e2e
        print(f"end to end, file to file ({n} samples, labels carried):")
        print(f"  seispipe run    {rate(t_run):9.1f} samples/s")
        print(f"  numpy+torch     {rate(t_py):9.1f} samples/s   (np.load, torch.stft, np.save)")
        print(f"  seispipe / numpy+torch   = {t_py / t_run:5.2f}x")
        print(f"  (seispipe's process start, libtorch loading included: {t_start:.2f} s of {t_run:.2f} s;"
              f" without it {rate(t_run - t_start):.1f} samples/s)")


def end_to_end(x, params, threads, repeats, torch_one):
    n = x.shape[0]
    exe = os.path.join(ROOT, "target", "release", "seispipe")
    subprocess.run(["cargo", "build", "--release", "--workspace", "-q"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "train", "A", "data", "data1.npy")
        model = os.path.join(d, "train", "A", "model", "model1.npy")
        os.makedirs(os.path.dirname(data))
        os.makedirs(os.path.dirname(model))
        np.save(data, x)
        np.save(model, np.full((n, 1, 70, 70), 2500.0, dtype=np.float32))
        out = os.path.join(d, "out")
        pipe = os.path.join(d, "pipe.toml")
        with open(pipe, "w") as f:
            f.write(f'seed = 1\nkeep_original = false\n[input]\npath = "{d}/train"\n'
                    f'[output]\ndir = "{out}"\nsamples_per_shard = {n}\n[[stages]]\ntype = "spectrogram"\n'
                    + "".join(f"{k} = {json.dumps(v)}\n" for k, v in params.items()))

        def run():
            subprocess.run(["rm", "-rf", out], check=True)
            subprocess.run([exe, "run", "-q", "--threads", str(threads), pipe], check=True)

        t_run, _ = best(run, repeats)
        t_start, _ = best(lambda: subprocess.run([exe, "stages"], check=True, capture_output=True), repeats)
        got = np.load(os.path.join(out, "data", "data1.npy"))

        def py():
            a = np.load(data)
            m = np.load(model)
            y = np.stack([torch_one(torch.from_numpy(a[i])).numpy() for i in range(n)])
            np.save(os.path.join(d, "py_data.npy"), y)
            np.save(os.path.join(d, "py_model.npy"), m)
            return y

        t_py, want = best(py, repeats)
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max(), "seispipe run and torch disagree"
    return t_run, t_py, t_start


if __name__ == "__main__":
    sys.exit(main())

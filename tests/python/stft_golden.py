"""Goldens for the spectrogram stage, from torch.stft and scipy.signal.

Usage: stft_golden.py OUT_DIR [REPO_ROOT]

Writes into OUT_DIR:
  traces.npy            (time, n_traces) float32 — the test traces, laid out as
                        one (source=1, time, receiver=n_traces) sample
  cases.json            list of {"params": <spectrogram stage params>, "torch":
                        {kind: file}, "scipy": {kind: file}, "mag": file,
                        "shape": [...]}
  case<i>_<ref>_<kind>.npy  expected stage output, float32, layout
                        (channel, freq, frame, receiver) as the stage writes it
  case<i>_mag.npy       |S| from torch (float64 maths, cropped like the output)
  case<i>_peak.npy      (n_traces,) max |S| of each trace over the whole
                        uncropped spectrum: the scale of f32 FFT rounding

Or: stft_golden.py --e2e INPUT.npy PARAMS_JSON OUT.npy — the torch.stft
reference of every sample of an (N, 5, T, 70) shard with the stage parameters
PARAMS_JSON (a JSON object as in the pipeline file), written (N, C, freq,
frame, receiver) float32 as `seispipe run` writes the spectrogram stage output.

Traces: seeded Gaussian noise, 15 Hz Ricker arrivals (direct wave, reflections,
decaying amplitudes, as a shot gather looks), a near-silent trace, and — when
REPO_ROOT/data holds OpenFWI-shaped sample shards (N, 5, 1000, 70) — a few real
traces from the first of them.

References are computed in float64 from the float32 traces:
  torch : torch.stft(x, n_fft, hop, win_length, window, center, pad_mode,
          normalized, onesided, return_complex=True), window =
          torch.<hann|hamming>_window(win_length, periodic=True) or ones.
  scipy : scipy.signal.ShortTimeFFT(w, hop, fs, mfft=n_fft, fft_mode, scale_to=None,
          phase_shift=None) with w the window zero-padded centrally to n_fft (what
          torch does); center=True -> .stft(x, p0=0, p1=frames, padding='even'
          (reflect) | 'zeros' (constant)); center=False -> k_offset=n_fft//2;
          normalized -> * n_fft**-0.5. Where it applies (win_length == n_fft,
          center, onesided) scipy.signal.stft(boundary='even'|'zeros',
          padded=False, scaling='spectrum') * sum(w) is checked to agree too.
The script asserts torch and scipy agree to 1e-9 of the peak before writing.
Output kinds from S: magnitude |S|, power |S|^2, log_magnitude ln(|S| + eps),
db 10*log10(max(|S|^2, amin)) (torchaudio AmplitudeToDB(stype='power',
top_db=None)), real_imag (Re, Im as channels 0, 1).
"""

import glob
import json
import os
import sys

import numpy as np
import scipy.signal as ss
import torch

T = 1000
FS = 1000.0
KINDS = ["magnitude", "power", "log_magnitude", "db", "real_imag"]


def ricker(t, f, t0):
    a = (np.pi * f * (t - t0)) ** 2
    return (1 - 2 * a) * np.exp(-a)


def make_traces(root):
    rng = np.random.default_rng(20261126)
    t = np.arange(T) / FS
    traces = [rng.standard_normal(T), 3.0 * rng.standard_normal(T)]
    for r in range(4):
        # direct wave + two reflections, amplitude decaying with offset
        x = 40.0 / (1 + r) * ricker(t, 15.0, 0.05 + 0.02 * r)
        x += 6.0 * ricker(t, 15.0, 0.35 + 0.01 * r * r) - 3.0 * ricker(t, 15.0, 0.62 + 0.03 * r)
        x += 0.01 * rng.standard_normal(T)
        traces.append(x)
    traces.append(1e-3 * ricker(t, 15.0, 0.5))  # a quiet trace beside loud ones
    if root:
        files = sorted(glob.glob(os.path.join(root, "data", "**", "*.npy"), recursive=True))
        for f in files:
            try:
                a = np.load(f, mmap_mode="r")
            except Exception:
                continue
            if a.ndim == 4 and a.shape[1:] == (5, 1000, 70):
                for s, r in [(0, 0), (2, 35), (4, 69)]:
                    traces.append(np.asarray(a[0, s, :, r], dtype=np.float64))
                print(f"real traces from {f}", file=sys.stderr)
                break
    return np.stack(traces).astype(np.float32)


def window(kind, win_length):
    if kind == "hann":
        return torch.hann_window(win_length, periodic=True, dtype=torch.float64)
    if kind == "hamming":
        return torch.hamming_window(win_length, periodic=True, dtype=torch.float64)
    return torch.ones(win_length, dtype=torch.float64)


def torch_stft(x, p):
    w = window(p["window"], p["win_length"])
    return torch.stft(
        torch.from_numpy(x.astype(np.float64)),
        p["n_fft"],
        hop_length=p["hop_length"],
        win_length=p["win_length"],
        window=w,
        center=p["center"],
        pad_mode=p["pad_mode"],
        normalized=p["normalized"],
        onesided=p["onesided"],
        return_complex=True,
    ).numpy()  # (n, bins, frames)


def scipy_stft(x, p, frames):
    n = p["n_fft"]
    wl = p["win_length"]
    w = np.zeros(n)
    left = (n - wl) // 2
    w[left : left + wl] = window(p["window"], wl).numpy()
    mode = "onesided" if p["onesided"] else "twosided"
    S = ss.ShortTimeFFT(w, p["hop_length"], FS, mfft=n, fft_mode=mode, scale_to=None, phase_shift=None)
    x = x.astype(np.float64)
    if p["center"]:
        pad = "even" if p["pad_mode"] == "reflect" else "zeros"
        Z = S.stft(x, p0=0, p1=frames, k_offset=0, padding=pad)
    else:
        Z = S.stft(x, p0=0, p1=frames, k_offset=n // 2)
    if p["normalized"]:
        Z = Z * n**-0.5
    if p["center"] and p["onesided"] and wl == n and not p["normalized"]:
        _, _, Z2 = ss.stft(
            x,
            fs=FS,
            window=w,
            nperseg=n,
            noverlap=n - p["hop_length"],
            nfft=n,
            boundary="even" if p["pad_mode"] == "reflect" else "zeros",
            padded=False,
            return_onesided=True,
            scaling="spectrum",
            axis=-1,
        )
        Z2 = Z2[..., :frames] * w.sum()
        assert np.abs(Z2 - Z).max() <= 1e-9 * np.abs(Z).max(), "scipy.signal.stft disagrees"
    return Z


def kind_of(S, kind, p):
    """S: (n, bins, frames) complex -> stage layout (channel, bins, frames, n)."""
    a = None
    if kind == "magnitude":
        a = np.abs(S)[None]
    elif kind == "power":
        a = (np.abs(S) ** 2)[None]
    elif kind == "log_magnitude":
        a = np.log(np.abs(S) + p.get("eps", 1e-6))[None]
    elif kind == "db":
        a = (10 * np.log10(np.maximum(np.abs(S) ** 2, p.get("amin", 1e-10))))[None]
    elif kind == "real_imag":
        a = np.stack([S.real, S.imag])
    return np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1))).astype(np.float32)


def crop(S, p):
    n = p["n_fft"]
    if "max_freq_hz" in p:
        last = int(np.floor(p["max_freq_hz"] * n / FS * (1 + 1e-12)))
        return S[:, : last + 1]
    if "bin_range" in p:
        a, b = p["bin_range"]
        return S[:, a:b]
    return S


def cases():
    out = []
    windows = ["hann", "hamming", "rectangular"]
    i = 0
    for n_fft in [64, 128, 256]:
        for hop in [n_fft // 4, n_fft // 2, 37]:
            for center, pad_mode in [(True, "reflect"), (True, "constant"), (False, "reflect")]:
                p = dict(
                    n_fft=n_fft,
                    hop_length=hop,
                    win_length=n_fft,
                    window=windows[i % 3],
                    center=center,
                    pad_mode=pad_mode,
                    normalized=False,
                    onesided=True,
                )
                i += 1
                out.append(p)
    # the less common options, one at a time
    base = dict(n_fft=128, hop_length=32, win_length=128, window="hann", center=True,
                pad_mode="reflect", normalized=False, onesided=True)
    out.append({**base, "win_length": 100})
    out.append({**base, "n_fft": 256, "win_length": 171, "window": "hamming", "hop_length": 50})
    out.append({**base, "normalized": True})
    out.append({**base, "onesided": False})
    out.append({**base, "onesided": False, "n_fft": 64, "hop_length": 16, "win_length": 64, "center": False})
    out.append({**base, "n_fft": 63, "hop_length": 20, "win_length": 63})
    out.append({**base, "n_fft": 100, "hop_length": 25, "win_length": 90, "pad_mode": "constant"})
    out.append({**base, "n_fft": 256, "hop_length": 64, "win_length": 256, "max_freq_hz": 45.0})
    out.append({**base, "bin_range": [3, 20]})
    out.append({**base, "eps": 1e-3, "amin": 1e-6})
    return out


def e2e(inp, params, out):
    """Whole-shard reference for the end-to-end test."""
    data = np.load(inp).astype(np.float32)  # (N, S, T, R)
    p = dict(window="hann", center=True, pad_mode="reflect", normalized=False,
             onesided=True, output="magnitude")
    p.update(json.loads(params))
    p.setdefault("hop_length", p["n_fft"] // 4)
    p.setdefault("win_length", p["n_fft"])
    n, s, t, r = data.shape
    traces = np.transpose(data, (0, 1, 3, 2)).reshape(n * s * r, t)
    S = crop(torch_stft(traces, p), p)  # (n*s*r, F, frames)
    a = kind_of(S, p["output"], p)  # (C, F, frames, n*s*r)
    c = a.shape[0]
    a = a.reshape(c, a.shape[1], a.shape[2], n, s, r)
    a = np.transpose(a, (3, 4, 0, 1, 2, 5))  # (n, s, c, F, frames, r)
    a = a.reshape(n, s * c, a.shape[3], a.shape[4], r)
    np.save(out, np.ascontiguousarray(a).astype(np.float32))


def main():
    if sys.argv[1] == "--e2e":
        return e2e(*sys.argv[2:5])
    out_dir = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else None
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    x = make_traces(root)
    np.save(os.path.join(out_dir, "traces.npy"), np.ascontiguousarray(x.T))
    listing = []
    for ci, p in enumerate(cases()):
        St = torch_stft(x, p)
        frames = St.shape[-1]
        Ss = scipy_stft(x, p, frames)
        assert Ss.shape == St.shape, (p, Ss.shape, St.shape)
        peak = np.abs(St).max()
        assert np.abs(Ss - St).max() <= 1e-9 * peak, ("torch and scipy disagree", p)
        St, Ss = crop(St, p), crop(Ss, p)
        entry = {"torch": {}, "scipy": {}}
        for kind in KINDS:
            spec = {k: v for k, v in p.items() if k not in ("eps", "amin")}
            spec["output"] = kind
            if kind == "log_magnitude" and "eps" in p:
                spec["eps"] = p["eps"]
            if kind == "db" and "amin" in p:
                spec["amin"] = p["amin"]
            for ref, S in [("torch", St), ("scipy", Ss)]:
                name = f"case{ci}_{ref}_{kind}.npy"
                a = kind_of(S, kind, p)
                np.save(os.path.join(out_dir, name), a)
                entry[ref][kind] = name
            entry.setdefault("specs", {})[kind] = spec
        full = torch_stft(x, p)
        np.save(os.path.join(out_dir, f"case{ci}_peak.npy"),
                np.abs(full).reshape(full.shape[0], -1).max(axis=1).astype(np.float32))
        entry["peak"] = f"case{ci}_peak.npy"
        mag = f"case{ci}_mag.npy"
        np.save(os.path.join(out_dir, mag), kind_of(St, "magnitude", p))
        entry["mag"] = mag
        entry["params"] = p
        listing.append(entry)
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(listing, f, indent=1)
    print(f"{len(listing)} cases, {x.shape[0]} traces")


if __name__ == "__main__":
    main()

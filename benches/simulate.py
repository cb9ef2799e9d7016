"""Benchmark: OpenFWI-exact simulation throughput of seispipe's blocked kernel
vs its reference kernel vs deepwave (CPU) vs a plain NumPy implementation of
the same scheme, on the same velocity maps, in one run.

usage: python benches/simulate.py [--samples 16] [--threads 2] [--numpy-samples 1]
                                  [--repeat 3] [--baseline-bin PATH] [--device cuda:0]
       python benches/simulate.py --maps A.npy[,B.npy…] [--threads 2] [--repeat 3]
       (run from the repository root after `cargo build --release --workspace`;
       use the venv python: $SEISPIPE_PYTHON, which has torch and deepwave)

Each of --repeat rounds runs, back to back on the same maps:
1. `seispipe synth` with the default (blocked) kernel: N CurveFault_B maps
   drawn and simulated (5 sources, 1000 steps, 310 x 310 padded grid) on
   --threads threads; its reported samples/s is the seispipe figure (map
   drawing and writing included);
2. the same synth with SEISPIPE_FD_KERNEL=reference (the row-loop kernel the
   blocked one must equal bit for bit; the outputs are compared);
3. deepwave.scalar on the same maps with torch.set_num_threads(--threads)
   (4th order, 20-cell PML, 1001 steps: the test's conventions);
4. with --baseline-bin, another seispipe binary (an earlier build).
Ratios are taken within each round (the machine may be shared: a round's runs
see the same load) and the median over rounds is printed beside the ratio of
the best rates. Then a NumPy port of OpenFWI's scheme (np.roll Laplacian, f32:
tests/python/openfwi_roll_ref.py) runs the first --numpy-samples maps; its
output is compared with seispipe's.
With --device (cpu or cuda:N), the libtorch simulator (`simulate` stage,
device = ...) runs the same maps through `seispipe run` (one chunk: every
map in one batch), and so does the Rust kernel (the stage without device,
--threads workers), each timed over the whole run (libtorch start, reading
and writing included: the same overheads for both); deepwave runs on the
device too. Prints samples/h of all three, the ratios, and the relative L2
between the device's records and the Rust kernel's.

With --maps, only the `simulate` stage (Rust kernel) runs end to end through
`seispipe run` on the given velocity maps, against deepwave on the same maps,
alternated over --repeat rounds (samples/h and their ratio).

Cell updates count the grid each code steps: 310 x 310 x 1000 x 5 per sample
for seispipe and NumPy; deepwave's grid is (70 + 2*20)^2 x 1001 x 5 (its PML
is thinner, and its PML cells do more work each).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "seispipe")
SOURCES = [0, 17, 34, 52, 69]
NBC, NX, NT, DX, DT = 120, 70, 1000, 10.0, 1e-3


sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from openfwi_roll_ref import ricker, simulate as numpy_simulate  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import header as machine_header  # noqa: E402


def deepwave_simulate(vel, threads, device="cpu"):
    import torch
    import deepwave

    torch.set_num_threads(threads)
    dev = torch.device(device)
    w = ricker(NT + 1)
    src = torch.zeros(5, 1, 2, dtype=torch.long)
    src[:, 0, 0] = 1
    src[:, 0, 1] = torch.tensor(SOURCES)
    rec = torch.zeros(5, 70, 2, dtype=torch.long)
    rec[:, :, 0] = 1
    rec[:, :, 1] = torch.arange(70)
    amp = -torch.from_numpy(w).reshape(1, 1, -1).repeat(5, 1, 1)
    src, rec, amp = src.to(dev), rec.to(dev), amp.to(dev)
    for i in range(vel.shape[0]):
        deepwave.scalar(torch.from_numpy(np.ascontiguousarray(vel[i])).to(dev), DX, DT,
                        source_amplitudes=amp, source_locations=src,
                        receiver_locations=rec, accuracy=4, pml_width=20, pml_freq=15.0)
    if dev.type == "cuda":
        torch.cuda.synchronize()


def stage_runs(vel, device, threads):
    """Time `seispipe run` with a simulate stage on the Rust kernel and on
    `device`; returns (rust samples/s, device samples/s, relative L2)."""
    n = vel.shape[0]
    with tempfile.TemporaryDirectory() as d:
        inp = os.path.join(d, "in", "CurveFault_B")
        os.makedirs(os.path.join(inp, "model"))
        os.makedirs(os.path.join(inp, "data"))
        np.save(os.path.join(inp, "model", "model1.npy"), vel[:, None].astype(np.float32))
        np.save(os.path.join(inp, "data", "data1.npy"), np.zeros((n, 5, NT, NX), np.float32))
        rates, outs = {}, {}
        for name, stage in [("rust", ""), ("device", f'device = "{device}"')]:
            pipe = os.path.join(d, f"{name}.toml")
            out = os.path.join(d, name)
            with open(pipe, "w") as f:
                f.write(f'seed = 1\ncopies = 1\nkeep_original = false\n[run]\nchunk_samples = {n}\n'
                        f'[input]\npath = "{os.path.join(d, "in")}"\n[output]\ndir = "{out}"\n'
                        f'[[stages]]\ntype = "simulate"\n{stage}\n')
            t = time.perf_counter()
            subprocess.run([BIN, "run", "--quiet", "--threads", str(threads), pipe], check=True)
            rates[name] = n / (time.perf_counter() - t)
            outs[name] = np.load(os.path.join(out, "data", "data1.npy"))
        err = float(np.linalg.norm(outs["device"] - outs["rust"]) / np.linalg.norm(outs["rust"]))
    return rates["rust"], rates["device"], err


def rust_stage_rate(vel, threads):
    """samples/s of `seispipe run` of a one-stage `simulate` pipeline (the Rust
    kernel, `threads` workers) over the maps `vel`, whole-run wall time
    (start, reading, simulating, hashing, writing, report)."""
    n = vel.shape[0]
    with tempfile.TemporaryDirectory() as d:
        inp = os.path.join(d, "in", "Maps")
        os.makedirs(os.path.join(inp, "model"))
        os.makedirs(os.path.join(inp, "data"))
        np.save(os.path.join(inp, "model", "model1.npy"), vel[:, None].astype(np.float32))
        np.save(os.path.join(inp, "data", "data1.npy"), np.zeros((n, 5, NT, NX), np.float32))
        pipe = os.path.join(d, "p.toml")
        with open(pipe, "w") as f:
            f.write(f'seed = 1\ncopies = 1\nkeep_original = false\n[input]\npath = "{os.path.join(d, "in")}"\n'
                    f'[output]\ndir = "{os.path.join(d, "out")}"\n[[stages]]\ntype = "simulate"\n')
        t = time.perf_counter()
        subprocess.run([BIN, "run", "--quiet", "--threads", str(threads), pipe], check=True)
        return n / (time.perf_counter() - t)


def maps_report(a):
    """The simulate stage end to end against deepwave on the maps of --maps."""
    vel = np.concatenate([np.load(f).reshape(-1, 70, 70) for f in a.maps.split(",")]).astype(np.float32)
    rounds = []
    for _ in range(a.repeat):
        sp = rust_stage_rate(vel, a.threads)
        t = time.perf_counter()
        deepwave_simulate(vel, a.threads)
        dw = vel.shape[0] / (time.perf_counter() - t)
        rounds.append((sp, dw))
        print(f"maps round {len(rounds)}: simulate stage {sp:.3f}, deepwave {dw:.3f} samples/s", flush=True)
    sp, dw = max(r[0] for r in rounds), max(r[1] for r in rounds)
    med = float(np.median([r[0] / r[1] for r in rounds]))
    print(f"--maps: {vel.shape[0]} maps ({vel.min():.0f}–{vel.max():.0f} m/s) from {a.maps}, {a.threads} threads")
    print(f"  simulate stage (seispipe run, Rust kernel): {sp * 3600:8.0f} samples/h")
    print(f"  deepwave.scalar (CPU, {a.threads} torch threads): {dw * 3600:8.0f} samples/h")
    print(f"  ratio simulate stage / deepwave: {sp / dw:.2f} (best rates), {med:.2f} (median of rounds)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--numpy-samples", type=int, default=1)
    ap.add_argument("--baseline-bin", help="an earlier seispipe binary to compare with")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (blocked, reference, deepwave[, baseline])")
    ap.add_argument("--device", help="also run the libtorch simulator (simulate stage) and deepwave on this device: cpu or cuda:N")
    ap.add_argument("--maps", help="comma-separated .npy files of velocity maps ((N, 1, 70, 70) or (N, 70, 70)): "
                    "time only the simulate stage end to end against deepwave on them")
    a = ap.parse_args()
    print(machine_header(tempfile.gettempdir()), flush=True)
    if a.maps:
        maps_report(a)
        return

    def synth(binary, kernel=None):
        env = dict(os.environ)
        env.pop("SEISPIPE_FD_KERNEL", None)
        if kernel:
            env["SEISPIPE_FD_KERNEL"] = kernel
        with tempfile.TemporaryDirectory() as d:
            cmd = [binary, "synth", d, "--family", "CurveFault_B", "--samples", str(a.samples),
                   "--seed", "7", "--threads", str(a.threads)]
            t = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            wall = time.perf_counter() - t
            m = re.search(r"in ([0-9.]+) s \(([0-9.]+) samples/s.*kernel (\w+)(?: \((\w+)\))?", r.stderr)
            vel = np.load(os.path.join(d, "CurveFault_B", "vel6_1_0.npy"))[:, 0].astype(np.float32)
            ours = np.load(os.path.join(d, "CurveFault_B", "seis6_1_0.npy"))
        return float(m.group(2)), f"{m.group(3)} {m.group(4) or ''}".strip(), wall, vel, ours

    rounds = []
    for _ in range(a.repeat):
        rate, kernel, wall, vel, ours = synth(BIN)
        ref_rate, ref_kernel, _, _, ref_out = synth(BIN, "reference")
        if not np.array_equal(ours.view(np.uint32), ref_out.view(np.uint32)):
            sys.exit("blocked and reference kernels wrote different bytes")
        t = time.perf_counter()
        deepwave_simulate(vel, a.threads)
        dw_rate = a.samples / (time.perf_counter() - t)
        base_rate = synth(a.baseline_bin)[0] if a.baseline_bin else None
        rounds.append((rate, ref_rate, dw_rate, base_rate))
        print(f"round {len(rounds)}: blocked {rate:.3f}, reference {ref_rate:.3f}, deepwave {dw_rate:.3f}"
              + (f", baseline {base_rate:.3f}" if base_rate else "") + " samples/s", flush=True)

    def best(i):
        return max(r[i] for r in rounds)

    def median_ratio(i, j):
        return float(np.median([r[i] / r[j] for r in rounds]))

    sp_rate, ref_rate, dw_rate = best(0), best(1), best(2)
    cells_sp = 310 * 310 * NT * 5
    cells_dw = (70 + 40) ** 2 * (NT + 1) * 5

    nn = max(1, min(a.numpy_samples, a.samples))
    t = time.perf_counter()
    ref = [numpy_simulate(vel[i]) for i in range(nn)]
    np_s = time.perf_counter() - t
    np_rate = nn / np_s
    err = max(float(np.linalg.norm(ours[i] - ref[i]) / np.linalg.norm(ref[i])) for i in range(nn))

    print(f"velocity maps: {a.samples} CurveFault_B, threads {a.threads}, cpu: {os.cpu_count()} cores, "
          f"{a.repeat} rounds (best rate of each)")
    print(f"{'':28} {'samples/s':>10} {'samples/h':>10} {'Mcell-upd/s':>12}")
    for name, rate, cells in [(f"seispipe {kernel}", sp_rate, cells_sp), (f"seispipe {ref_kernel}", ref_rate, cells_sp),
                              ("deepwave", dw_rate, cells_dw), ("numpy", np_rate, cells_sp)]:
        print(f"{name:28} {rate:10.3f} {rate * 3600:10.0f} {rate * cells / 1e6:12.0f}")
    print(f"synth wall time incl. process start (last blocked run) {wall:.2f} s")
    print(f"ratio samples/s  blocked/reference {sp_rate / ref_rate:.2f} (median of rounds {median_ratio(0, 1):.2f})   "
          f"blocked/deepwave {sp_rate / dw_rate:.2f} (median {median_ratio(0, 2):.2f})   "
          f"reference/deepwave {ref_rate / dw_rate:.2f}   blocked/numpy {sp_rate / np_rate:.1f}")
    print(f"ratio cell-upd/s blocked/deepwave {sp_rate * cells_sp / (dw_rate * cells_dw):.2f}")
    if a.baseline_bin:
        print(f"baseline {a.baseline_bin}: {best(3):.3f} samples/s; ratio new/baseline {sp_rate / best(3):.3f} "
              f"(median of rounds {median_ratio(0, 3):.3f})")
    print("blocked and reference outputs: bit-identical in every round")
    print(f"numpy np.roll port vs seispipe output: relative L2 {err:.2e}")
    if a.device:
        device_report(a, vel)


def device_report(a, vel):
    rust, dev, err = stage_runs(vel, a.device, a.threads)
    t = time.perf_counter()
    deepwave_simulate(vel, a.threads, a.device)
    dw_dev = a.samples / (time.perf_counter() - t)
    print(f"simulate stage through `seispipe run`, {a.samples} maps in one chunk (whole-run wall time):")
    print(f"{'':26} {'samples/s':>10} {'samples/h':>10}")
    for name, rate in [(f"tch on {a.device}", dev), (f"Rust kernel, {a.threads} threads", rust),
                       (f"deepwave on {a.device}", dw_dev)]:
        print(f"{name:26} {rate:10.3f} {rate * 3600:10.0f}")
    print(f"ratio samples/s   tch {a.device}/Rust kernel {dev / rust:.2f}   tch {a.device}/deepwave {dev / dw_dev:.2f}")
    print(f"tch {a.device} vs Rust kernel records: relative L2 {err:.2e}")


if __name__ == "__main__":
    sys.exit(main())

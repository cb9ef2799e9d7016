"""Benchmark: pseudo-labelling throughput (samples/s) of the whole seispipe
pipeline (read -> infer -> write shards + submission CSV) against

  * the model alone: torch.jit on pre-loaded batches, same model, same batch
    size, same intra-op threads (goal: pipeline >= 90 % of this, i.e. I/O
    hidden behind inference);
  * a plain Python loop: np.load per file, torch.jit.load'ed model, batch,
    np.save one prediction per file.

All three run in this one process invocation on the same files and model.

  python benches/pseudo_label.py [--files 192] [--threads 2] [--batch 16]
      [--model bench|demo] [--keep DIR]

`--model bench` (default) is a small conv net scripted here (about 1 GFLOP,
~60 ms per sample on 2 CPU cores: a light competition model); `--model demo` uses the
project's own traced demo model (tiny: the run is I/O bound).
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


class BenchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(5, 64, 3, padding=1)
        self.c2 = torch.nn.Conv2d(64, 64, 3, padding=1)
        self.c3 = torch.nn.Conv2d(64, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.avg_pool2d(x, (5, 1))
        y = torch.relu(self.c1(y))
        y = torch.relu(self.c2(y))
        y = torch.nn.functional.adaptive_avg_pool2d(y, (70, 70))
        return torch.tanh(self.c3(y))


def sign_log1p(x):
    return torch.sign(x) * torch.log1p(torch.abs(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--model", choices=["bench", "demo"], default="bench")
    ap.add_argument("--keep", type=pathlib.Path, default=None)
    ap.add_argument("--repeat", type=int, default=3,
                    help="interleaved repetitions; the best time of each method counts")
    a = ap.parse_args()
    print(machine_header(a.keep or tempfile.gettempdir()), flush=True)
    if not BIN.exists():
        sys.exit(f"{BIN} missing: run `make build` first")
    work = pathlib.Path(a.keep or tempfile.mkdtemp(prefix="seispipe-bench-pl-"))
    work.mkdir(parents=True, exist_ok=True)
    test = work / "test"
    test.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(a.files):
        f = test / ("%010x.npy" % (0x1000000 + k))
        if not f.exists():
            np.save(f, (rng.standard_normal((5, 1000, 70)) * 5).astype(np.float32))
    model = work / f"{a.model}.pt"
    if a.model == "bench":
        torch.manual_seed(0)
        torch.jit.save(torch.jit.script(BenchNet().eval()), str(model))
    else:
        subprocess.run([str(BIN), "make-demo-model", str(model), "--steps", "5"], check=True,
                       cwd=ROOT, stderr=subprocess.DEVNULL)
    torch.set_num_threads(a.threads)
    files = sorted(test.glob("*.npy"))
    m = torch.jit.load(str(model)).eval()

    # 1. The model alone on pre-loaded batches.
    xs = [np.stack([np.load(f) for f in files[i:i + a.batch]]) for i in range(0, len(files), a.batch)]

    def model_alone():
        with torch.no_grad():
            m(sign_log1p(torch.from_numpy(xs[0])))  # warm-up
            t0 = time.perf_counter()
            for x in xs:
                y = (m(sign_log1p(torch.from_numpy(x))) + 1.0) * 1500.0 + 1500.0
                y.clamp_(1500.0, 4500.0)
            return time.perf_counter() - t0

    # 2. The plain Python loop.
    def python_loop():
        pout = work / "python_out"
        shutil.rmtree(pout, ignore_errors=True)
        pout.mkdir()
        t0 = time.perf_counter()
        m2 = torch.jit.load(str(model)).eval()
        with torch.no_grad():
            for i in range(0, len(files), a.batch):
                fs = files[i:i + a.batch]
                x = torch.from_numpy(np.stack([np.load(f) for f in fs]))
                y = ((m2(sign_log1p(x)) + 1.0) * 1500.0 + 1500.0).clamp_(1500.0, 4500.0)
                for f, v in zip(fs, y.numpy()):
                    np.save(pout / f.name, v.reshape(70, 70))
        return time.perf_counter() - t0

    # 3. seispipe: read -> infer -> write shards + submission, on all files
    # and on the first quarter (hard links), so the fixed cost (loading
    # libtorch, the model and its probe batch; final fsyncs; exit) can be
    # separated from the steady-state rate.
    small = work / "test_quarter"
    shutil.rmtree(small, ignore_errors=True)
    small.mkdir()
    n_small = max(1, len(files) // 4)
    for f in files[:n_small]:
        os.link(f, small / f.name)

    def seispipe(inp, tag):
        out = work / f"seispipe_out_{tag}"
        shutil.rmtree(out, ignore_errors=True)
        pipe = work / f"bench_{tag}.toml"
        pipe.write_text(f"""seed = 0
copies = 1
keep_original = false
[input]
path = "{inp}"
[output]
dir = "{out}"
samples_per_shard = 500
[run]
chunk_samples = {a.batch}
[[stages]]
type = "pseudo_label"
models = [{{ path = "{model}" }}]
device = "cpu"
batch_size = {a.batch}
torch_threads = {a.threads}
input_transform = "log1p"
output_transform = "minmax"
""")
        t0 = time.perf_counter()
        subprocess.run([str(BIN), "run", "--quiet", "--threads", str(a.threads), str(pipe)], check=True)
        return time.perf_counter() - t0

    t_model = t_python = t_small = t_pipe = float("inf")
    for _ in range(a.repeat):
        t_model = min(t_model, model_alone())
        t_python = min(t_python, python_loop())
        t_small = min(t_small, seispipe(small, "quarter"))
        t_pipe = min(t_pipe, seispipe(test, "all"))

    n = len(files)
    r_model, r_python, r_pipe = n / t_model, n / t_python, n / t_pipe
    r_steady = (n - n_small) / max(t_pipe - t_small, 1e-9)
    fixed = t_pipe - n / r_steady
    print(f"{n} files, model={a.model}, batch {a.batch}, {a.threads} threads, best of {a.repeat}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"model alone (pre-loaded batches):               {r_model:8.2f} samples/s")
    print(f"plain Python loop (np.load/jit/np.save):        {r_python:8.2f} samples/s")
    print(f"seispipe run end to end (read, infer, write):   {r_pipe:8.2f} samples/s  ({t_pipe:.2f} s)")
    print(f"seispipe steady state ({n_small} vs {n} files):       {r_steady:8.2f} samples/s  (fixed cost {fixed:.2f} s)")
    print(f"ratio seispipe steady / model alone: {r_steady / r_model:.3f}   (goal >= 0.90)")
    print(f"ratio seispipe end-to-end / model alone: {r_pipe / r_model:.3f}")
    print(f"ratio seispipe end-to-end / Python loop: {r_pipe / r_python:.3f}")
    if a.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

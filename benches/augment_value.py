#!/usr/bin/env python3
"""Does seispipe's data make a model better? The augmentation benchmark.

Makes a training pool and a held-out set with `seispipe synth` (or takes
OpenFWI/Kaggle-layout directories), builds one seispipe pipeline per
condition, trains the same InversionNet-style model on each condition through
`seispipe_data` with the same optimizer steps, batch size and schedule, and
reports held-out MAE in m/s: mean ± std over training seeds and the paired
difference to the N-originals condition with a 95 % confidence interval.

Conditions (each adds to the same N originals, except the first two):

  N            the N originals
  2N           N more genuine originals (the positive control)
  flip         + N plain mirror flips (middle source 10 m off)
  flip_exact   + N exact flips (middle source re-simulated)
  noise        + N Gaussian-noise copies (20 dB SNR)
  mixup        + N velocity mixups (α ~ U(0.3, 0.7), same family), re-simulated
  affine       + N crop-and-resize/rotations of the maps, re-simulated
  new_geology  + N new maps of the same family (`seispipe synth`, other seed)
  combo        + every single augmentation whose mean paired difference to N
               was negative (decided after the singles, by that rule alone)

Writes into --out: results.json, augment_value.png, index.html; per run a JSON
file under runs/ (a killed benchmark resumes: finished runs are not redone).

    python benches/augment_value.py --out out/augment-value            # CPU, ~2 h on 2 cores
    python benches/augment_value.py --device cuda --out out/av-gpu     # full scale, one GPU
    python benches/augment_value.py --quick --out /tmp/av-quick        # wiring only
"""

import argparse
import base64
import hashlib
import html
import json
import math
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import header as machine_header  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
try:
    from seispipe_data import SeispipeDataset
except ImportError:  # run from a clone without `pip install ./python`
    sys.path.insert(0, str(REPO / "python" / "src"))
    from seispipe_data import SeispipeDataset

V_MIN, V_MAX = 1500.0, 4500.0  # m/s, the OpenFWI velocity range
SINGLES = ["flip", "flip_exact", "noise", "mixup", "affine", "new_geology"]
ALL_CONDITIONS = ["N", "2N", *SINGLES, "combo"]

# Each augmentation's stages: one copy of each original, the original not kept
# (the originals come from the shared N output).
STAGES = {
    "flip": '[[stages]]\ntype = "flip"\np = 1.0\n',
    "flip_exact": ('[[stages]]\ntype = "flip"\np = 1.0\nexact = true\n'
                   'resimulate_channels = "middle"\n'),
    "noise": '[[stages]]\ntype = "gaussian_noise"\np = 1.0\nsnr_db = 20.0\n',
    "mixup": ('[[stages]]\ntype = "velocity_mixup"\nalpha_min = 0.3\nalpha_max = 0.7\n'
              'group = "family"\n'),
    "affine": '[[stages]]\ntype = "velocity_affine"\ncrop_min = 0.8\nmax_rotate_deg = 5.0\n',
}

# Configurations. `cpu` finishes in <= 2 h on a 2-core machine; `cuda` is the
# full-scale run on one GPU; `quick` checks the wiring in a few seconds.
CONFIGS = {
    "cpu": dict(families=["CurveVel_A"], n=100, heldout=500, steps=500, batch=16, lr=1e-3,
                seeds=5, width=24, latent=128, decimate=4, conditions=ALL_CONDITIONS),
    # The hardest families (DOMAIN.md §6); 4 × 1000 originals, ~6 GB of
    # training arrays in memory for the largest condition, ~1.5 h of training
    # on one modern GPU (unmeasured).
    "cuda": dict(families=["CurveVel_A", "CurveVel_B", "FlatFault_B", "CurveFault_B"],
                 n=1000, heldout=1000, steps=8000, batch=64, lr=1e-3, seeds=5, width=32,
                 latent=256, decimate=2, conditions=ALL_CONDITIONS),
    "quick": dict(families=["CurveVel_A"], n=8, heldout=8, steps=6, batch=4, lr=1e-3,
                  seeds=1, width=8, latent=32, decimate=4, conditions=["N", "flip"]),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the model

def block(c_in, c_out, kernel, stride, padding):
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


def up(c_in, c_out):
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


class InversionNet(nn.Module):
    """examples/train_baseline.py's InversionNet shape for any number of time
    samples: strided convolutions along time, then along (time, receiver), to
    a latent vector; transposed convolutions grow it to 80 × 80, cropped to 70."""

    def __init__(self, t, width, latent):
        super().__init__()
        w = width
        layers = [block(5, w, (7, 1), (2, 1), (3, 0))]
        t = (t + 1) // 2
        c = w
        while t > 64:  # time-only strides down to <= 64 samples
            layers.append(block(c, 2 * w, (3, 1), (2, 1), (1, 0)))
            c, t = 2 * w, (t + 1) // 2
        x = 70
        for c_out in (4 * w, 4 * w, 8 * w, 8 * w):
            if t <= 4:
                break
            layers.append(block(c, c_out, 3, 2, 1))
            c, t, x = c_out, (t + 1) // 2, (x + 1) // 2
        layers += [nn.Conv2d(c, latent, (t, x)), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*layers)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(latent, 8 * w, 5), nn.BatchNorm2d(8 * w), nn.LeakyReLU(0.2),
            up(8 * w, 4 * w), up(4 * w, 2 * w), up(2 * w, w), up(w, w),  # 5 → 80
            nn.Conv2d(w, 1, 3, padding=1), nn.Tanh())

    def forward(self, seismic):
        x = torch.sign(seismic) * torch.log1p(seismic.abs())  # tame the direct arrival
        return self.decoder(self.encoder(x))[:, :, 5:75, 5:75]


def to_unit(v):
    return (v - V_MIN) / (V_MAX - V_MIN) * 2 - 1


def to_ms(u):
    return (u + 1) / 2 * (V_MAX - V_MIN) + V_MIN


# ---------------------------------------------------------------- data

def run(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout


def seispipe_bin():
    path = pathlib.Path(os.environ.get("SEISPIPE_BIN") or REPO / "target/release/seispipe")
    if not path.is_file():
        sys.exit(f"{path} is not built: run `make build` or set SEISPIPE_BIN")
    return path


def copy_subset(src_dirs, dest, count, seed, skip=0):
    """Samples skip..skip+count of a seeded shuffle of every labelled sample in
    OpenFWI/Kaggle-layout directories, written as one layout shard pair."""
    pairs = []
    for d in src_dirs:
        for f in sorted(pathlib.Path(d).rglob("*.npy")):
            # the community rule: label path = seismic path with seis→vel, data→model
            if f.parent.name == "data" and f.name.startswith("data"):
                label = f.parent.parent / "model" / f.name.replace("data", "model", 1)
            elif f.name.startswith("seis"):
                label = f.with_name(f.name.replace("seis", "vel", 1))
            else:
                continue
            if label.is_file():
                pairs.append((f, label))
    index = [(i, k) for i, (f, _) in enumerate(pairs)
             for k in range(np.load(f, mmap_mode="r").shape[0])]
    if len(index) < skip + count:
        sys.exit(f"{', '.join(map(str, src_dirs))}: {len(index)} labelled samples, "
                 f"need {skip + count}")
    order = np.random.default_rng(seed).permutation(len(index))[skip:skip + count]
    xs, ys = [], []
    for j in order:
        i, k = index[j]
        xs.append(np.asarray(np.load(pairs[i][0], mmap_mode="r")[k], dtype=np.float32))
        ys.append(np.asarray(np.load(pairs[i][1], mmap_mode="r")[k], dtype=np.float32))
    (dest / "data").mkdir(parents=True, exist_ok=True)
    (dest / "model").mkdir(parents=True, exist_ok=True)
    np.save(dest / "data" / "data1.npy", np.stack(xs))
    np.save(dest / "model" / "model1.npy", np.stack(ys))


def make_inputs(cfg, out, args):
    """Raw inputs in OpenFWI layout under out/inputs: pool_a (N originals),
    pool_b (N more), heldout, new (N new maps). Each made once."""
    exe = seispipe_bin()
    inputs = out / "inputs"
    done = inputs / ".done"
    if done.is_file():
        return inputs
    if inputs.exists():
        shutil.rmtree(inputs)
    tmp = out / "inputs.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    n, m = cfg["n"], cfg["heldout"]
    for fam in cfg["families"]:
        # synth seeds: 1 for the pools, 2 for held-out, 3 for new geology.
        log(f"{fam}: {2 * n} pool + {m} held-out samples "
            f"({'given' if args.train_from else 'seispipe synth'}) + {n} new maps")
        if args.train_from:
            for name, skip in (("pool_a", 0), ("pool_b", n)):
                copy_subset([pathlib.Path(p) / fam for p in args.train_from],
                            tmp / name / fam, n, seed=1, skip=skip)
        else:
            run([exe, "synth", tmp / "pools", "--family", fam, "--samples", n, "--files", 2,
                 "--seed", 1])
            for name, k in (("pool_a", 1), ("pool_b", 2)):
                src = tmp / "pools" / fam
                if fam.endswith(("Vel_A", "Vel_B")) or "Style" in fam:
                    pairs = [("data", f"data{k}.npy"), ("model", f"model{k}.npy")]
                    for sub, f in pairs:
                        (tmp / name / fam / sub).mkdir(parents=True, exist_ok=True)
                        os.replace(src / sub / f, tmp / name / fam / sub / f)
                else:
                    g = 6 if fam.endswith("_B") else 2
                    (tmp / name / fam).mkdir(parents=True, exist_ok=True)
                    for f in (f"seis{g}_1_{k - 1}.npy", f"vel{g}_1_{k - 1}.npy"):
                        os.replace(src / f, tmp / name / fam / f)
        if args.heldout_from and args.heldout_from == args.train_from:
            # One set of folders: held-out samples come after the pools in
            # the same shuffle, so they never overlap.
            copy_subset([pathlib.Path(p) / fam for p in args.heldout_from],
                        tmp / "heldout" / fam, m, seed=1, skip=2 * n)
        elif args.heldout_from:
            copy_subset([pathlib.Path(p) / fam for p in args.heldout_from],
                        tmp / "heldout" / fam, m, seed=2)
        else:
            run([exe, "synth", tmp / "heldout", "--family", fam, "--samples", m, "--seed", 2])
        run([exe, "synth", tmp / "new", "--family", fam, "--samples", n, "--seed", 3])
    shutil.rmtree(tmp / "pools", ignore_errors=True)
    os.replace(tmp, inputs)
    done.write_text("")
    return inputs


def pipeline_output(out, name, input_dir, stages, copies, keep, seed=20):
    """Run one seispipe pipeline (resumes if killed) and return its output."""
    dest = out / "outputs" / name
    if (dest / "manifest.json").is_file():
        return dest
    toml = out / "pipelines" / f"{name}.toml"
    toml.parent.mkdir(parents=True, exist_ok=True)
    toml.write_text(
        f"# augment_value condition data: {name}\nseed = {seed}\ncopies = {copies}\n"
        f"keep_original = {str(keep).lower()}\n\n[input]\npath = \"{input_dir}\"\n\n"
        f"[output]\ndir = \"{dest}\"\nsamples_per_shard = 500\ndtype = \"f32\"\n\n{stages}")
    t0 = time.time()
    run([seispipe_bin(), "run", "--quiet", "--disk-reserve", "0", toml])
    log(f"  seispipe run {toml.name}: {time.time() - t0:.1f} s")
    return dest


def condition_outputs(cfg, out, args):
    """Every condition's list of seispipe output directories."""
    inputs = make_inputs(cfg, out, args)
    orig = pipeline_output(out, "originals", inputs / "pool_a", "", 0, True)
    outs = {"N": [orig]}
    wanted = set(cfg["conditions"])
    if "2N" in wanted:
        outs["2N"] = [orig, pipeline_output(out, "more_originals", inputs / "pool_b", "", 0,
                                            True)]
    for name, stages in STAGES.items():
        if name in wanted or "combo" in wanted:
            outs[name] = [orig, pipeline_output(out, name, inputs / "pool_a", stages, 1, False)]
    if "new_geology" in wanted or "combo" in wanted:
        # Its own seed: a pass-through of files named like the originals'
        # would otherwise have the originals' fingerprint (which holds input
        # names and sizes, not contents), and seispipe_data refuses one
        # output given twice.
        outs["new_geology"] = [orig, pipeline_output(out, "new_geology", inputs / "new", "", 0,
                                                     True, seed=21)]
    heldout = pipeline_output(out, "heldout", inputs / "heldout", "", 0, True, seed=22)
    return outs, heldout


def load(dirs, decimate):
    ds = SeispipeDataset([str(d) for d in dirs], allow_mixed=True)
    xs = np.empty((len(ds), 5, -(-1000 // decimate), 70), np.float32)
    ys = np.empty((len(ds), 1, 70, 70), np.float32)
    for i in range(len(ds)):
        x, y = ds[i]
        xs[i] = x[:, ::decimate]
        ys[i] = y
    return torch.from_numpy(xs), torch.from_numpy(ys)


# ---------------------------------------------------------------- training

def evaluate(model, x, y, device, batch=64):
    model.eval()
    err, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch].to(device)
            pred = to_ms(model(xb).float())
            err += (pred - y[i:i + batch].to(device)).abs().sum().item()
            count += pred.numel()
    model.train()
    return err / count


def train(cfg, train_xy, n_orig, heldout_xy, seed, device, progress):
    """Train one model; returns its held-out MAE, MAE on the N originals and on
    the whole training set (m/s). Same steps, batch and schedule for every
    condition; the seed fixes the initial weights and the batch order."""
    torch.manual_seed(seed)
    x, y = train_xy
    t = x.shape[2]
    model = InversionNet(t, cfg["width"], cfg["latent"]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"],
                                                total_steps=cfg["steps"])
    gen = torch.Generator().manual_seed(seed)
    order, pos, running = torch.randperm(len(x), generator=gen), 0, None
    for step in range(1, cfg["steps"] + 1):
        if pos + cfg["batch"] > len(order):  # a new epoch: reshuffle
            order, pos = torch.randperm(len(x), generator=gen), 0
        idx = order[pos:pos + cfg["batch"]]
        pos += cfg["batch"]
        xb, yb = x[idx].to(device), y[idx].to(device)
        loss = nn.functional.l1_loss(model(xb), to_unit(yb))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        mae = loss.item() * (V_MAX - V_MIN) / 2
        running = mae if running is None else 0.95 * running + 0.05 * mae
        progress(step, running)
    return {
        "heldout_mae": evaluate(model, *heldout_xy, device),
        "train_mae_originals": evaluate(model, x[:n_orig], y[:n_orig], device),
        "train_mae_all": evaluate(model, x, y, device),
    }


# ---------------------------------------------------------------- statistics

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 14: 2.145, 19: 2.093, 29: 2.045}


def t975(df):
    """Two-sided 95 % Student t quantile (scipy's when available)."""
    try:
        from scipy import stats
        return float(stats.t.ppf(0.975, df))
    except ImportError:
        return T975.get(df, T975[max(k for k in T975 if k <= df)] if df > 1 else T975[1])


def summarise(runs, conditions, seeds):
    table = {}
    base = {r["seed"]: r["heldout_mae"] for r in runs if r["condition"] == "N"}
    for c in conditions:
        rs = sorted((r for r in runs if r["condition"] == c), key=lambda r: r["seed"])
        if not rs:
            continue
        h = np.array([r["heldout_mae"] for r in rs])
        row = {
            "runs": len(rs),
            "heldout_mae_mean": float(h.mean()),
            "heldout_mae_std": float(h.std(ddof=1)) if len(h) > 1 else None,
            "train_mae_originals_mean": float(np.mean([r["train_mae_originals"] for r in rs])),
            "train_mae_all_mean": float(np.mean([r["train_mae_all"] for r in rs])),
            "train_samples": rs[0]["train_samples"],
            "per_seed": {str(r["seed"]): r["heldout_mae"] for r in rs},
        }
        if "made_of" in rs[0]:
            row["made_of"] = rs[0]["made_of"]
        if c != "N":
            d = np.array([r["heldout_mae"] - base[r["seed"]] for r in rs if r["seed"] in base])
            if len(d) > 1:
                half = t975(len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
                row["diff_to_N"] = {"mean": float(d.mean()), "ci95": [float(d.mean() - half),
                                                                       float(d.mean() + half)],
                                    "pairs": len(d)}
            elif len(d) == 1:
                row["diff_to_N"] = {"mean": float(d[0]), "ci95": None, "pairs": 1}
        table[c] = row
    return table


# Pairs worth comparing directly besides "− N": what the exact flip buys over
# the plain one, and how the best single augmentation compares with genuine data.
COMPARISONS = [("flip_exact", "flip"), ("2N", "new_geology"), ("mixup", "2N"),
               ("combo", "2N")]


def paired(runs, a, b):
    """Held-out MAE of condition a − condition b, paired by seed: mean and
    Student-t 95 % interval (None without two pairs)."""
    ra = {r["seed"]: r["heldout_mae"] for r in runs if r["condition"] == a}
    rb = {r["seed"]: r["heldout_mae"] for r in runs if r["condition"] == b}
    d = np.array([ra[s] - rb[s] for s in sorted(ra) if s in rb])
    if len(d) < 2:
        return None
    half = t975(len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return {"a": a, "b": b, "mean": float(d.mean()),
            "ci95": [float(d.mean() - half), float(d.mean() + half)], "pairs": len(d)}


def verdict(row):
    d = row.get("diff_to_N")
    if not d or not d["ci95"]:
        return "—"
    lo, hi = d["ci95"]
    if hi < 0:
        return "lower (helps)"
    if lo > 0:
        return "higher (hurts)"
    return "cannot tell"


# ---------------------------------------------------------------- outputs

def machine():
    cpu, flags = platform.processor() or "", []
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = [f for f in line.split(":", 1)[1].split()
                         if f.startswith(("avx", "fma", "sse4", "asimd", "sve"))]
                break
    except OSError:
        pass
    return {"cpu": cpu, "simd": sorted(set(flags)), "cores": os.cpu_count(),
            "torch": torch.__version__, "python": platform.python_version()}


def plot(table, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(table)
    means = [table[c]["heldout_mae_mean"] for c in names]
    stds = [table[c]["heldout_mae_std"] or 0 for c in names]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for i, c in enumerate(names):  # every seed's run, then mean ± std
        per = list(table[c]["per_seed"].values())
        a1.plot([i] * len(per), per, "o", color="#9db4d6", ms=4, zorder=1)
    a1.errorbar(range(len(names)), means, yerr=stds, fmt="s", color="#1f3f73", capsize=4,
                zorder=2)
    a1.set_xticks(range(len(names)), names, rotation=35)
    a1.set_ylabel("held-out MAE (m/s): seeds, mean ± std")
    a1.set_title("held-out MAE")
    diffs = [c for c in names if table[c].get("diff_to_N")]
    for i, c in enumerate(diffs):
        d = table[c]["diff_to_N"]
        if not d["ci95"]:  # one seed: no interval
            a2.plot([i], [d["mean"]], "o", color="#777")
            continue
        col = "#2a9d4a" if d["ci95"][1] < 0 else "#c0392b" if d["ci95"][0] > 0 else "#777"
        a2.errorbar([i], [d["mean"]], yerr=[[d["mean"] - d["ci95"][0]],
                                            [d["ci95"][1] - d["mean"]]],
                    fmt="o", color=col, capsize=4)
    a2.axhline(0, color="black", lw=0.8)
    a2.set_xticks(range(len(diffs)), diffs, rotation=35)
    a2.set_ylabel("condition − N (m/s), paired, 95 % CI")
    a2.set_title("paired difference to N")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def fmt(v, nd=1):
    return "—" if v is None else f"{v:.{nd}f}"


def markdown_table(table):
    lines = ["| condition | train samples | held-out MAE (m/s) | − N, paired 95 % CI | "
             "train MAE, originals / all | reading |",
             "|---|---|---|---|---|---|"]
    for c, r in table.items():
        d = r.get("diff_to_N")
        diff = "—" if not d else (f"{d['mean']:+.1f} [{fmt(d['ci95'][0])}, {fmt(d['ci95'][1])}]"
                                  if d["ci95"] else f"{d['mean']:+.1f}")
        name = c + (f" ({' + '.join(r['made_of'])})" if r.get("made_of") else "")
        lines.append(f"| {name} | {r['train_samples']} | {fmt(r['heldout_mae_mean'])} ± "
                     f"{fmt(r['heldout_mae_std'])} | {diff} | "
                     f"{fmt(r['train_mae_originals_mean'])} / {fmt(r['train_mae_all_mean'])} | "
                     f"{verdict(r)} |")
    return "\n".join(lines)


def write_html(path, results, png):
    rows = []
    for c, r in results["table"].items():
        d = r.get("diff_to_N")
        diff = "—" if not d else (f"{d['mean']:+.1f} [{fmt(d['ci95'][0])}, {fmt(d['ci95'][1])}]"
                                  if d["ci95"] else f"{d['mean']:+.1f}")
        name = c + (f" ({' + '.join(r['made_of'])})" if r.get("made_of") else "")
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{r['train_samples']}</td>"
            f"<td>{fmt(r['heldout_mae_mean'])} ± {fmt(r['heldout_mae_std'])}</td>"
            f"<td>{diff}</td><td>{fmt(r['train_mae_originals_mean'])} / "
            f"{fmt(r['train_mae_all_mean'])}</td><td>{verdict(r)}</td></tr>")
    img = base64.b64encode(png.read_bytes()).decode() if png.is_file() else ""
    cfg = results["config"]
    path.write_text(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>seispipe augmentation benchmark</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}
td:first-child{{text-align:left}}code{{background:#f4f4f4}}</style></head><body>
<h1>Does the data make the model better?</h1>
<p>Held-out MAE (m/s) of the same InversionNet-style model ({results['parameters']:,} parameters)
trained with {cfg['steps']} steps of {cfg['batch']} (AdamW, one-cycle at {cfg['lr']}) on each
condition; families {', '.join(cfg['families'])}; N = {cfg['n']} originals; {cfg['heldout']}
held-out samples drawn with another seed, never augmented; input decimated ×{cfg['decimate']}
in time; {cfg['seeds']} training seeds. Differences are paired by seed (same initial weights and
batch-order seed); the interval is a Student-t 95 % confidence interval.</p>
<table><tr><th>condition</th><th>train samples</th><th>held-out MAE</th><th>− N (95 % CI)</th>
<th>train MAE originals / all</th><th>reading</th></tr>
{''.join(rows)}</table>
<p>{'<br>'.join(html.escape(f"{c['a']} − {c['b']}: {c['mean']:+.1f} m/s "
                           f"[{c['ci95'][0]:.1f}, {c['ci95'][1]:.1f}]")
                for c in results.get('comparisons', []))}</p>
<p><img alt="held-out MAE per condition" src="data:image/png;base64,{img}" style="max-width:100%">
</p><p>{html.escape(results['machine']['cpu'])} ({html.escape(' '.join(results['machine']['simd']))}),
{results['machine']['cores']} cores, torch {results['machine']['torch']}, device
{html.escape(results['device'])}; {html.escape(results['date'])}; {results['wall_seconds']:.0f} s of
training.<br>Command: <code>{html.escape(results['command'])}</code></p></body></html>
""")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, required=True, help="results and data go here")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    ap.add_argument("--quick", action="store_true",
                    help="2 conditions, 1 seed, a few steps: checks the wiring, not the result")
    for key, typ in (("n", int), ("heldout", int), ("steps", int), ("batch", int),
                     ("lr", float), ("seeds", int), ("width", int), ("latent", int),
                     ("decimate", int)):
        ap.add_argument(f"--{key}", type=typ, help="override the configuration's value")
    ap.add_argument("--families", nargs="+", help="velocity families (default: configuration's)")
    ap.add_argument("--conditions", nargs="+", choices=ALL_CONDITIONS)
    ap.add_argument("--train-from", nargs="+",
                    help="OpenFWI/Kaggle-layout directories holding <family>/ folders: the pools "
                         "come from here instead of `seispipe synth`")
    ap.add_argument("--heldout-from", nargs="+",
                    help="the same for the held-out set (the same folders as --train-from: "
                         "held-out samples are drawn from what the pools leave)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    args = ap.parse_args()
    print(machine_header(str(args.out)), flush=True)

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {device}: torch sees no CUDA device")
    cfg = dict(CONFIGS["quick" if args.quick else "cuda" if device.startswith("cuda")
                       else "cpu"])
    for key in ("n", "heldout", "steps", "batch", "lr", "seeds", "width", "latent",
                "decimate", "families", "conditions"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Data identity: a run made with other data settings is not mixed in.
    data_key = {k: cfg[k] for k in ("families", "n", "heldout")}
    data_key.update(train_from=args.train_from, heldout_from=args.heldout_from)
    stamp = out / "data-settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != data_key:
        sys.exit(f"{out} holds data made with {stamp.read_text().strip()}; "
                 "choose another --out")
    stamp.write_text(json.dumps(data_key, sort_keys=True) + "\n")
    # A run's identity: everything that changes one training run (not the
    # list of conditions or the number of seeds, so adding either reuses runs).
    key = {k: v for k, v in cfg.items() if k not in ("conditions", "seeds")}
    run_key = hashlib.sha256(json.dumps({**key, "device": device.split(":")[0]},
                                        sort_keys=True).encode()).hexdigest()[:12]

    log(f"augment_value: {cfg}")
    outs, heldout_dir = condition_outputs(cfg, out, args)
    heldout_xy = load([heldout_dir], cfg["decimate"])
    runs_dir = out / "runs"
    runs_dir.mkdir(exist_ok=True)
    seeds = list(range(cfg["seeds"]))
    conditions = [c for c in cfg["conditions"] if c != "combo"]
    todo = [(c, s) for c in conditions for s in seeds]
    if "combo" in cfg["conditions"]:
        todo += [("combo", s) for s in seeds]

    def result_path(c, s):
        return runs_dir / f"{c}-seed{s}-{run_key}.json"

    runs, step_times, wall = [], [], 0.0
    parameters = None
    for k, (c, s) in enumerate(todo):
        path = result_path(c, s)
        if path.is_file():
            r = json.loads(path.read_text())
            runs.append(r)
            wall += r["seconds"]
            continue
        if c == "combo":
            singles = summarise(runs, SINGLES, seeds)
            made_of = [x for x in SINGLES if x in singles and
                       singles[x].get("diff_to_N", {}).get("mean", 0) < 0]
            if not made_of:
                log("combo: no single augmentation lowered the mean MAE; combo skipped")
                break
            dirs = list(dict.fromkeys(d for x in made_of for d in outs[x]))
        else:
            made_of, dirs = None, outs[c]
        x, y = load(dirs, cfg["decimate"])
        n_orig = len(SeispipeDataset([str(d) for d in outs["N"]]))  # read first
        remaining = len(todo) - k

        def progress(step, running, c=c, s=s, remaining=remaining):
            now = time.time()
            step_times.append(now)
            if step % 100 == 0 or step == cfg["steps"]:
                recent = step_times[-100:]
                per_step = (recent[-1] - recent[0]) / max(1, len(recent) - 1)
                eta = per_step * ((cfg["steps"] - step) + (remaining - 1) * cfg["steps"])
                log(f"  {c} seed {s}: step {step}/{cfg['steps']}, running train MAE "
                    f"{running:.0f} m/s, ETA {eta / 60:.0f} min")

        log(f"[{k + 1}/{len(todo)}] {c} seed {s}: {len(x)} training samples")
        t0 = time.time()
        r = train(cfg, (x, y), n_orig, heldout_xy, 1000 + s, device, progress)
        r.update(condition=c, seed=s, train_samples=len(x), seconds=time.time() - t0)
        if made_of:
            r["made_of"] = made_of
        wall += r["seconds"]
        log(f"  {c} seed {s}: held-out MAE {r['heldout_mae']:.1f} m/s, train MAE "
            f"{r['train_mae_originals']:.1f} (originals), {r['seconds']:.0f} s")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(r, indent=1) + "\n")
        os.replace(tmp, path)
        runs.append(r)
    if parameters is None:
        parameters = sum(p.numel() for p in InversionNet(
            -(-1000 // cfg["decimate"]), cfg["width"], cfg["latent"]).parameters())

    table = summarise(runs, cfg["conditions"], seeds)
    results = {
        "config": cfg, "device": device, "parameters": parameters,
        "machine": machine(), "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([os.path.relpath(sys.argv[0], REPO) if sys.argv[0] else "",
                             *sys.argv[1:]]),
        "wall_seconds": wall, "table": table,
        "comparisons": [c for a, b in COMPARISONS if (c := paired(runs, a, b))],
        "runs": runs,
    }
    png = out / "augment_value.png"
    plot(table, png, f"{', '.join(cfg['families'])}, N = {cfg['n']}, {cfg['steps']} steps of "
         f"{cfg['batch']}, {cfg['seeds']} seeds")
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, out / "results.json")
    write_html(out / "index.html", results, png)
    print(markdown_table(table))
    for c in results["comparisons"]:
        print(f"{c['a']} − {c['b']}: {c['mean']:+.1f} m/s, paired 95 % CI "
              f"[{c['ci95'][0]:.1f}, {c['ci95'][1]:.1f}] over {c['pairs']} seeds")
    print(f"\nwritten: {out / 'results.json'}, {png}, {out / 'index.html'}")


if __name__ == "__main__":
    main()

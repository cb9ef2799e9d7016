"""benches/augment_value.py: the --quick wiring (data made by the seispipe
binary, two conditions trained, results.json, plot and page written, a rerun
trains nothing) and its statistics against scipy's paired t-test."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, binary

BENCH = REPO / "benches" / "augment_value.py"


def bench_module():
    spec = importlib.util.spec_from_file_location("augment_value", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_quick(out):
    env = dict(os.environ, SEISPIPE_BIN=str(binary()),
               PYTHONPATH=str(REPO / "python" / "src"))
    p = subprocess.run([sys.executable, str(BENCH), "--quick", "--out", str(out)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def test_quick_mode_makes_data_trains_and_reports(tmp_path):
    out = tmp_path / "av"
    p = run_quick(out)
    assert "[1/2] N seed 0: 8 training samples" in p.stderr, p.stderr
    assert "[2/2] flip seed 0: 16 training samples" in p.stderr, p.stderr
    assert "step 6/6, running train MAE" in p.stderr, p.stderr
    res = json.loads((out / "results.json").read_text())
    assert list(res["table"]) == ["N", "flip"]
    assert res["table"]["flip"]["diff_to_N"]["pairs"] == 1
    d = res["table"]["flip"]["diff_to_N"]["mean"]
    per = {r["condition"]: r["heldout_mae"] for r in res["runs"]}
    assert d == pytest.approx(per["flip"] - per["N"])
    for r in res["runs"]:
        assert 0 < r["heldout_mae"] < 3000 and 0 < r["train_mae_originals"] < 3000, r
    # The flip condition's data: the 8 originals and 8 flips made by seispipe.
    flips = json.loads((out / "outputs" / "flip" / "manifest.json").read_text())
    assert flips["samples_out"] == 8, flips.get("samples_out")
    assert (out / "augment_value.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text()
    assert "<table>" in page and "data:image/png;base64,iVBOR" in page
    assert "flip" in p.stdout and "| N | 8 |" in p.stdout, p.stdout
    # Resumable: a rerun reads the finished runs and trains nothing.
    again = run_quick(out)
    assert "training samples" not in again.stderr, again.stderr
    assert json.loads((out / "results.json").read_text())["runs"] == res["runs"]


def test_paired_interval_equals_scipy_paired_t_test():
    from scipy import stats  # the venv's reference (make venv)
    av = bench_module()
    rng = np.random.default_rng(5)
    base = rng.normal(150, 5, 5)
    other = base - 8 + rng.normal(0, 3, 5)
    runs = [{"condition": c, "seed": s, "heldout_mae": float(v), "train_mae_originals": 1.0,
             "train_mae_all": 1.0, "train_samples": 10}
            for c, vals in (("N", base), ("2N", other)) for s, v in enumerate(vals)]
    table = av.summarise(runs, ["N", "2N"], range(5))
    d = table["2N"]["diff_to_N"]
    ref = stats.ttest_rel(other, base).confidence_interval(0.95)
    assert d["mean"] == pytest.approx(float(np.mean(other - base)))
    assert d["ci95"] == pytest.approx([ref.low, ref.high])
    assert table["N"]["heldout_mae_std"] == pytest.approx(float(np.std(base, ddof=1)))
    assert av.verdict(table["2N"]) == ("lower (helps)" if ref.high < 0 else "cannot tell")


def test_given_directories_give_disjoint_pools_and_heldout_and_new_geology_trains(tmp_path):
    given = tmp_path / "given"
    subprocess.run([str(binary()), "synth", str(given), "--family", "CurveVel_A",
                    "--samples", "3", "--files", "2", "--seed", "9"], check=True,
                   capture_output=True)
    out = tmp_path / "av"
    env = dict(os.environ, SEISPIPE_BIN=str(binary()), PYTHONPATH=str(REPO / "python" / "src"))
    p = subprocess.run([sys.executable, str(BENCH), "--quick", "--out", str(out), "--n", "2",
                        "--heldout", "2", "--train-from", str(given), "--heldout-from",
                        str(given), "--conditions", "N", "new_geology"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    # New geology: the originals plus as many maps from `seispipe synth`.
    assert "[2/2] new_geology seed 0: 4 training samples" in p.stderr, p.stderr
    every = {m.tobytes() for f in (1, 2)
             for m in np.load(given / "CurveVel_A" / "model" / f"model{f}.npy")}
    seen = []
    for part in ("pool_a", "pool_b", "heldout"):
        maps = np.load(out / "inputs" / part / "CurveVel_A" / "model" / "model1.npy")
        assert len(maps) == 2
        seen += [m.tobytes() for m in maps]
    assert len(set(seen)) == 6 and set(seen) == every
    # Too few samples for the pools and the held-out set: refused by name.
    p = subprocess.run([sys.executable, str(BENCH), "--quick", "--out", str(tmp_path / "few"),
                        "--n", "3", "--train-from", str(given), "--heldout-from", str(given)],
                       capture_output=True, text=True, env=env)
    assert p.returncode != 0 and "6 labelled samples, need 14" in p.stderr, p.stderr

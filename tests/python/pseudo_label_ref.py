"""Reference side of the pseudo_label tests (torch + numpy + csv).

  make DIR
      TorchScript models saved by torch.jit (scripted): a.pt, b.pt (small conv
      nets, tanh output), bad_shape.pt (returns (B, 70, 35)), nan_pt.pt (NaN for
      samples whose mean is > 0); test inputs DIR/test/<10-hex id>.npy.
  predict DIR OUT MODEL:WEIGHT[,MODEL:WEIGHT…] INPUT_T OUTPUT_T TTA [lo hi]
      Per input file of DIR/test (ids sorted): each model on the transformed
      input (and, with TTA=1, on its mirror flip, mirrored back), output
      transform, weighted mean, disagreement (weighted mean over views of mean
      |view - mean|), no clip. Writes OUT/expected_pred.npy (n, 70, 70),
      OUT/expected_dis.npy (n,), OUT/ids.txt.
  csv OUTDIR
      Parse OUTDIR/submission.csv with the csv module and check it against
      the label shards loaded with numpy and the manifest's ids: header, 36
      columns, exactly 70 rows per id in order y_0..y_69, equal values.
"""

import csv
import json
import pathlib
import sys

import numpy as np
import torch


class Net(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.c1 = torch.nn.Conv2d(5, channels, 3, padding=1)
        self.c2 = torch.nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.avg_pool2d(x, (10, 1))
        y = torch.relu(self.c1(y))
        y = torch.nn.functional.adaptive_avg_pool2d(y, (70, 70))
        return torch.tanh(self.c2(y))


class BadShape(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, :70, :35]


class NanWhenPositive(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)
        base = torch.zeros(x.shape[0], 1, 70, 70) + 0.25
        return torch.where(m > 0, torch.full_like(base, float("nan")), base)


def make(d: pathlib.Path):
    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(7)
    a = Net(4).eval()
    b = Net(6).eval()
    with torch.no_grad():
        # Make the nets depend on x position so TTA views differ clearly.
        a.c1.weight.mul_(3.0)
        b.c2.bias.add_(0.2)
    torch.jit.save(torch.jit.script(a), str(d / "a.pt"))
    torch.jit.save(torch.jit.script(b), str(d / "b.pt"))
    torch.jit.save(torch.jit.script(BadShape()), str(d / "bad_shape.pt"))
    torch.jit.save(torch.jit.script(NanWhenPositive()), str(d / "nan_pt.pt"))
    rng = np.random.default_rng(3)
    t = d / "test"
    t.mkdir(exist_ok=True)
    for k in range(6):
        oid = "%010x" % int(rng.integers(0, 2**40))
        x = rng.standard_normal((5, 1000, 70)).astype(np.float32) * 8.0
        x += np.float32(0.3 if k % 2 == 0 else -0.3)  # sign of the mean alternates
        x[:, :, :20] *= 3.0  # not mirror-symmetric
        np.save(t / f"{oid}.npy", x)


def in_t(x, name, lo, hi):
    """The input transforms; lo/hi are raw data values, put through the same
    sign*log1p as the data by log1p_minmax (as OpenFWI's LogTransform with
    MinMaxNormalize(log_transform(min), log_transform(max)))."""
    def sl(v):
        return np.sign(v) * np.log1p(np.abs(v))
    if name in ("log1p", "log1p_minmax"):
        x = sl(x)
    if name == "log1p_minmax":
        lo, hi = sl(np.float32(lo)), sl(np.float32(hi))
    if name in ("minmax", "log1p_minmax"):
        x = 2.0 * (x - lo) / (hi - lo) - 1.0
    return x.astype(np.float32)


def out_t(y, name):
    if name == "minmax":
        return (y + 1.0) * 0.5 * 3000.0 + 1500.0
    assert name == "identity", name
    return y


def predict(d, out, spec, input_t, output_t, tta, lo=0.0, hi=1.0):
    out.mkdir(parents=True, exist_ok=True)
    members = []
    for item in spec.split(","):
        path, w = item.rsplit(":", 1)
        members.append((torch.jit.load(str(d / path)), float(w)))
    files = sorted((d / "test").glob("*.npy"))
    preds, dis = [], []
    for f in files:
        x = np.load(f)
        views, weights = [], []
        for m, w in members:
            xs = [x] + ([x[::-1, :, ::-1]] if tta else [])
            for k, xv in enumerate(xs):
                inp = torch.from_numpy(in_t(np.ascontiguousarray(xv), input_t, lo, hi))[None]
                with torch.no_grad():
                    y = m(inp).numpy().astype(np.float64).reshape(70, 70)
                y = out_t(y, output_t)
                if k == 1:
                    y = y[:, ::-1]
                views.append(y)
                weights.append(w / len(xs))
        weights = np.array(weights)
        mean = sum(w * v for w, v in zip(weights, views)) / weights.sum()
        dsum = sum(w * np.abs(v - mean).mean() for w, v in zip(weights, views)) / weights.sum()
        preds.append(mean.astype(np.float32))
        dis.append(dsum if len(views) > 1 else 0.0)
    np.save(out / "expected_pred.npy", np.stack(preds))
    np.save(out / "expected_dis.npy", np.array(dis, dtype=np.float32))
    (out / "ids.txt").write_text("".join(f.stem + "\n" for f in files))
    print("predicted", len(files))


def check_csv(outdir):
    man = json.loads((outdir / "manifest.json").read_text())
    expect = {}
    for sh in man["shards"]:
        labels = np.load(outdir / sh["files"][1]["path"])
        assert labels.shape[1:] == (1, 70, 70), labels.shape
        lines = (outdir / sh["provenance"]["path"]).read_text().splitlines()
        for j, p in enumerate(json.loads(line) for line in lines):
            expect[p["id"]] = labels[j, 0].astype(np.float32)
    with open(outdir / "submission.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    want = ["oid_ypos"] + [f"x_{x}" for x in range(1, 70, 2)]
    assert header == want, header
    body = rows[1:]
    assert all(len(r) == 36 for r in body), "a row without 36 columns"
    assert len(body) == 70 * len(expect), (len(body), len(expect))
    seen = {}
    for r in body:
        oid, y = r[0].rsplit("_y_", 1)
        seen.setdefault(oid, []).append(int(y))
        vals = np.array([float(v) for v in r[1:]], dtype=np.float32)
        ref = expect[oid][int(y), 1::2]
        assert np.array_equal(vals, ref), (oid, y, vals[:4], ref[:4])
    assert set(seen) == set(expect), "ids differ"
    for oid, ys in seen.items():
        assert ys == list(range(70)), (oid, ys[:5])
    print("csv OK", len(seen), "ids", len(body), "rows")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(pathlib.Path(sys.argv[2]))
    elif cmd == "predict":
        a = sys.argv[2:]
        lo, hi = (float(a[6]), float(a[7])) if len(a) > 6 else (0.0, 1.0)
        predict(pathlib.Path(a[0]), pathlib.Path(a[1]), a[2], a[3], a[4], a[5] == "1", lo, hi)
    elif cmd == "csv":
        check_csv(pathlib.Path(sys.argv[2]))
    else:
        raise SystemExit(f"unknown command {cmd}")

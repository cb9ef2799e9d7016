"""Fixtures: seispipe outputs and Kaggle parts written by the seispipe binary
(target/release/seispipe, or $SEISPIPE_BIN) into a temporary folder, once per
test session, and the reference reading of them that the tests compare to."""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import types

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def binary():
    path = pathlib.Path(os.environ.get("SEISPIPE_BIN") or REPO / "target/release/seispipe")
    if not path.is_file():
        pytest.fail(f"{path} is not built: run `make build` (or `cargo build --release "
                    "-p seispipe`), or set SEISPIPE_BIN", pytrace=False)
    return path


def seispipe(*args, cwd):
    p = subprocess.run([str(binary()), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert p.returncode == 0, f"seispipe {' '.join(map(str, args))}:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def pipeline(root, name, *, input, out, copies, keep=True, per=4, dtype="f32", stages):
    path = root / f"{name}.toml"
    path.write_text(
        f'seed = 11\ncopies = {copies}\nkeep_original = {str(keep).lower()}\n'
        f'[input]\npath = "{input}"\n[output]\ndir = "{out}"\nsamples_per_shard = {per}\n'
        f'dtype = "{dtype}"\n{stages}')
    seispipe("run", "-q", path, cwd=root)
    return root / out


FLIP_NOISE = ('[[stages]]\ntype = "flip"\np = 0.5\n'
              '[[stages]]\ntype = "gaussian_noise"\np = 0.8\nsnr_db = 20.0\n')
FLIP = '[[stages]]\ntype = "flip"\np = 0.5\n'
SPECTROGRAM = ('[[stages]]\ntype = "spectrogram"\nn_fft = 256\nhop_length = 64\n'
               'window = "hann"\noutput = "log_magnitude"\nmax_freq_hz = 45.0\n')


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    """Every output the tests read (see the attributes), made once."""
    root = tmp_path_factory.mktemp("seispipe-data")
    seispipe("synth", "in", "--family", "FlatVel_A", "--samples", 3, "--files", 2, "--seed", 1,
             cwd=root)
    seispipe("synth", "test", "--family", "CurveVel_A", "--samples", 3, "--unlabelled",
             cwd=root)
    d = types.SimpleNamespace(root=root)
    # 6 inputs × (original + 2 copies) = 18 samples in shards of 4: 5 shards.
    d.out = pipeline(root, "out", input="in", out="out", copies=2, stages=FLIP_NOISE)
    d.out16 = pipeline(root, "out16", input="in", out="out16", copies=1, per=5, dtype="f16",
                       stages=FLIP)
    d.spec = pipeline(root, "spec", input="in", out="spec", copies=1, keep=False, dtype="f16",
                      stages=SPECTROGRAM)
    d.unlabelled = pipeline(root, "unl", input="test", out="unl", copies=1, stages=FLIP)
    # Two shard pairs per part (11.4 MB): 3 parts, hard-linked to out/.
    seispipe("package", "out", "--into", "kg", "--owner", "tester", "--slug", "fwi-test",
             "--title", "FWI test data", "--max-dataset-bytes", "12MB", "--link", cwd=root)
    d.parts = sorted((root / "kg").glob("fwi-test-part-*"))
    assert len(d.parts) == 3, d.parts
    return d


def copy_folder(src, dst):
    """A real copy (never a hard link: tests damage these files)."""
    shutil.copytree(src, dst, copy_function=shutil.copy2)
    return dst


def manifest(folder):
    return json.loads((pathlib.Path(folder) / "manifest.json").read_text())


def reference(folders):
    """(x, y, record) of every sample, read with np.load shard by shard in
    the manifests' shard order — independently of seispipe_data."""
    shards = []
    for f in folders:
        m = manifest(f)
        for s in m["shards"]:
            shards.append((m["fingerprint"], s["index"], pathlib.Path(f), s))
    shards.sort(key=lambda t: t[:2])
    out = []
    for _, _, folder, s in shards:
        x = np.load(folder / s["files"][0]["path"])
        y = np.load(folder / s["files"][1]["path"]) if len(s["files"]) > 1 else None
        prov = s["provenance"]
        if isinstance(prov, dict):
            lines = (folder / prov["path"]).read_text().splitlines()
            prov = [json.loads(line) for line in lines if line.strip()]
        assert len(prov) == len(x) == s["samples"]
        for r in range(len(x)):
            out.append((x[r], None if y is None else y[r], prov[r]))
    return out


def to_v1(folder):
    """Rewrite a seispipe-manifest/2 folder (what seispipe writes) into the /1
    form that earlier builds wrote: each shard's provenance inline in the
    manifest, no provenance files."""
    folder = pathlib.Path(folder)
    m = manifest(folder)
    m["format"] = "seispipe-manifest/1"
    for s in m["shards"]:
        p = folder / s["provenance"]["path"]
        s["provenance"] = [json.loads(line) for line in p.read_text().splitlines()]
        p.unlink()
    (folder / "manifest.json").write_text(json.dumps(m, indent=2))
    return folder

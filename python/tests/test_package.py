"""The package as users get it: `pip install ./python`, the one module copied
beside a notebook, use without torch, and examples/train_baseline.py."""

import os
import shutil
import subprocess
import sys

from conftest import REPO

MODULE = REPO / "python" / "src" / "seispipe_data.py"


def python(code, *, path, cwd):
    env = dict(os.environ, PYTHONPATH=str(path))
    p = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                       text=True)
    assert p.returncode == 0, f"{code}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
    return p.stdout


READ = """
import sys, seispipe_data as s
assert s.__file__.startswith({where!r}), s.__file__
ds = s.SeispipeDataset({out!r})
x, y = ds[17]
assert x.shape == (5, 1000, 70) and y.shape == (1, 70, 70) and len(ds) == 18
it = s.SeispipeIterableDataset({out!r}, seed=1, labels=False, return_index=True)
assert sorted(i for i, _ in it) == list(range(18))
print(sys.modules.get("torch") is not None, [b.__name__ for b in type(it).__mro__])
"""


def test_pip_install_gives_the_module(data, tmp_path):
    src = shutil.copytree(REPO / "python", tmp_path / "python",
                          ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "--no-index", "--target", str(site), str(src)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (site / "seispipe_data.py").read_bytes() == MODULE.read_bytes()
    out = python(READ.format(where=str(site), out=str(data.out)), path=site, cwd=tmp_path)
    # Importing the module does not import torch; the iterable dataset does.
    assert out.startswith("True") and "IterableDataset" in out, out


def test_the_module_alone_works_without_torch(data, tmp_path):
    shutil.copy(MODULE, tmp_path / "seispipe_data.py")
    lazy = python("import sys, seispipe_data; print('torch' in sys.modules)", path=tmp_path,
                  cwd=tmp_path)
    assert lazy.strip() == "False"
    # torch made unimportable: both datasets still work as plain Python objects.
    no_torch = "import sys; sys.modules['torch'] = None\n" + READ
    out = python(no_torch.format(where=str(tmp_path), out=str(data.out)), path=tmp_path,
                 cwd=tmp_path)
    assert out.strip() == "False ['SeispipeIterableDataset', '_IterableCore', 'object']", out


def test_the_training_example_runs_a_few_steps(data, tmp_path):
    p = subprocess.run([sys.executable, str(REPO / "examples" / "train_baseline.py"),
                        str(data.out), "--steps", "3", "--batch-size", "4", "--workers", "2",
                        "--save", str(tmp_path / "model.pt")],
                       capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=str(MODULE.parent)))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SeispipeDataset(18 samples, 5 shards, labelled" in p.stdout
    assert "step 3/3: L1 " in p.stdout and (tmp_path / "model.pt").is_file(), p.stdout

"""seispipe: the ``seispipe`` command and, beside it, :mod:`seispipe_data`.

The wheel puts the ``seispipe`` binary on ``PATH`` (in the environment's
scripts folder) and installs the ``seispipe_data`` module, which reads its
outputs and Kaggle parts as PyTorch datasets. ``python -m seispipe …`` runs
the binary as the command would.
"""

import os
import shutil
import sys
import sysconfig

__all__ = ["binary"]


def binary():
    """The path of the ``seispipe`` binary this package installed."""
    name = "seispipe.exe" if os.name == "nt" else "seispipe"
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    found = shutil.which("seispipe")
    if found:
        return found
    raise FileNotFoundError(
        "the seispipe binary is not installed beside this Python "
        f"({sysconfig.get_path('scripts')}); reinstall the seispipe wheel")

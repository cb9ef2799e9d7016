"""``python -m seispipe …``: run the ``seispipe`` binary with these arguments."""

import os
import sys

from seispipe import binary

if __name__ == "__main__":
    path = binary()
    os.execv(path, [path] + sys.argv[1:])

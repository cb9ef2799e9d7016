"""Where a benchmark ran: printed by every bench before its figures.

`header(write_dir)` returns lines naming the date, the CPU model, its SIMD
flags, the kernel copy and I/O mode seispipe chooses here (`seispipe host`,
which honours SEISPIPE_ISA / SEISPIPE_FD_KERNEL / SEISPIPE_IO), and, when
`write_dir` is given, the copy floor of the disk the bench writes to:
`cp` of a 256 MB file into it, then `sync`, best of two.
"""
import os
import shutil
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "seispipe")
FLOOR_BYTES = 256 << 20


def host():
    """`seispipe host` as a dict (cpu, simd, kernel, subnormals, io)."""
    out = subprocess.run([BIN, "host"], check=True, capture_output=True, text=True).stdout
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def copy_floor(write_dir):
    """MB/s of `cp` + `sync` of a 256 MB file into `write_dir`, best of 2."""
    os.makedirs(write_dir, exist_ok=True)
    src = os.path.join(write_dir, ".floor-src")
    if not os.path.exists(src) or os.path.getsize(src) != FLOOR_BYTES:
        with open(src, "wb") as f:
            f.write(os.urandom(FLOOR_BYTES))
    with open(src, "rb") as f:  # warm, as the benches' inputs are
        while f.read(1 << 24):
            pass
    best = float("inf")
    for _ in range(2):
        dst = os.path.join(write_dir, ".floor-dst")
        os.sync()
        t = time.perf_counter()
        shutil.copyfile(src, dst)
        os.sync()
        best = min(best, time.perf_counter() - t)
        os.remove(dst)
    return FLOOR_BYTES / best / 1e6


def header(write_dir=None):
    """The lines to print: date, CPU, SIMD, kernel copy, subnormals, I/O mode, disk floor."""
    h = host()
    lines = [
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} CPUs",
        f"cpu: {h.get('cpu', '?')}",
        f"simd: {h.get('simd', '?')}",
        f"kernel copy: {h.get('kernel', '?')}",
        f"subnormals: {h.get('subnormals', '?')}",
        f"io mode: {h.get('io', '?')}",
    ]
    if write_dir is not None:
        lines.append(f"disk copy floor (cp + sync into {write_dir}): {copy_floor(write_dir):.0f} MB/s")
    return "\n".join(lines)

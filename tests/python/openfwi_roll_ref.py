"""The OpenFWI generator's acoustic scheme as its published NumPy ports write
it (np.roll Laplacian, so the padded grid wraps periodically at its outer
edge), in float32 state and float32 coefficient arithmetic (the float32 map
times Python scalars, which NumPy keeps in float32), written from
docs/domain.md ("The OpenFWI generator") independently of seispipe's kernel.

Usage: openfwi_roll_ref.py VEL.npy OUT.npy [SOURCES] [--zero-edge]

VEL.npy holds (N, 70, 70) float32 velocity maps (z, x) in m/s; OUT.npy gets
(N, S, 1000, 70) float32 records. SOURCES is a comma-separated list of source
x indices (default 0,17,34,52,69). `--zero-edge` replaces the wrap with a
zero wall two cells beyond the padded grid (what seispipe did before it
wrapped), so a test can show that its maps tell the two apart.
Also importable: `simulate(v, sources, zero_edge=False)`.
"""
import sys

import numpy as np

NBC, NX, NZ, NT, DX, DT = 120, 70, 70, 1000, 10.0, 1e-3
SOURCES = [0, 17, 34, 52, 69]
C1, C2, C3 = -5.0 / 2.0, 4.0 / 3.0, -1.0 / 12.0


def ricker(nt=NT, f=15.0):
    """15 Hz Ricker, 147 samples, peak at index 73, zero afterwards."""
    k = np.arange(nt, dtype=np.float64)
    b = ((73.0 - k) * f * DT * np.pi) ** 2
    w = (1.0 - 2.0 * b) * np.exp(-b)
    w[147:] = 0.0
    return w.astype(np.float32)


def damping(vp):
    """AbcCoef2D on the padded model: left/right zones over the full height
    (corners included), top/bottom only over the model's columns. The
    profile is computed in float64 and stored in a float32 grid."""
    nzbc, nxbc = vp.shape
    nz, nx = nzbc - 2 * NBC, nxbc - 2 * NBC
    a = (NBC - 1) * DX
    kappa0 = 3.0 * float(vp.min()) * np.log(1e7) / (2.0 * a)
    d1 = kappa0 * ((np.arange(NBC) * DX / a) ** 2)
    d = np.zeros((nzbc, nxbc), dtype=np.float32)
    for iz in range(nzbc):
        d[iz, :NBC] = d1[::-1]
        d[iz, nx + NBC:] = d1
    for ix in range(NBC, NBC + nx):
        d[:NBC, ix] = d1[::-1]
        d[NBC + nz:, ix] = d1
    return d


def shifted(p, shift, axis, zero_edge):
    """p moved by `shift` cells along `axis`: np.roll, or zeros shifted in."""
    if not zero_edge:
        return np.roll(p, shift, axis)
    q = np.zeros_like(p)
    src = [slice(None)] * 2
    dst = [slice(None)] * 2
    if shift > 0:
        dst[axis], src[axis] = slice(shift, None), slice(None, -shift)
    else:
        dst[axis], src[axis] = slice(None, shift), slice(-shift, None)
    q[tuple(dst)] = p[tuple(src)]
    return q


def simulate(v, sources=SOURCES, zero_edge=False):
    """(S, 1000, 70) float32 record of one (70, 70) map."""
    f32 = np.float32
    vp = np.pad(v.astype(f32), NBC, mode="edge")
    # Every operation in float32, left to right, as NumPy evaluates the
    # generator's expressions on a float32 map (2·c1 is the exact scalar -5).
    al = (vp * f32(DT) / f32(DX)) ** 2
    kappa = damping(vp) * f32(DT)
    t1 = f32(2.0) + f32(2.0 * C1) * al - kappa
    t2 = f32(1.0) - kappa
    assert al.dtype == t1.dtype == t2.dtype == np.float32
    c2, c3 = f32(C2), f32(C3)
    w = ricker()
    out = np.zeros((len(sources), NT, NX), dtype=np.float32)
    z = 1 + NBC
    for s, sx in enumerate(sources):
        beta = (f32(v[1, sx]) * f32(DT)) ** 2
        p0 = np.zeros(vp.shape, np.float32)
        p1 = np.zeros(vp.shape, np.float32)
        for t in range(NT):
            # Neighbours in the order x-1, x+1, z-1, z+1, wrapping at the edge.
            r = lambda k, ax: shifted(p1, k, ax, zero_edge)  # noqa: E731
            lap1 = r(1, 1) + r(-1, 1) + r(1, 0) + r(-1, 0)
            lap2 = r(2, 1) + r(-2, 1) + r(2, 0) + r(-2, 0)
            p = t1 * p1 - t2 * p0 + al * (c2 * lap1 + c3 * lap2)
            p[z, NBC + sx] += beta * w[t]
            out[s, t] = p[z, NBC:NBC + NX]
            p0, p1 = p1, p
    return out


def main():
    args = [a for a in sys.argv[1:] if a != "--zero-edge"]
    zero_edge = len(args) < len(sys.argv) - 1
    vel = np.load(args[0]).astype(np.float32)
    sources = [int(s) for s in args[2].split(",")] if len(args) > 2 else SOURCES
    out = np.stack([simulate(vel[i], sources, zero_edge) for i in range(vel.shape[0])])
    np.save(args[1], out)


if __name__ == "__main__":
    main()

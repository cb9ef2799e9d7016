"""Golden for the velocity_affine warp, with scipy.ndimage.map_coordinates.

Usage: affine_ref.py VEL.npy PARAMS.npy OUT.npy

VEL.npy: (N, 70, 70) float32 maps (z, x). PARAMS.npy: (N, 5) float64 rows
(fx, fz, x0, z0, theta_deg). Output cell (z, x) samples the map at
x_in = 69*(x0 + fx*u'), z_in = 69*(z0 + fz*w'), where (u', w') is
(x/69 - 0.5, z/69 - 0.5) rotated by theta about the centre, plus 0.5:
u' = cos*u - sin*w + 0.5, w' = sin*u + cos*w + 0.5. Bilinear (order=1),
edge values outside the map (mode="nearest"), then clipped to 1500..4500.
"""
import sys

import numpy as np
from scipy.ndimage import map_coordinates


def warp(v, p):
    fx, fz, x0, z0, theta = p
    s, c = np.sin(np.radians(theta)), np.cos(np.radians(theta))
    z, x = np.meshgrid(np.arange(70.0), np.arange(70.0), indexing="ij")
    u, w = x / 69.0 - 0.5, z / 69.0 - 0.5
    ur = c * u - s * w + 0.5
    wr = s * u + c * w + 0.5
    xi = 69.0 * (x0 + fx * ur)
    zi = 69.0 * (z0 + fz * wr)
    out = map_coordinates(v.astype(np.float64), [zi, xi], order=1, mode="nearest")
    return np.clip(out, 1500.0, 4500.0).astype(np.float32)


def main():
    vel = np.load(sys.argv[1]).reshape(-1, 70, 70)
    params = np.load(sys.argv[2]).astype(np.float64).reshape(-1, 5)
    np.save(sys.argv[3], np.stack([warp(v, p) for v, p in zip(vel, params)]))


if __name__ == "__main__":
    main()

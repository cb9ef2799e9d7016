"""Reference seismic data from deepwave.scalar for the simulator comparison test.

Usage: deepwave_ref.py VEL.npy OUT.npy [NT]

VEL.npy holds (N, 70, 70) float32 velocity maps (z, x) in m/s; OUT.npy gets
(N, 5, NT, 70) float32 data in OpenFWI's conventions. Adjustments to deepwave's
conventions (docs/domain.md, "deepwave"): deepwave injects -v^2 dt^2 f, so it is given f = -w
(w = OpenFWI's 15 Hz Ricker, 147 samples, peak at index 73); it records before
each step, so it runs NT + 1 steps and the first sample is dropped; a 20-cell
C-PML tuned to 15 Hz replaces OpenFWI's 120-cell sponge; 4th-order accuracy;
sources at (z=1, x in 0, 17, 34, 52, 69), receivers at z=1, every x.
Keep vmax <= 4242 m/s so deepwave does not halve dt internally.
"""
import sys

import numpy as np
import torch
import deepwave

torch.set_num_threads(int(__import__("os").environ.get("DEEPWAVE_THREADS", "1")))


def ricker(nt):
    k = np.arange(nt, dtype=np.float64)
    b = ((73.0 - k) * 15.0 * 1e-3 * np.pi) ** 2
    w = (1.0 - 2.0 * b) * np.exp(-b)
    w[147:] = 0.0
    return w.astype(np.float32)


def simulate(vel, nt=1000):
    sources = [0, 17, 34, 52, 69]
    n = vel.shape[0]
    w = ricker(nt + 1)
    src_loc = torch.zeros(len(sources), 1, 2, dtype=torch.long)
    src_loc[:, 0, 0] = 1
    src_loc[:, 0, 1] = torch.tensor(sources)
    rec_loc = torch.zeros(len(sources), 70, 2, dtype=torch.long)
    rec_loc[:, :, 0] = 1
    rec_loc[:, :, 1] = torch.arange(70)
    amp = -torch.from_numpy(w).reshape(1, 1, -1).repeat(len(sources), 1, 1)
    out = np.zeros((n, len(sources), nt, 70), dtype=np.float32)
    for i in range(n):
        v = torch.from_numpy(np.ascontiguousarray(vel[i], dtype=np.float32))
        r = deepwave.scalar(
            v,
            10.0,
            1e-3,
            source_amplitudes=amp,
            source_locations=src_loc,
            receiver_locations=rec_loc,
            accuracy=4,
            pml_width=20,
            pml_freq=15.0,
        )
        rec = r[-1] if isinstance(r, (tuple, list)) else r.receiver_amplitudes
        # (shot, receiver, time) -> (shot, time, receiver); drop the pre-step sample.
        out[i] = rec.detach().numpy().transpose(0, 2, 1)[:, 1:, :]
    return out


def main():
    vel = np.load(sys.argv[1]).astype(np.float32).reshape(-1, 70, 70)
    nt = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    np.save(sys.argv[2], simulate(vel, nt))


if __name__ == "__main__":
    main()

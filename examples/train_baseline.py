#!/usr/bin/env python3
"""Train a small InversionNet-style model on seispipe output.

Reads any mix of output directories and Kaggle parts through
seispipe_data.SeispipeDataset and fits seismic (5, 1000, 70) → velocity map
(1, 70, 70) with an L1 loss. A few steps check the wiring (CI runs it so on
a tiny output); a real run wants a GPU and many thousand steps.

    python examples/train_baseline.py out/demo --steps 200
    python examples/train_baseline.py '/kaggle/input/fwi-aug-part-*' --steps 20000 --workers 4
"""

import argparse
import pathlib
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

try:
    from seispipe_data import SeispipeDataset
except ImportError:  # run from a clone without `pip install ./python`
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python" / "src"))
    from seispipe_data import SeispipeDataset

V_MIN, V_MAX = 1500.0, 4500.0  # m/s, the OpenFWI velocity range


def block(c_in, c_out, kernel, stride, padding):
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


def up(c_in, c_out):
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


class InversionNet(nn.Module):
    """InversionNet's shape (Wu & Lin, 2019) at a fraction of its width:
    strided convolutions along time squeeze (5, 1000, 70) into one latent
    vector, transposed convolutions grow it into an 80 × 80 map cropped to 70 × 70."""

    def __init__(self, width=16, latent=128):
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            block(5, w, (7, 1), (2, 1), (3, 0)),          # time 1000 → 500
            block(w, 2 * w, (3, 1), (2, 1), (1, 0)),      # → 250
            block(2 * w, 2 * w, (3, 1), (2, 1), (1, 0)),  # → 125
            block(2 * w, 4 * w, (3, 1), (2, 1), (1, 0)),  # → 63
            block(4 * w, 4 * w, 3, 2, 1),                 # (63, 70) → (32, 35)
            block(4 * w, 8 * w, 3, 2, 1),                 # → (16, 18)
            block(8 * w, 8 * w, 3, 2, 1),                 # → (8, 9)
            nn.Conv2d(8 * w, latent, (8, 9)), nn.LeakyReLU(0.2))  # → (1, 1)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(latent, 8 * w, 5), nn.BatchNorm2d(8 * w), nn.LeakyReLU(0.2),
            up(8 * w, 4 * w), up(4 * w, 2 * w), up(2 * w, w), up(w, w),  # 5 → 80
            nn.Conv2d(w, 1, 3, padding=1), nn.Tanh())

    def forward(self, seismic):
        x = torch.sign(seismic) * torch.log1p(seismic.abs())  # tame the direct arrival
        return self.decoder(self.encoder(x))[:, :, 5:75, 5:75]


def to_unit(v):
    return (v - V_MIN) / (V_MAX - V_MIN) * 2 - 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", help="output directories, Kaggle parts or globs")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    ap.add_argument("--allow-mixed", action="store_true",
                    help="accept outputs of different pipelines together")
    ap.add_argument("--save", type=pathlib.Path, help="write the trained weights here")
    args = ap.parse_args()

    ds = SeispipeDataset(args.data, allow_mixed=args.allow_mixed)
    if not ds.labelled:
        sys.exit(f"{args.data}: no velocity maps to train on")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=False,
                        num_workers=args.workers, pin_memory=device == "cuda",
                        persistent_workers=args.workers > 0)
    model = InversionNet().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps)
    print(f"{ds}; {sum(p.numel() for p in model.parameters()):,} parameters on {device}")

    step, start = 0, time.time()
    while step < args.steps:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            pred = model(x)
            loss = nn.functional.l1_loss(pred, to_unit(y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0 or step == args.steps or step == 1:
                mae = loss.item() * (V_MAX - V_MIN) / 2
                print(f"step {step}/{args.steps}: L1 {loss.item():.4f} (MAE {mae:.0f} m/s), "
                      f"{step * args.batch_size / (time.time() - start):.1f} samples/s",
                      flush=True)
            if step == args.steps:
                break
    if args.save:
        torch.save(model.state_dict(), args.save)
        print(f"saved {args.save}")


if __name__ == "__main__":
    main()

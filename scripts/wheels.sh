#!/usr/bin/env bash
# Build the `seispipe` wheels (the binary without libtorch, seispipe_data,
# `python -m seispipe`) for Linux x86_64 and aarch64, manylinux2014
# (glibc 2.17), into target/wheels/: maturin links through zig against
# glibc 2.17's symbols. The version is Cargo.toml's. Needs the venv (maturin,
# ziglang from requirements.txt) and the Rust aarch64 target (added here).
# Usage: scripts/wheels.sh [VENV]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-${SEISPIPE_VENV:-$HOME/.cache/seispipe/venv}}
export PATH="$venv/bin:$PATH"   # maturin finds zig as `python -m ziglang`
out=target/wheels
rm -rf "$out"
mkdir -p "$out"
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu ||
  rustup target add aarch64-unknown-linux-gnu
common=(--release --strip --zig --compatibility manylinux2014 --out "$out")
# The host's wheel reuses target/ (only the binary is linked again); the
# other one builds in a target directory of its own, since zig's linker
# settings would otherwise make cargo rebuild what `make build` and
# scripts/test-aarch64.sh built with gcc.
for arch in x86_64 aarch64; do
  if [ "$(uname -m)" = "$arch" ]; then
    maturin build "${common[@]}"
  else
    CARGO_TARGET_DIR="target/wheel-$arch" \
      maturin build "${common[@]}" --target "$arch-unknown-linux-gnu"
  fi
done
ls -l "$out"

#!/usr/bin/env bash
# Regenerate the committed sample data under data/ with `seispipe synth`
# (deterministic: same seeds, same bytes). Run from the repository root after
# `cargo build --release --workspace`.
set -euo pipefail
BIN="${BIN:-target/release/seispipe}"
OUT="${1:-data}"
"$BIN" synth "$OUT/train_samples" --family FlatVel_A    --samples 2 --seed 11 --dtype f16
"$BIN" synth "$OUT/train_samples" --family CurveVel_B   --samples 2 --seed 12 --dtype f16
"$BIN" synth "$OUT/train_samples" --family FlatFault_A  --samples 2 --seed 13 --dtype f16
"$BIN" synth "$OUT/train_samples" --family CurveFault_B --samples 2 --seed 14 --dtype f16
"$BIN" synth "$OUT/test"          --family CurveVel_A   --samples 3 --seed 15 --dtype f16 --unlabelled

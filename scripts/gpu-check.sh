#!/usr/bin/env bash
# The CUDA checks in one go, for a machine with an NVIDIA GPU (run from
# anywhere; needs the venv that `make` creates, whose torch carries CUDA):
#   1. build both binaries;
#   2. the tch simulator on cuda:0 against the Rust kernel on the edge-stress
#      maps (relative L2 <= 1e-5 over every sample of every source; prints how
#      many values are bit-identical);
#   3. the simulate stage end to end and the pseudo_label device checks
#      (device = "cuda:0" passes `check` on a GPU; half = true needs CUDA);
#   4. benches/simulate.py --device cuda:0: samples/h of the tch path on the
#      GPU, the Rust kernel on this machine's cores and deepwave on the GPU;
#   5. with AUGMENT_VALUE=1, the augmentation benchmark's full-scale GPU
#      configuration (hours; resumable: rerun the script to continue) into
#      out/augment-value-gpu — its table goes to docs/augmentation.md.
# Everything goes to stdout; put the figures (with date, GPU, CPU and this
# command) in docs/physics.md, "CUDA".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh --need-torch
SAMPLES="${SAMPLES:-64}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cargo build --release --workspace
"$SEISPIPE_PYTHON" -c 'import torch; assert torch.cuda.is_available(), "torch sees no GPU"; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
SEISPIPE_SIM_DEVICE=cuda:0 cargo test --release -p seispipe-torch --lib simulate:: -- --nocapture
cargo test --release -p seispipe --test integration -- simulate_device pseudo_label::bad_models_and_devices_are_refused_at_check
"$SEISPIPE_PYTHON" benches/simulate.py --samples "$SAMPLES" --threads "$(nproc)" --device cuda:0
if [ "${AUGMENT_VALUE:-0}" = 1 ]; then
    "$SEISPIPE_PYTHON" benches/augment_value.py --device cuda --out out/augment-value-gpu
fi

# Source this to get the same environment the Makefile uses:
#   . scripts/env.sh && cargo test --release --workspace
# Keeping LIBTORCH identical for make, plain cargo and editors avoids torch-sys rebuilds.
export SEISPIPE_VENV="${SEISPIPE_VENV:-$HOME/.cache/seispipe/venv}"
export SEISPIPE_PYTHON="$SEISPIPE_VENV/bin/python"
for d in "$SEISPIPE_VENV"/lib/python3*/site-packages/torch; do export LIBTORCH="$d"; done

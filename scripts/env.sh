# Source this to get the same environment the Makefile uses:
#   . scripts/env.sh && cargo test --release --workspace
# Keeping LIBTORCH identical for make, plain cargo and editors avoids torch-sys rebuilds.
# It is computed when sourced (after the venv exists), never cached.
export SEISPIPE_VENV="${SEISPIPE_VENV:-$HOME/.cache/seispipe/venv}"
export SEISPIPE_PYTHON="$SEISPIPE_VENV/bin/python"
for _seispipe_torch in "$SEISPIPE_VENV"/lib/python3*/site-packages/torch; do
  if [ -d "$_seispipe_torch/include" ]; then export LIBTORCH="$_seispipe_torch"; fi
done
unset _seispipe_torch
if [ "${1:-}" = --need-torch ] && [ -z "${LIBTORCH:-}" ]; then
  echo "no torch with C++ headers in $SEISPIPE_VENV (make creates it; if it is half-installed, remove it and run make again)" >&2
  return 1 2>/dev/null || exit 1
fi

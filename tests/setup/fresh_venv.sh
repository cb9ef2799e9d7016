#!/usr/bin/env bash
# Regression guard: `make build` on a machine with no venv must create the venv
# and hand cargo a LIBTORCH inside it, in ONE make invocation (a make-time
# $(wildcard) of the venv fails this: make caches the listing from before the
# venv existed, and torch-sys then dies with "torch/torch.h: No such file").
#
# Runs the repository's real Makefile against a throwaway VENV, with stand-ins
# on PATH for the two slow tools: `python3 -m venv` makes a venv whose `pip`
# lays out torch's folder (include/torch/torch.h, as the wheel does), and
# `cargo` checks what the real torch-sys needs: LIBTORCH set, inside the new
# venv, with the header present. Everything else (the prerequisite checks,
# the order of the recipes, how LIBTORCH is found) is the Makefile's own.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
real_python=$(command -v python3)
mkdir -p "$tmp/bin"

cat >"$tmp/bin/python3" <<STUB
#!/usr/bin/env bash
# python3 -m venv DIR makes a stand-in venv; anything else is the real python3.
if [ "\${1:-}" = -m ] && [ "\${2:-}" = venv ]; then
  dir=\$3
  mkdir -p "\$dir/bin"
  cat >"\$dir/bin/pip" <<'PIP'
#!/usr/bin/env bash
# pip install -r requirements.txt: torch's folder as the wheel lays it out.
venv=\$(cd "\$(dirname "\$0")/.." && pwd)
if [[ " \$* " == *" -r "* ]]; then
  mkdir -p "\$venv/lib/python3.11/site-packages/torch/include/torch"
  touch "\$venv/lib/python3.11/site-packages/torch/include/torch/torch.h"
fi
PIP
  chmod +x "\$dir/bin/pip"
  ln -sf "$real_python" "\$dir/bin/python"
  exit 0
fi
exec "$real_python" "\$@"
STUB

cat >"$tmp/bin/cargo" <<'STUB'
#!/usr/bin/env bash
# What torch-sys's build script needs from the environment.
if [ -z "${LIBTORCH:-}" ]; then
  echo "fresh-venv guard: cargo $* ran with LIBTORCH empty (torch-sys would fail: torch/torch.h not found)" >&2
  exit 1
fi
case "$LIBTORCH" in
  "$SEISPIPE_VENV"/*) ;;
  *) echo "fresh-venv guard: LIBTORCH=$LIBTORCH is not inside the new venv $SEISPIPE_VENV" >&2; exit 1 ;;
esac
[ -f "$LIBTORCH/include/torch/torch.h" ] || { echo "fresh-venv guard: $LIBTORCH/include/torch/torch.h missing" >&2; exit 1; }
echo "fresh-venv guard: cargo $* would build against LIBTORCH=$LIBTORCH"
STUB
chmod +x "$tmp/bin/python3" "$tmp/bin/cargo"

venv="$tmp/never-existed/venv"
# The stand-in venv is tiny: do not ask for the real one's 6 GB here.
if PATH="$tmp/bin:$PATH" SEISPIPE_VENV_GB=0 make -C "$root" --no-print-directory build VENV="$venv" >"$tmp/log" 2>&1 &&
  grep -q "would build against LIBTORCH=$venv/" "$tmp/log"; then
  echo "fresh-venv guard: one 'make build' created $venv and built against its torch"
else
  echo "fresh-venv guard FAILED: 'make build' against a venv that did not exist yet:" >&2
  sed 's/^/  | /' "$tmp/log" >&2
  exit 1
fi

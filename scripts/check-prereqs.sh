#!/usr/bin/env bash
# Check what `make` needs before it starts, naming each missing thing on one
# line. Usage: scripts/check-prereqs.sh VENV   (exit 1 if anything is missing)
set -u
venv=${1:-$HOME/.cache/seispipe/venv}
root=$(cd "$(dirname "$0")/.." && pwd)
missing=0
miss() { echo "missing prerequisite: $*" >&2; missing=1; }

# Linux on x86_64: the platform the pinned torch wheel and the CI run on.
os=$(uname -s) arch=$(uname -m)
[ "$os" = Linux ] || miss "Linux (this is $os)"
[ "$arch" = x86_64 ] || miss "an x86_64 machine for 'make' (this is $arch; build the seispipe crate alone with cargo build -p seispipe)"

# Rust at least the rust-version Cargo.toml declares.
need_rust=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$root/Cargo.toml" | head -n 1)
if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
  miss "Rust ≥ $need_rust (cargo and rustc; install with rustup: https://rustup.rs)"
else
  have_rust=$(rustc --version | awk '{print $2}' | cut -d- -f1)
  if [ "$(printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V | head -n 1)" != "$need_rust" ]; then
    miss "Rust ≥ $need_rust (rustc is $have_rust; run 'rustup update')"
  fi
  for tool in rustfmt cargo-clippy; do
    command -v "$tool" >/dev/null 2>&1 || miss "$tool (rustup component add ${tool#cargo-})"
  done
fi

# python3 ≥ 3.10 with the venv module (and ensurepip, which venv needs).
if ! command -v python3 >/dev/null 2>&1; then
  miss "python3 ≥ 3.10 with venv (Debian: apt install python3 python3-venv)"
else
  py=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    miss "python3 ≥ 3.10 (python3 is $py)"
  python3 -c 'import venv, ensurepip' 2>/dev/null ||
    miss "the venv module of python3 $py (Debian: apt install python3-venv)"
fi

# A C++ compiler: torch-sys compiles libtorch's C++ bindings.
if ! command -v "${CXX:-c++}" >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 &&
  ! command -v clang++ >/dev/null 2>&1; then
  miss "a C++ compiler (Debian: apt install g++)"
fi

# Free disk for the venv (torch with its CUDA libraries is ~6 GB), unless it exists.
if [ ! -x "$venv/bin/python" ]; then
  dir=$venv
  while [ ! -d "$dir" ]; do dir=$(dirname "$dir"); done
  free_kb=$(df -Pk "$dir" | awk 'NR == 2 {print $4}')
  need_kb=$((${SEISPIPE_VENV_GB:-6} * 1024 * 1024))
  [ "${free_kb:-0}" -ge "$need_kb" ] ||
    miss "6 GB free for the Python venv at $venv ($((free_kb / 1024)) MB free on $dir; set VENV=... elsewhere)"
fi

exit "$missing"

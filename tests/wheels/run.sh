#!/usr/bin/env bash
# The `seispipe` wheels as a user gets them (make test): build both
# (scripts/wheels.sh), check their tags and the glibc symbol versions their
# binaries need, install the x86_64 one into a fresh venv with no Rust on
# PATH, run the sample pipeline with it and read the output with
# seispipe_data; then run the aarch64 wheel's binary under qemu on the same
# pipeline and compare every output file with the x86_64 one's.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
venv=${SEISPIPE_VENV:-$HOME/.cache/seispipe/venv}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/wheels.sh "$venv" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
fail() { echo "wheels: $*" >&2; exit 1; }

shopt -s nullglob
x86=(target/wheels/seispipe-*-manylinux2014_x86_64.manylinux_2_17_x86_64.whl)
arm=(target/wheels/seispipe-*-manylinux2014_aarch64.manylinux_2_17_aarch64.whl)
[ ${#x86[@]} = 1 ] || fail "expected one manylinux2014 x86_64 wheel in target/wheels"
[ ${#arm[@]} = 1 ] || fail "expected one manylinux2014 aarch64 wheel in target/wheels"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
case "${x86[0]}" in *"seispipe-$version-"*) ;; *) fail "the wheel's version is not Cargo.toml's $version";; esac

# Tags as the WHEEL file states them, and the newest glibc symbol version
# each binary needs (readelf reads either architecture): at most 2.17.
for w in "${x86[0]}" "${arm[0]}"; do
  d="$tmp/$(basename "$w" .whl)"
  mkdir -p "$d"
  "$venv/bin/python" -m zipfile -e "$w" "$d"
  arch=x86_64; case "$w" in *aarch64*) arch=aarch64;; esac
  grep -qx "Tag: py3-none-manylinux_2_17_$arch" "$d"/seispipe-*.dist-info/WHEEL ||
    fail "$w: no manylinux_2_17_$arch tag"
  bin=$(echo "$d"/seispipe-*.data/scripts/seispipe)
  chmod +x "$bin"
  newest=$(readelf --wide --version-info "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  [ "$(printf '%s\nGLIBC_2.17\n' "$newest" | sort -V | tail -1)" = GLIBC_2.17 ] ||
    fail "$w: its binary needs $newest (manylinux2014 allows GLIBC_2.17)"
  shown=$("$venv/bin/auditwheel" show "$w")
  grep -q "consistent with the following platform tag" <<<"$shown" &&
    grep -q "manylinux_2_17_$arch" <<<"$shown" ||
    { echo "$shown"; fail "$w: auditwheel does not find it manylinux_2_17_$arch"; }
  echo "wheels: $(basename "$w"): tag manylinux_2_17_$arch, newest symbol $newest"
done

# A fresh venv from the system Python, and a PATH without cargo or rustc.
python3 -m venv "$tmp/venv"
clean_path="$tmp/venv/bin:/usr/local/bin:/usr/bin:/bin"
! PATH=$clean_path command -v cargo >/dev/null || fail "cargo is on the clean PATH"
PATH=$clean_path "$tmp/venv/bin/pip" install --quiet "${x86[0]}"
[ "$(PATH=$clean_path command -v seispipe)" = "$tmp/venv/bin/seispipe" ] ||
  fail "the wheel did not put seispipe on PATH"
PATH=$clean_path python -m seispipe --version | grep -q "$version" ||
  fail "python -m seispipe --version does not say $version"
run() { # run BINARY... OUT: the sample pipeline into OUT
  local out=${*: -1}
  "${@:1:$#-1}" run pipelines/demo.toml --quiet --set "output.dir=$out"
}
(cd "$root" && PATH=$clean_path run seispipe "$tmp/x86")
PATH=$clean_path python - "$tmp/x86" <<'PY'
import sys
import numpy as np
import seispipe_data
ds = seispipe_data.SeispipeDataset(sys.argv[1])
x, y = ds[len(ds) - 1]
assert x.shape == (5, 1000, 70) and y.shape == (1, 70, 70), (x.shape, y.shape)
assert np.isfinite(x).all()
print(f"wheels: seispipe_data read {len(ds)} samples from the wheel's output")
PY

# `seispipe package --wheel` puts the wheel beside the parts for a notebook.
PATH=$clean_path seispipe package "$tmp/x86" --into "$tmp/kg" --owner you --slug fwi-demo \
  --title "FWI demo data" --wheel "$root/${x86[0]}" >/dev/null
cmp -s "$tmp/kg/fwi-demo-wheel/$(basename "${x86[0]}")" "${x86[0]}" ||
  fail "seispipe package --wheel did not put the wheel into fwi-demo-wheel/"
echo "wheels: seispipe package --wheel added the wheel to the upload (fwi-demo-wheel)"

# What needs libtorch is refused by name, with the way to add it.
cat >"$tmp/sim.toml" <<TOML
seed = 1
[input]
path = "$root/data/train_samples"
[output]
dir = "$tmp/sim"
[[stages]]
type = "simulate"
device = "cpu"
TOML
if PATH=$clean_path seispipe check "$tmp/sim.toml" >"$tmp/sim.log" 2>&1; then
  fail "check of a pipeline that needs libtorch passed without it"
fi
grep -q "pip wheel does not ship it" "$tmp/sim.log" || { cat "$tmp/sim.log"; fail "no word on libtorch"; }
echo "wheels: a pipeline that needs libtorch is refused with the way to add it"

# The aarch64 binary, under qemu, on the same pipeline: the same bytes.
armbin=$(echo "$tmp"/seispipe-*aarch64*/seispipe-*.data/scripts/seispipe)
(cd "$root" && run qemu-aarch64 -L /usr/aarch64-linux-gnu "$armbin" "$tmp/arm")
a=$(cd "$tmp/x86" && find data model provenance -type f | sort | xargs sha256sum)
b=$(cd "$tmp/arm" && find data model provenance -type f | sort | xargs sha256sum)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "the aarch64 binary wrote other bytes than the x86_64 one"
echo "wheels: the aarch64 wheel's binary under qemu wrote the x86_64 wheel's bytes ($(echo "$a" | wc -l) files)"

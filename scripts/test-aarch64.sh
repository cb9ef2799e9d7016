#!/usr/bin/env bash
# Build the seispipe crate (no libtorch) for Linux aarch64 (GH200, Graviton)
# and run its tests under qemu user-mode emulation: every unit test (the
# kernel's bit-identity checks among them), and the integration tests of
# resume, determinism and I/O (core) and the per-stage byte goldens committed
# from x86-64 (versions: same seed, same bytes on every CPU). The physics
# integration tests (Python references, many 1000-step simulations) are left
# to x86-64: under qemu they take over ten minutes, and the goldens already
# show the simulator writes the x86-64 bytes. Installs what it needs first
# (Debian packages, the Rust target). Under qemu, timings mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
  echo "test-aarch64: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get install -y -q "${need[@]}" >/dev/null ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${need[@]}" >/dev/null; }
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# The integration tests start the seispipe binary themselves: through qemu.
export SEISPIPE_TEST_RUNNER="$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"
# libtorch is not cross-built: tests that need seispipe-torch skip, saying so.
export SEISPIPE_WITHOUT_TORCH="libtorch is not cross-built for $target"
set -o pipefail
cargo test --release -p seispipe --target "$target" --lib 2>&1 | tee target/test-aarch64.log
cargo test --release -p seispipe --target "$target" --test integration -- \
  core:: versions:: 2>&1 | tee -a target/test-aarch64.log
kernel=$($CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER "target/$target/release/seispipe" synth \
  "$(mktemp -d)" --family FlatVel_A --samples 1 2>&1 | grep -o 'kernel [a-z0-9]*')
echo "test-aarch64: $kernel"
[ "$kernel" = "kernel neon" ] || { echo "test-aarch64: expected the NEON kernel" >&2; exit 1; }

# The blocked kernel (the default) is NEON by intrinsics, the reference kernel
# (SEISPIPE_FD_KERNEL=reference) by autovectorisation: each one's step must
# hold 4-lane f32 multiplies (fmul vN.4s) in the aarch64 binary.
bin=target/$target/release/seispipe
if [ -x "$bin" ]; then
  for kernel in blocked reference; do
    neon=$(aarch64-linux-gnu-objdump -d --no-show-raw-insn "$bin" |
      awk -v k="$kernel" '/^[0-9a-f]+ </ { f = ($0 ~ ("physics.*fd.*" k ".*step")) ; next } f && /fmul\tv[0-9]+\.4s/ { n++ } END { print n + 0 }')
    echo "test-aarch64: 4-lane f32 multiplies in physics::fd::$kernel::step: $neon"
    [ "$neon" -gt 0 ] || { echo "test-aarch64: the $kernel FD step is not vectorised with NEON" >&2; exit 1; }
  done
fi

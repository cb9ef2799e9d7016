#!/usr/bin/env bash
# Installs Debian's `chromium` when it is missing, for the test that renders
# an output's report.html headlessly and checks the screenshot
# (tests/integration/report.rs). `make test` runs this before the tests; on
# a machine that already has chromium it does nothing. Needs root (apt-get),
# which the project's machines and CI have.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "tests/setup/chromium.sh: chromium is missing and installing it needs root (apt-get install chromium)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium
command -v chromium >/dev/null

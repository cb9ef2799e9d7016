# seispipe: two commands do everything on a fresh machine.
#   make demo   set up, build, run pipelines/demo.toml on data/
#   make test   set up, build, run every test (what CI runs)

SHELL := /bin/bash
VENV ?= $(HOME)/.cache/seispipe/venv
PYTHON := $(VENV)/bin/python
export SEISPIPE_PYTHON := $(PYTHON)
export SEISPIPE_VENV := $(VENV)
# LIBTORCH (the venv's torch folder) is found by scripts/env.sh when a recipe
# line runs, after the venv exists. A make-time $(wildcard) would not do: make
# caches directory listings, so on a fresh machine it still sees no torch after
# the venv recipe has installed it.
TORCH_ENV := . scripts/env.sh --need-torch &&
# The workspace: the `seispipe` crate (never links libtorch) and `torch/`,
# whose `seispipe-torch` binary `seispipe` hands pseudo_label work to.
CARGO_FLAGS := --release --workspace
BIN := target/release/seispipe

.PHONY: all prereqs venv build demo test test-aarch64 wheels bench clean-demo fmt lint

all: build

# Every target starts here: each missing prerequisite named on one line.
prereqs:
	@scripts/check-prereqs.sh $(VENV)

# The Python venv lives outside the work tree so it survives clones and CI runs.
# The marker names the requirements' hash, so a fresh clone (new file times)
# reuses the venv and a changed requirements.txt reinstalls.
REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-12)
VENV_OK := $(VENV)/.seispipe-ok-$(REQ_HASH)
venv: prereqs $(VENV_OK)
$(VENV_OK): | prereqs
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	@touch $@

build: venv
	$(TORCH_ENV) cargo build $(CARGO_FLAGS)

# The main job (flip + noise augmentation of data/train_samples), then the
# other capabilities on the same sample data: pseudo-labels for data/test with
# a model the project fits itself, Kaggle-ready parts of the demo output, and
# pictures of it (report.html, previews).
# Every step resumes or is idempotent, so `make demo` can be rerun.
demo: build
	$(BIN) check pipelines/demo.toml
	$(BIN) run pipelines/demo.toml
	$(BIN) verify out/demo
	@test -f out/demo_model.pt || $(BIN) make-demo-model out/demo_model.pt
	$(BIN) run pipelines/pseudo_label.toml
	$(BIN) verify out/pseudo_label
	$(BIN) package out/demo --into out/demo-kaggle --owner your-kaggle-name \
	    --slug fwi-demo-aug --title "FWI demo augmented" --max-dataset-bytes 25MB
	$(BIN) verify out/demo-kaggle/fwi-demo-aug-part-001
	# Pictures: the report `run` wrote (written again here, same bytes) and
	# previews of two augmented copies beside their originals.
	$(BIN) report out/demo
	$(BIN) preview out/demo --samples 1,11 --out out/demo-previews
	@echo "demo: open out/demo/report.html; previews in out/demo-previews/"

test: venv
	cargo fmt --all -- --check
	$(TORCH_ENV) cargo clippy $(CARGO_FLAGS) --all-targets -- -D warnings
	$(TORCH_ENV) RUSTDOCFLAGS="-D warnings" cargo doc --release --no-deps --workspace
	# The seispipe crate must build with no libtorch anywhere in sight.
	env -u LIBTORCH cargo check --release -p seispipe --all-targets
	# Integration tests run target/release/seispipe, which hands pseudo_label
	# work to target/release/seispipe-torch: build both first.
	$(TORCH_ENV) cargo build $(CARGO_FLAGS)
	# make on a machine without the venv: one invocation must create it and build.
	tests/setup/fresh_venv.sh
	# Headless Chromium renders a report in the tests (Debian's chromium).
	tests/setup/chromium.sh
	$(TORCH_ENV) cargo test $(CARGO_FLAGS) 2>&1 | tee target/test.log; test $${PIPESTATUS[0]} -eq 0
	@awk '/^test result:/ { p += $$4; f += $$6 } /SKIPPED — / { s++ } END { print "tests: " p - s " passed, " s + 0 " skipped, " f + 0 " failed" }' target/test.log
	# seispipe-data (python/) against outputs the binary just built writes,
	# and examples/train_baseline.py for a few steps.
	cd python && $(PYTHON) -m pytest -q -p no:cacheprovider
	# Partitions on a real single-node Slurm cluster, started and stopped here.
	tests/slurm/run.sh $(BIN)
	$(MAKE) --no-print-directory test-aarch64
	# The pip wheels as a user installs them (after test-aarch64: qemu).
	tests/wheels/run.sh

# The seispipe crate cross-built for Linux aarch64 and tested under qemu
# (installs the cross compiler, qemu-user and the Rust target when missing).
test-aarch64: prereqs
	scripts/test-aarch64.sh
	@awk '/^test result:/ { p += $$4; f += $$6 } /SKIPPED — / { s++ } END { print "aarch64 tests: " p - s " passed, " s + 0 " skipped, " f + 0 " failed" }' target/test-aarch64.log

# The `seispipe` wheels for Linux x86_64 and aarch64 (manylinux2014), into
# target/wheels/ (publishing them is a maintainer's step: docs/install.md).
wheels: venv
	scripts/wheels.sh $(VENV)

bench: build
	$(PYTHON) benches/flip_noise.py
	$(PYTHON) benches/merge_scale.py

clean-demo:
	rm -rf out/demo out/demo_model.pt out/pseudo_label out/demo-kaggle out/demo-previews

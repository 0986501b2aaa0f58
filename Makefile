# SmartMixed in Rust. `make test` is what CI runs; `make sweep` is the main job.
#
# One release build serves tests and tools. The target directory lives in the user's cache so
# that repeated runs on one machine (and CI on a developer's machine) build incrementally.
CARGO ?= cargo
CARGO_TARGET_DIR ?= $(HOME)/.cache/smartmixed/target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/release/smartmixed

.PHONY: all build test lint fmt timing clean-cache

all: build

build:
	$(CARGO) build --release --workspace --all-targets

# Unit, integration and doc tests, all in release mode (the same build as the tools).
test:
	$(CARGO) test --release --workspace --all-targets
	$(CARGO) test --release --workspace --doc

# Formatting and lints (a separate check build; not part of `make test`).
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# First timing of the fused ops against candle's relu at [1024, 1024].
timing:
	$(CARGO) run --release -p mixed-act --example op_timing -- 1024 1024 40

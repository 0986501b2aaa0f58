# SmartMixed in Rust. `make test` is what CI runs; `make sweep` is the main job.
#
# One release build serves tests and tools. The target directory lives in the user's cache so
# that repeated runs on one machine (and CI on a developer's machine) build incrementally.
CARGO ?= cargo
CARGO_TARGET_DIR ?= $(HOME)/.cache/smartmixed/target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/release/smartmixed

.PHONY: all build bin test lint fmt timing sweep

# `make sweep [CONFIG=experiments/paper.toml] [DATA_DIR=../shared/data/mnist] [DEVICE=cuda]`
CONFIG ?= experiments/quick.toml
SWEEP_OUT ?= results/$(basename $(notdir $(CONFIG)))
DATA_DIR ?=
DEVICE ?=
FEATURES ?=

all: build

build:
	$(CARGO) build --release --workspace --all-targets

# Just the binary (what `make sweep` needs). FEATURES=cuda or FEATURES=metal for GPUs.
bin:
	$(CARGO) build --release -p experiments --bin smartmixed $(if $(FEATURES),--features $(FEATURES))

# The main job: the grid, then the comparison and the figures. Rerunning resumes: finished runs
# are skipped, so a second `make sweep` only redoes the report.
sweep: bin
	$(BIN) sweep --config $(CONFIG) --out $(SWEEP_OUT) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(DEVICE),--device $(DEVICE))
	$(BIN) compare $(SWEEP_OUT)
	$(BIN) plot $(SWEEP_OUT)

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

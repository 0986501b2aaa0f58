# SmartMixed in Rust. `make test` is what CI runs; `make sweep` is the main job.
#
# One release build serves tests and tools. The target directory lives in the user's cache so
# that repeated runs on one machine (and CI on a developer's machine) build incrementally.
CARGO ?= cargo
CARGO_TARGET_DIR ?= $(HOME)/.cache/smartmixed/target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/release/smartmixed

.PHONY: all build bin test lint fmt bench sweep sweep-slurm slurm-test

# `make sweep [CONFIG=experiments/paper.toml] [DATA_DIR=../shared/data/mnist] [DEVICE=cuda]`
CONFIG ?= experiments/quick.toml
SWEEP_OUT ?= results/$(basename $(notdir $(CONFIG)))
DATA_DIR ?=
DEVICE ?=
FEATURES ?=
# Parallel shard processes for `make sweep`. On a CPU, JOBS=2 THREADS=1 runs two single-threaded
# processes, which trains faster on two cores than one process with two threads (small
# matrices scale poorly across threads). GPU sweeps want JOBS=1.
JOBS ?= 2
THREADS ?= 1

all: build

build:
	$(CARGO) build --release --workspace --all-targets

# Just the binary (what `make sweep` needs). FEATURES=cuda or FEATURES=metal for GPUs.
bin:
	$(CARGO) build --release -p experiments --bin smartmixed $(if $(FEATURES),--features $(FEATURES))

# The main job: the grid, then the comparison and the figures. Rerunning resumes: finished runs
# are skipped, so a second `make sweep` only redoes the report.
sweep: bin
	@set -e; pids=""; \
	for i in $$(seq 1 $(JOBS)); do \
	  RAYON_NUM_THREADS=$(THREADS) $(BIN) sweep --config $(CONFIG) --out $(SWEEP_OUT) --shard $$i/$(JOBS) \
	    $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(DEVICE),--device $(DEVICE)) & pids="$$pids $$!"; \
	done; \
	status=0; for p in $$pids; do wait $$p || status=1; done; exit $$status
	$(BIN) compare $(SWEEP_OUT)
	$(BIN) plot $(SWEEP_OUT)

# Unit, integration and doc tests, all in release mode (the same build as the tools).
test:
	$(CARGO) test --release --workspace --all-targets
	$(CARGO) test --release --workspace --doc

# The same grid as a SLURM job array (one task per run, at most 64; TASKS=N to choose), then
# compare and plot as a dependent job. See README.md, "On a cluster".
TASKS ?=
sweep-slurm: bin
	DATA_DIR=$(DATA_DIR) scripts/slurm-sweep.sh $(CONFIG) $(SWEEP_OUT) $(TASKS)

# scripts/slurm-sweep.sh against a real one-node SLURM cluster started (and stopped) here.
slurm-test: bin
	scripts/slurm-test.sh

# Formatting and lints (a separate check build; not part of `make test`).
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Both benchmarks, appended to results/bench/cpu.csv (one row per measurement).
bench: bin
	$(BIN) bench ops --csv results/bench/cpu.csv
	$(BIN) bench train --csv results/bench/cpu.csv


# SmartMixed in Rust. `make test` is what CI runs; `make sweep` is the main job.
#
# One release build serves tests and tools. The target directory lives in the user's cache so
# that repeated runs on one machine (and CI on a developer's machine) build incrementally.
CARGO ?= cargo
CARGO_TARGET_DIR ?= $(HOME)/.cache/smartmixed/target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/release/smartmixed

.PHONY: all build bin test lint fmt bench sweep tensorboard report-conv-nets sweep-slurm slurm-test gpu-checks cuda-check ptx-check metal-check gpu-bundle

# `make sweep [CONFIG=experiments/paper.toml] [DATA_DIR=../shared/data/mnist] [DEVICE=cuda] [COHORT_SIZE=N]`
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
# Runs trained together as one cohort (see docs/cohorts.md); empty: the config's cohort_size,
# else the default. COHORT_SIZE=1 trains one run at a time.
COHORT_SIZE ?=

all: build

build:
	$(CARGO) build --release --workspace --all-targets

# Matrix-product kernels: avx512 (the default: gemm's AVX-512 kernels on CPUs with avx512f, its
# AVX2+FMA kernels elsewhere, chosen at run time) or avx2 (never the AVX-512 ones: the kernels
# of every result set committed before 2026-12-06, for reproducing them bit for bit; see
# docs/reproducibility.md). Both build into the same target directory, so switching rebuilds
# candle and what depends on it.
KERNELS ?= avx512
ifeq ($(KERNELS),avx512)
KERNEL_FLAGS :=
else ifeq ($(KERNELS),avx2)
KERNEL_FLAGS := --no-default-features
else
$(error KERNELS=$(KERNELS): expected avx512 or avx2)
endif

# Just the binary (what `make sweep` needs). FEATURES=cuda or FEATURES=metal for GPUs.
bin:
	$(CARGO) build --release -p experiments --bin smartmixed $(KERNEL_FLAGS) $(if $(FEATURES),--features $(FEATURES))

# The main job: the grid, then the comparison and the figures. Rerunning resumes: finished runs
# are skipped, so a second `make sweep` only redoes the report.
sweep: bin
	@set -e; pids=""; \
	for i in $$(seq 1 $(JOBS)); do \
	  RAYON_NUM_THREADS=$(THREADS) $(BIN) sweep --config $(CONFIG) --out $(SWEEP_OUT) --shard $$i/$(JOBS) \
	    $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(DEVICE),--device $(DEVICE)) \
	    $(if $(COHORT_SIZE),--cohort-size $(COHORT_SIZE)) & pids="$$pids $$!"; \
	done; \
	status=0; for p in $$pids; do wait $$p || status=1; done; exit $$status
	$(BIN) compare $(SWEEP_OUT)
	$(BIN) plot $(SWEEP_OUT)
	@echo "curves and settings of every run: tensorboard --logdir $(SWEEP_OUT)/tensorboard"

# TensorBoard event files for the committed result sets (or SETS="results/quick ..."), written
# from their files; prints the command to look. See docs/tensorboard.md.
SETS ?= $(patsubst %/results.csv,%,$(wildcard results/*/results.csv))
tensorboard: bin
	$(BIN) tensorboard $(SETS)

# The reports of issue 32 (results/README.md, `fashion-cnn/`): Fashion-MNIST's conv grid's own
# comparison and figures, the combined report over the conv nets and the MLPs on the same data,
# LeNet-5 at twice the budget against the grid (`fashion-lenet16/`), fit-regime.md (when each
# method's checkpoint comes and how far it fits there) and the sign tests pooled over the conv
# nets and over the MLPs (SmartMixed against each method).
CONV_NETS_SETS := results/fashion-cnn results/mnist1d-cnn results/mnist1d results/adaptive-fashion
report-conv-nets: bin
	$(BIN) compare results/fashion-cnn
	$(BIN) plot results/fashion-cnn
	$(BIN) compare $(CONV_NETS_SETS) --out results/conv-nets
	$(BIN) plot $(CONV_NETS_SETS) --out results/conv-nets --figures by-method,paired
	$(BIN) compare results/fashion-lenet16 results/fashion-cnn
	python3 scripts/fit-regime.py results/mnist1d results/mnist1d-width results/mnist1d-cnn \
	  results/fashion-cnn results/fashion-lenet16 results/adaptive-fashion > results/conv-nets/fit-regime.md
	python3 scripts/sign-test.py results/mnist1d-cnn results/fashion-cnn > results/conv-nets/sign-tests.md
	python3 scripts/sign-test.py results/adaptive results/adaptive-fashion results/mnist1d \
	  > results/conv-nets/sign-tests-mlp.md

# Unit, integration and doc tests, all in release mode (the same build as the tools).
test:
	$(CARGO) test --release --workspace --all-targets
	$(CARGO) test --release --workspace --doc

# The same grid as a SLURM job array (one task per run, at most 64; TASKS=N to choose), then
# compare and plot as a dependent job. See docs/cluster.md.
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
	$(BIN) bench ops --repeats 10 --csv results/bench/cpu.csv
	$(BIN) bench train --csv results/bench/cpu.csv


# ---- GPU code checks that need no GPU (all three run in CI) ------------------------------
#
# cuda-check: type-checks and lints every cfg(feature = "cuda") line. candle's CUDA build runs
# nvcc even for `cargo check`; a stand-in nvcc (scripts/ci/stand-in/nvcc) answers its version
# query and creates the files it is asked for. It cannot link: ptx-check compiles our kernels
# for real, and scripts/gpu-check.sh runs them on a GPU.
STAND_IN := $(CURDIR)/scripts/ci/stand-in
cuda-check:
	CUDA_COMPUTE_CAP=90 CUDARC_CUDA_VERSION=13000 NVCC=$(STAND_IN)/nvcc PATH="$(STAND_IN):$$PATH" \
	  $(CARGO) clippy --workspace --features experiments/cuda,mixed-act/cuda --all-targets -- -D warnings

# ptx-check: compiles src/kernels/mixed_act.cu with a real nvcc 13.0 to PTX for sm_80 and sm_90
# (warnings are errors), and with NVRTC as the library does at run time. The compilers come
# from NVIDIA's PyPI wheels, pinned, installed once into CUDA_TOOLS (about 270 MB).
CUDA_TOOLS ?= $(HOME)/.cache/smartmixed/cuda-13.0
CUDA_WHEELS := nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
CUDA_SRC := crates/mixed-act/src/kernels/mixed_act.cu
$(CUDA_TOOLS)/.installed:
	python3 -m pip install --quiet --disable-pip-version-check --target $(CUDA_TOOLS) $(CUDA_WHEELS)
	touch $@
ptx-check: $(CUDA_TOOLS)/.installed
	scripts/ci/ptx-check.sh $(CUDA_TOOLS)/nvidia/cu13 $(CUDA_SRC)

# metal-check: Metal compiles only on Apple machines. This parses the MSL source as C++20 under
# a shim (crates/mixed-act/tests/emulation/metal_stdlib), which catches typos, undefined names
# and type errors (`make test` also runs those kernels on the CPU through the same shim), and
# type-checks and lints the Rust side, src/metal.rs, against candle's real Metal backend by
# checking mixed-act for aarch64-apple-darwin (no linking, so no Apple SDK needed; rustup
# installs the target's standard library once). The other crates pull in C code (TLS) that
# cannot be cross-compiled here, and their Metal-specific lines are only device selection.
APPLE_TARGET := aarch64-apple-darwin
metal-check:
	g++ -std=c++20 -fsyntax-only -Wall -Werror -Wno-attributes -Wno-unknown-pragmas \
	  -I crates/mixed-act/tests/emulation -x c++ crates/mixed-act/src/kernels/mixed_act.metal
	@echo "metal-check: mixed_act.metal parses as C++ under the shim (not a Metal compile)"
	@if rustup target list --installed 2>/dev/null | grep -qx $(APPLE_TARGET) \
	    || rustup target add $(APPLE_TARGET); then \
	  $(CARGO) clippy --target $(APPLE_TARGET) -p mixed-act --features metal --all-targets -- -D warnings; \
	else \
	  echo "metal-check: SKIPPED the Rust type-check: rustup could not install $(APPLE_TARGET)"; \
	fi

gpu-checks: cuda-check ptx-check metal-check

# The GPU bundle: the binaries scripts/gpu-check.sh runs, built here for a GPU machine that has
# the NVIDIA driver and the CUDA libraries but no Rust. Works on a machine with neither a GPU nor
# a system CUDA: nvcc comes from CUDA_TOOLS (above), and cuBLAS / cuRAND to link against from
# CUDA_LIBS, pinned wheels again (about 700 MB, installed once). GPU_CAP is the compute
# capability of candle's own kernels: 80 (default) runs on A100 natively and on H100/H200 and
# newer through the driver's JIT; 90 targets H100/H200 only. See scripts/gpu-bundle.sh and
# docs/gpu.md, "GPU check". The bundle: smartmixed (a launcher), bin/{smartmixed-cuda, smartmixed-cpu,
# gpu-tests}, cuda-libs.sh, BUILD.txt, data/mnist; and gpu-bundle.tar.xz beside it, to carry.
CUDA_LIBS ?= $(HOME)/.cache/smartmixed/cuda-13.0-libs
CUDA_LIB_WHEELS := nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
GPU_CAP ?= 80
GPU_BUNDLE ?= $(CURDIR)/gpu-bundle
# MNIST for the bundle (gpu-check.sh times real epochs); skipped when the folder is missing.
BUNDLE_DATA ?= $(CURDIR)/../shared/data/mnist
$(CUDA_LIBS)/.installed:
	python3 -m pip install --quiet --disable-pip-version-check --target $(CUDA_LIBS) $(CUDA_LIB_WHEELS)
	touch $@
gpu-bundle: $(CUDA_TOOLS)/.installed $(CUDA_LIBS)/.installed
	GPU_CAP=$(GPU_CAP) BUNDLE_DATA=$(BUNDLE_DATA) scripts/gpu-bundle.sh $(CUDA_TOOLS) $(CUDA_LIBS) $(GPU_BUNDLE)
	scripts/gpu-bundle-test.sh $(GPU_BUNDLE) $(CUDA_TOOLS) $(CUDA_LIBS)

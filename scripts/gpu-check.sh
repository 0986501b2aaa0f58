#!/usr/bin/env bash
# The GPU check for an NVIDIA machine, in under 5 minutes:
#   1. the toolchain it finds (driver, GPU, CUDA libraries and where they came from);
#   2. the op tests on CUDA against the CPU kernels (crates/mixed-act/tests/gpu.rs);
#   3. fused ops, candle's relu and a device-to-device copy at [8192, 8192] (effective GB/s);
#   4. one training epoch of architecture 3: ReLU baseline, SmartMixed phase 1 and phase 2;
#   5-6. cohorts and the adaptive methods' step;
#   7. conv nets: the MNIST-1D CNN trained for 3 epochs on CUDA (per-channel SmartMixed) and the
#      LeNet-5 training step of bench train on CUDA against candle's own conv path;
# then a short table, last. Everything goes into OUT_DIR.
#
# Usage (see docs/gpu.md, "GPU check"): BIN_DIR=gpu-bundle scripts/gpu-check.sh OUT_DIR
#   BIN_DIR=dir   the bundle of `make gpu-bundle` (unpacked gpu-bundle.tar.xz): no Rust needed
#                 here. Without it the script builds with cargo and this machine's nvcc.
#   DATA_DIR=dir  MNIST IDX files (default: the bundle's data/mnist, else ../shared/data/mnist,
#                 else tests/data/mnist-mini, whose epochs are too short to time: the table
#                 then says n/a).
# Every step has a time limit, cut to what is left of a 285-second budget. The driver's JIT
# cache goes into OUT_DIR/cuda-cache; nothing is written outside OUT_DIR.
# CUDA libraries: the loader path, else NVIDIA's pip wheels under the Python site-packages
# (nvidia/*/lib); the log says which. Exit status: non-zero when a step fails or a target is
# missed.
set -uo pipefail
started=$(date +%s)
# Paths as given, resolved before moving to the repository.
out=${1:?usage: scripts/gpu-check.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [[ -n "${BIN_DIR:-}" ]]; then
  [[ -d "$BIN_DIR" ]] || { echo "gpu-check: BIN_DIR=$BIN_DIR is not a folder (unpack gpu-bundle.tar.xz first)" >&2; exit 1; }
  BIN_DIR=$(cd "$BIN_DIR" && pwd)
fi
[[ -n "${DATA_DIR:-}" ]] && DATA_DIR=$(cd "$DATA_DIR" && pwd)
cd "$(dirname "$0")/.."
log() { echo "== [$(( $(date +%s) - started ))s] $*" | tee -a "$out/gpu-check.log"; }
# limit SECONDS: the smaller of SECONDS and what is left of the budget (at least 5).
limit() { local left=$(( 285 - ($(date +%s) - started) )); (( left < 5 )) && left=5; echo $(( $1 < left ? $1 : left )); }
# run_limited SECONDS CMD...: SIGTERM at the limit (our binaries stop after the current batch),
# SIGKILL 10 s later.
run_limited() { local s; s=$(limit "$1"); shift; timeout -k 10 "$s" "$@"; }
export CUDA_CACHE_PATH="$out/cuda-cache" GIT_OPTIONAL_LOCKS=0
fail=0

# ---- 1. toolchain ----------------------------------------------------------------------------
log "toolchain ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
if ! command -v nvidia-smi >/dev/null; then
  log "no nvidia-smi: this script needs an NVIDIA GPU machine"; exit 1
fi
gpu_name=$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
timeout 20 nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv | tee "$out/gpu.txt"
log "host $(uname -m); NVIDIA wheels: $(timeout 20 python3 -m pip list 2>/dev/null | grep -i '^nvidia-' | tr -s ' ' '=' | tr '\n' ' ')"
if command -v nvcc >/dev/null; then nvcc --version | tail -2 | tee -a "$out/gpu-check.log"; else
  log "no nvcc on PATH (not needed with BIN_DIR: NVRTC compiles our kernels at run time)"; fi

if [[ -n "${BIN_DIR:-}" ]]; then
  smartmixed="$BIN_DIR/smartmixed"; gpu_tests="$BIN_DIR/bin/gpu-tests"; cuda_bin="$BIN_DIR/bin/smartmixed-cuda"
  [[ -f "$BIN_DIR/BUILD.txt" ]] && sed 's/^/bundle: /' "$BIN_DIR/BUILD.txt" | tee -a "$out/gpu-check.log"
else
  command -v cargo >/dev/null || { log "no BIN_DIR and no cargo: nothing to run"; exit 1; }
  export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}
  log "building with --features cuda (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP)"
  cargo build --release -p experiments --bin smartmixed --features cuda >"$out/build.txt" 2>&1 || { log "build failed: $out/build.txt"; exit 1; }
  gpu_tests=$(cargo test --release -p mixed-act --features cuda --test gpu --no-run 2>&1 | tee -a "$out/build.txt" | grep -oP 'Executable .*\(\K[^)]+' | tail -1)
  smartmixed=${CARGO_TARGET_DIR:-target}/release/smartmixed; cuda_bin=$smartmixed
fi
# shellcheck source=scripts/cuda-libs.sh
source scripts/cuda-libs.sh
cuda_libs_setup "$cuda_bin"
log "$CUDA_LIBS_SOURCE"
for bin in "$cuda_bin" "$gpu_tests"; do
  [[ -x "$bin" ]] || { log "missing binary $bin"; exit 1; }
  missing=$(cuda_libs_missing "$bin")
  if [[ -n "$missing" ]]; then
    log "$bin cannot find: $missing (install the NVIDIA driver / CUDA 13 wheels, or set LD_LIBRARY_PATH)"
    exit 1
  fi
done
ldd "$cuda_bin" | grep -E "cuda|nvrtc|cublas|curand" | tee -a "$out/gpu-check.log"

# ---- 2. op tests on CUDA ---------------------------------------------------------------------
log "op tests on CUDA against the CPU kernels"
if run_limited 60 "$gpu_tests" --test-threads=1 --nocapture >"$out/op-tests.txt" 2>&1 && ! grep -q SKIPPED "$out/op-tests.txt"; then
  ops_result="pass ($(grep -oP '\d+ passed' "$out/op-tests.txt" | tail -1))"
else
  ops_result="FAIL (see op-tests.txt)"; fail=1
fi
log "op tests: $ops_result"

# ---- 3. op timings at [8192, 8192] -----------------------------------------------------------
log "bench ops at [8192, 8192]"
rm -f "$out/bench.csv"
run_limited 60 "$smartmixed" bench ops --device cuda --shapes 8192x8192 --repeats 20 --csv "$out/bench.csv" >"$out/bench-ops.txt" 2>&1 || { log "bench failed: bench-ops.txt"; fail=1; }
# impl,pass -> gbps and p50 from the CSV (columns: bench,impl,pass,rows,cols,dtype,device,threads,p20,p50,p80,gbps,...)
field() { awk -F, -v i="$1" -v p="$2" -v c="$3" '$2==i && $3==p {print $c}' "$out/bench.csv" 2>/dev/null | tail -1; }
fused_gbps=$(field fused fwd 12); copy_gbps=$(field copy fwd 12)
relu_us=$(field uniform-relu fwd 10); fused_us=$(field fused fwd 10)
fused_bwd_us=$(field fused fwd_bwd 10); relu_bwd_us=$(field uniform-relu fwd_bwd 10)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
bw_share=$(ratio "$fused_gbps" "$copy_gbps")

# ---- 4. one epoch each -----------------------------------------------------------------------
data=${DATA_DIR:-}
[[ -z "$data" && -n "${BIN_DIR:-}" && -d "$BIN_DIR/data/mnist" ]] && data=$BIN_DIR/data/mnist
[[ -z "$data" && -d ../shared/data/mnist ]] && data=../shared/data/mnist
[[ -z "$data" ]] && data=crates/experiments/tests/data/mnist-mini
mini=$([[ "$data" == *mnist-mini ]] && echo yes || echo no)
log "training on $data"
train() { # name, extra flags...
  local name=$1; shift
  rm -rf "$out/train-$name"
  run_limited 60 "$smartmixed" train --device cuda --arch 3 --data-dir "$data" --out "$out/train-$name" --quiet "$@" \
    >"$out/train-$name.txt" 2>&1 || { log "training $name failed: train-$name.txt"; fail=1; }
}
# Seconds of one epoch from a run's epochs.csv (column 6); the second epoch of each run, so that
# neither side pays the first epoch's kernel loading and JIT.
epoch_s() { awk -F, -v e="$2" 'NR > 1 && $1 == e {print $6}' "$out/train-$1/epochs.csv" 2>/dev/null; }
train relu --method relu --epochs 2
train smartmixed --method smartmixed --epochs 3 --phase1-epochs 1
relu_epoch=$(epoch_s relu 2)
p1_epoch=$(epoch_s smartmixed 1); p2_epoch=$(epoch_s smartmixed 3)
p2_vs_relu=$(ratio "$p2_epoch" "$relu_epoch")
[[ $mini == yes ]] && p2_vs_relu="-"

# ---- 5. cohorts: the step per model of 1, 7 and 21 models ------------------------------------
log "bench cohort"
run_limited 45 "$smartmixed" bench cohort --device cuda --batches 10 --csv "$out/bench.csv" >"$out/bench-cohort.txt" 2>&1 || { log "bench cohort failed: bench-cohort.txt"; fail=1; }
# m1, m7, m21 p50 (us per model) of a network (rows: bench cohort, cols = first width).
cohort_us() { awk -F, -v i="$1" -v w="$2" '$1=="cohort" && $2==i && $5==w {print $10}' "$out/bench.csv" 2>/dev/null | tail -1; }

# ---- 6. the adaptive methods' training step (the learnable activations' kernels) -----------------
log "bench train --method"
adaptive="softmix,softmix_freeze,prelu,swish_beta,pau,pau_neuron"
run_limited 60 "$smartmixed" bench train --device cuda --batches 20 --method "$adaptive" --csv "$out/bench.csv" \
  >"$out/bench-train.txt" 2>&1 || { log "bench train failed: bench-train.txt"; fail=1; }
# "prelu / relu 1.02" lines of the bench's output.
vs_relu() { awk -v m="$1" '$1 == m && $2 == "/" && $3 == "relu" {print $4}' "$out/bench-train.txt" 2>/dev/null | tail -1; }

# ---- 7. conv nets ------------------------------------------------------------------------------
log "conv nets"
rm -rf "$out/train-cnn"
run_limited 45 "$smartmixed" train --device cuda --dataset mnist1d --net mnist1d-cnn --method smartmixed \
  --epochs 3 --phase1-epochs 1 --out "$out/train-cnn" --quiet >"$out/train-cnn.txt" 2>&1 \
  || { log "training the MNIST-1D CNN failed: train-cnn.txt"; fail=1; }
cnn_acc=$(python3 -c "import json,sys; print(round(100 * json.load(open(sys.argv[1]))['test_acc'], 2))" "$out/train-cnn/summary.json" 2>/dev/null)
run_limited 45 "$smartmixed" bench train --device cuda --net lenet5 --batches 10 --csv "$out/bench.csv" \
  >"$out/bench-conv.txt" 2>&1 || { log "bench train --net lenet5 failed: bench-conv.txt"; fail=1; }
conv_line() { grep -m1 "^$1" "$out/bench-conv.txt" 2>/dev/null | cut -c1-100; }

# ---- table -----------------------------------------------------------------------------------
target() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "-") print "n/a"; else if ((op == ">=" && v >= t) || (op == "<=" && v <= t)) print "met"; else print "MISSED" }'; }
bw_verdict=$(target "$bw_share" ">=" 0.70); ep_verdict=$(target "$p2_vs_relu" "<=" 1.10)
[[ "$bw_verdict" == met && "$ep_verdict" == met ]] || fail=1
{
  echo "# GPU check: $gpu_name, $(date -u +%Y-%m-%d), repository git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  [[ -f "${BIN_DIR:-}/BUILD.txt" ]] && echo && echo "Bundle: $(head -1 "$BIN_DIR/BUILD.txt"), $(sed -n 3p "$BIN_DIR/BUILD.txt")."
  echo
  echo "| check | value | target |"
  echo "|---|---|---|"
  echo "| op tests on CUDA vs CPU kernels | $ops_result | all pass |"
  echo "| fused fwd [8192, 8192] | ${fused_gbps:-?} GB/s, p50 ${fused_us:-?} us | |"
  echo "| device copy [8192, 8192] | ${copy_gbps:-?} GB/s | |"
  echo "| fused fwd / copy bandwidth | $bw_share | >= 0.70: $bw_verdict |"
  echo "| fused fwd / relu fwd (time) | $(ratio "$fused_us" "$relu_us") | |"
  echo "| fused fwd_bwd / relu fwd_bwd (time) | $(ratio "$fused_bwd_us" "$relu_bwd_us") | |"
  echo "| epoch s, arch 3 ($data): relu (2nd) / phase 1 (1st) / phase 2 (2nd) | ${relu_epoch:-?} / ${p1_epoch:-?} / ${p2_epoch:-?} | |"
  echo "| phase-2 epoch / relu epoch | $p2_vs_relu$([[ $mini == yes ]] && echo " (mini data: too short to time)") | <= 1.10: $ep_verdict |"
  for w in 512 64; do
    echo "| step per model, widths from $w: m1 / m7 / m21 us | $(cohort_us m1 $w) / $(cohort_us m7 $w) / $(cohort_us m21 $w) (m21/m1 $(ratio "$(cohort_us m21 $w)" "$(cohort_us m1 $w)")) | |"
  done
  for m in ${adaptive//,/ }; do
    echo "| training step, arch 3, batch 128: $m / relu | $(vs_relu "$m") | |"
  done
  echo "| MNIST-1D CNN, SmartMixed per channel, 3 epochs on CUDA: test accuracy % | ${cnn_acc:-failed} | trains |"
  echo "| LeNet-5 step on CUDA (bench train --net lenet5) | $(conv_line "relu / matmul-floor"); $(conv_line "candle-conv / relu") | |"
  echo
  echo "Whole check: $(( $(date +%s) - started )) s. $CUDA_LIBS_SOURCE."
} | tee "$out/table.md"
exit $fail

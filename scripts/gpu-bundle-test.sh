#!/usr/bin/env bash
# What the GPU bundle does where there is no GPU, run here right after `make gpu-bundle` builds
# it (this machine has neither an NVIDIA driver nor a GPU):
#   1. no driver at all: `--device cuda` is an exit-2 error that names libcuda.so.1;
#      `--device auto` runs the CPU build and says so;
#   2. the CUDA libraries from pip wheels found through the Python path, the driver still missing;
#   3. a driver library but no GPU (the link stub, whose every call answers "no device"): the
#      CUDA build starts; `--device cuda` is an exit-2 error, `--device auto` falls back to the
#      CPU and says so, and the GPU op tests report "SKIPPED: no GPU".
# Usage: scripts/gpu-bundle-test.sh BUNDLE_DIR CUDA_TOOLS CUDA_LIBS (as scripts/gpu-bundle.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=$(cd "${1:?usage: gpu-bundle-test.sh BUNDLE_DIR CUDA_TOOLS}" && pwd)
tools=$(cd "${2:?CUDA_TOOLS}" && pwd)
libs_root=$(cd "${3:?CUDA_LIBS}" && pwd)
data=crates/experiments/tests/data/mnist-mini
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
# expect NAME CODE NEEDLE -- COMMAND...: runs COMMAND with no CUDA on the loader path unless the
# caller's environment adds some, and checks its exit code and that stderr contains NEEDLE.
expect() {
  local name=$1 code=$2 needle=$3; shift 4
  local got=0
  "$@" >"$work/out" 2>"$work/err" || got=$?
  if [[ $got == "$code" ]] && { [[ -z "$needle" ]] || grep -qF -- "$needle" "$work/err" "$work/out"; }; then
    echo "ok: $name (exit $got)"
  else
    echo "FAILED: $name: exit $got (want $code), output without '$needle':"
    sed 's/^/  | /' "$work/err" "$work/out" | tail -8
    failures=$((failures + 1))
  fi
}
train() { # device, extra env...
  local device=$1; shift
  env -u LD_LIBRARY_PATH "$@" "$bundle/smartmixed" train --device "$device" --data-dir "$data" \
    --widths 16 --method relu --epochs 1 --batch-size 64 --quiet --out "$work/run-$device"
}

echo "== 1. no NVIDIA driver, no CUDA libraries"
expect "cuda is an error naming the driver" 2 "libcuda.so.1" -- train cuda PYTHONPATH=
expect "auto runs the CPU build and says so" 0 "running the CPU build" -- train auto PYTHONPATH=
[[ -f "$work/run-auto/summary.json" ]] || { echo "FAILED: auto wrote no summary.json"; failures=$((failures + 1)); }
expect "cpu runs the CPU build" 0 "" -- train cpu PYTHONPATH=

echo "== 2. CUDA libraries from pip wheels on the Python path, still no driver"
expect "cuda names only the driver" 2 "no NVIDIA driver" -- train cuda PYTHONPATH="$tools:$libs_root"
(
  PYTHONPATH="$tools:$libs_root"
  export PYTHONPATH
  # shellcheck source=scripts/cuda-libs.sh
  source scripts/cuda-libs.sh
  cuda_libs_setup "$bundle/bin/smartmixed-cuda"
  echo "   launcher: $CUDA_LIBS_SOURCE; missing: ${CUDA_LIBS_MISSING:-nothing}"
  [[ "$CUDA_LIBS_MISSING" == "libcuda.so.1" ]]
) || { echo "FAILED: the wheels' libraries were not all found"; failures=$((failures + 1)); }

echo "== 3. a driver library but no GPU (the stub)"
mkdir -p "$work/driver"
ln -s "$tools/nvidia/cu13/lib/stubs/libcuda.so" "$work/driver/libcuda.so.1"
with_stub=(PYTHONPATH="$tools:$libs_root" LD_LIBRARY_PATH="$work/driver")
stub_train() { # device
  env "${with_stub[@]}" "$bundle/smartmixed" train --device "$1" --data-dir "$data" \
    --widths 16 --method relu --epochs 1 --batch-size 64 --quiet --out "$work/stub-$1"
}
expect "the CUDA build starts" 0 "smartmixed" -- env "${with_stub[@]}" "$bundle/smartmixed" --version
expect "cuda is an error naming the device" 2 "no usable CUDA device" -- stub_train cuda
expect "auto falls back to the CPU and says so" 0 "no GPU answered" -- stub_train auto
grep -q '"device_used": "cpu"' "$work/stub-auto/config.json" \
  || { echo "FAILED: auto's config.json does not say device_used cpu"; failures=$((failures + 1)); }
# The op tests run their CPU side and skip the GPU side (gpu-check.sh fails on that line).
expect "GPU op tests skip without a GPU" 0 "SKIPPED: no GPU" -- \
  env "${with_stub[@]}" bash -c "source scripts/cuda-libs.sh; cuda_libs_setup '$bundle/bin/gpu-tests'; '$bundle/bin/gpu-tests' --test-threads=1 --nocapture"

if [[ $failures -gt 0 ]]; then
  echo "gpu-bundle-test: $failures FAILED"
  exit 1
fi
echo "gpu-bundle-test: ok"

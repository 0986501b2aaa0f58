#!/usr/bin/env bash
# Compiles the CUDA kernels for real without a GPU: nvcc to PTX for sm_80 and sm_90 (warnings
# are errors), then NVRTC as src/cuda.rs uses it at run time, and checks that every kernel the
# Rust code launches is in the output.
# Usage: ptx-check.sh CUDA_ROOT SOURCE.cu   (CUDA_ROOT holds bin/nvcc and lib/libnvrtc.so.13)
set -euo pipefail
root=$1 src=$2
nvcc="$root/bin/nvcc"
"$nvcc" --version | tail -2
# The entry points the host launches: every extern "C" __global__ function of the source,
# which a unit test (kernels.rs) ties to the Rust list.
mapfile -t expected < <(grep -oP 'extern "C" __global__ void \K\w+' "$src")
[[ ${#expected[@]} -gt 0 ]] || { echo "ptx-check: no kernels found in $src" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for arch in sm_80 sm_90; do
  "$nvcc" --ptx -arch="$arch" -Werror all-warnings -o "$out/$arch.ptx" "$src"
  for k in "${expected[@]}"; do
    grep -q "\.entry $k(" "$out/$arch.ptx" || { echo "ptx-check: $k missing from $arch PTX" >&2; exit 1; }
  done
  echo "nvcc $arch: ${#expected[@]} kernels"
done
LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  python3 "$(dirname "$0")/nvrtc-compile.py" "$root/lib/libnvrtc.so.13" "$src" --expect "${expected[@]}"
echo "ptx-check: ok"

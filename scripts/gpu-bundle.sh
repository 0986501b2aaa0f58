#!/usr/bin/env bash
# Builds the GPU bundle on a machine without a GPU and without a system CUDA: what
# scripts/gpu-check.sh runs on an NVIDIA machine that has a driver and the CUDA libraries but no
# Rust. Called by `make gpu-bundle` (see docs/gpu.md, "GPU check"), which installs the pinned wheels.
#
# Usage: scripts/gpu-bundle.sh CUDA_TOOLS CUDA_LIBS BUNDLE_DIR
#   CUDA_TOOLS  nvcc 13.0, NVRTC and the CUDA runtime from NVIDIA's wheels (nvidia/cu13/...)
#   CUDA_LIBS   cuBLAS, cuBLASLt and cuRAND from NVIDIA's wheels, to link against
#   GPU_CAP     compute capability of candle's own kernels (default 80; see below)
#
# candle compiles its kernels to PTX for one compute capability (CUDA_COMPUTE_CAP). PTX for
# compute 8.0 runs on A100 (sm_80) as it is and on every newer GPU (H100/H200 sm_90, L40 sm_89,
# B200 sm_100): PTX is always compiled to the GPU's machine code by the driver when loaded (and
# cached, ~/.nv/ComputeCache). GPU_CAP=90 builds sm_90a PTX instead, which may use Hopper-only
# instructions and loads on H100/H200 only. Our own
# kernels are compiled at run time by NVRTC for the GPU at hand either way. Whatever GPU_CAP,
# candle's PTX kernel sources are also compiled here for sm_80 and sm_90 (GPU_CHECK_CAPS), so a
# CUDA-13 break for either shows here.
#
# candle links the CUDA libraries dynamically (cudarc's dynamic-linking), so the linker needs
# them here: cuBLAS, cuBLASLt, cuRAND, NVRTC and the runtime from the wheels, and the driver
# library (libcuda.so.1, which only an NVIDIA driver installs) as a stub whose every function
# returns CUDA_ERROR_NO_DEVICE, the same role as the CUDA toolkit's lib/stubs/libcuda.so. The
# stub never goes into the bundle; the GPU machine's own driver library is used there.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(cd "${1:?usage: gpu-bundle.sh CUDA_TOOLS CUDA_LIBS BUNDLE_DIR}" && pwd)
libs=$(cd "${2:?CUDA_LIBS}" && pwd)
bundle=${3:?BUNDLE_DIR}
cap=${GPU_CAP:-80}
root=$tools/nvidia/cu13
target=${CARGO_TARGET_DIR:-target}
started=$(date +%s)

# Link names (-lcudart, -lnvrtc, -lcublas, ...) for the wheels' versioned libraries.
ln -sf libcudart.so.13 "$root/lib/libcudart.so"
ln -sf libnvrtc.so.13 "$root/lib/libnvrtc.so"
for lib in libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
  ln -sf "$libs/nvidia/cu13/lib/$lib" "$root/lib/${lib%.so.*}.so"
  ln -sf "$libs/nvidia/cu13/lib/$lib" "$root/lib/$lib"
done

# The driver stub: every driver entry point cudarc declares, each returning 100
# (CUDA_ERROR_NO_DEVICE), with the real library's soname.
metadata=$(cargo metadata --format-version 1 --features experiments/cuda)
crate_dir() { # the source folder of a dependency
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == sys.argv[1]))' "$1" <<<"$metadata" | xargs dirname
}
cudarc_src=$(crate_dir cudarc)
mkdir -p "$root/lib/stubs"
grep -oP '^\s+fn \Kcu\w+(?=\()' "$cudarc_src/src/driver/sys/mod.rs" | sort -u \
  | awk '{ printf "int %s(void) { return 100; }\n", $1 }' >"$root/lib/stubs/cuda-stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib/stubs/libcuda.so" "$root/lib/stubs/cuda-stub.c"
echo "gpu-bundle: driver stub with $(grep -c . "$root/lib/stubs/cuda-stub.c") entry points"

export NVCC=$root/bin/nvcc CUDA_HOME=$root CUDA_COMPUTE_CAP=$cap PATH="$root/bin:$PATH"
"$NVCC" --version | tail -2

# candle's PTX kernels (the ones its CUDA backend loads; not the quantized-MoE static library)
# for the other usual capabilities too, as candle's build compiles them: proof that they compile
# for A100 (80) and H100/H200 (90) with this nvcc, whichever GPU_CAP the bundle carries.
candle_kernels=$(crate_dir candle-kernels)/src
ptx_out=$(mktemp -d)
for other in ${GPU_CHECK_CAPS:-80 90}; do
  for src in "$candle_kernels"/*.cu; do
    case $(basename "$src") in moe_* | mmvq_gguf.cu | mmq_*) continue ;; esac
    "$NVCC" --ptx -arch="sm_$other" --expt-relaxed-constexpr -std=c++17 -O3 -I "$candle_kernels" \
      -diag-suppress 177 -o "$ptx_out/$(basename "$src" .cu).ptx" "$src"
  done
  echo "gpu-bundle: candle's PTX kernels compile for sm_$other ($(ls "$ptx_out" | wc -l) files)"
done
rm -rf "$ptx_out"
echo "gpu-bundle: building with --features cuda, candle kernels for compute capability $cap"
cargo build --release -p experiments --bin smartmixed --features cuda
mkdir -p "$bundle/bin"
cp "$target/release/smartmixed" "$bundle/bin/smartmixed-cuda"
# The CPU build too: the launcher falls back to it where there is no NVIDIA driver at all
# (the CUDA build cannot even start without libcuda.so.1). Built right away, so that
# $target/release/smartmixed (what `make sweep` runs) is the CUDA build only for a moment.
cargo build --release -p experiments --bin smartmixed
cp "$target/release/smartmixed" "$bundle/bin/smartmixed-cpu"
# With experiments selected too, the features of every dependency are unified as in the build
# above, so the dependencies (candle's kernels above all) are not compiled a second time.
cargo test --release -p experiments -p mixed-act --features experiments/cuda --test gpu --no-run \
  2>&1 | tee "$bundle.cargo-test.log" >&2
gpu_tests=$(grep -oP 'Executable .*\(\K[^)]+' "$bundle.cargo-test.log" | tail -1)
rm -f "$bundle.cargo-test.log"
cp "$gpu_tests" "$bundle/bin/gpu-tests"
strip "$bundle/bin/"*
cp scripts/bundle-launcher.sh "$bundle/smartmixed"
cp scripts/cuda-libs.sh "$bundle/cuda-libs.sh"
# MNIST (11 MB of IDX .gz) for gpu-check's epochs, when there is a copy here: a GPU machine may
# have no network and no data.
if [[ -n "${BUNDLE_DATA:-}" && -d "$BUNDLE_DATA" ]]; then
  mkdir -p "$bundle/data/mnist"
  cp "$BUNDLE_DATA"/*-ubyte* "$bundle/data/mnist/"
fi
chmod +x "$bundle/smartmixed"
{
  echo "git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo -dirty)"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $("$NVCC" --version | tail -2 | head -1)"
  echo "candle kernels: compute capability $cap"
  echo "needs at run time: $(ldd "$bundle/bin/smartmixed-cuda" | grep -oP '^\s*\Klib(cuda|cudart|nvrtc|cublas|cublasLt|curand)\.so\.\d+' | sort -u | tr '\n' ' ')"
} >"$bundle/BUILD.txt"
cat "$bundle/BUILD.txt"
# Compressed for carrying (the binaries shrink about 8x).
tar -C "$(dirname "$bundle")" -cf - "$(basename "$bundle")" | xz -T0 -6 >"$bundle.tar.xz"
du -sh "$bundle/bin/"* "$bundle" "$bundle.tar.xz"
echo "gpu-bundle: done in $(( $(date +%s) - started )) s; copy $bundle and the repository to the GPU machine, then: BIN_DIR=<bundle> scripts/gpu-check.sh OUT_DIR"

#!/usr/bin/env bash
# `smartmixed` in the GPU bundle (made by `make gpu-bundle`): runs the CUDA build
# (bin/smartmixed-cuda) with the CUDA libraries found by cuda-libs.sh. Where the CUDA build
# cannot start (no NVIDIA driver, or missing CUDA libraries), `--device cuda` is an error that
# names what is missing (exit 2), and anything else runs the CPU build (bin/smartmixed-cpu),
# saying why (a config file that asks for cuda then gets the CPU build's own exit-2 error).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/cuda-libs.sh
source "$here/cuda-libs.sh"
cuda_libs_setup "$here/bin/smartmixed-cuda"
if [[ -z "$CUDA_LIBS_MISSING" ]]; then
  exec "$here/bin/smartmixed-cuda" "$@"
fi

device=auto
prev=""
for arg in "$@"; do
  [[ "$prev" == --device ]] && device=$arg
  [[ "$arg" == --device=* ]] && device=${arg#--device=}
  prev=$arg
done
if [[ " $CUDA_LIBS_MISSING " == *" libcuda.so.1 "* ]]; then
  why="no NVIDIA driver on this machine (libcuda.so.1, which the driver installs, is not on the loader path)"
else
  why="missing CUDA libraries: $CUDA_LIBS_MISSING ($CUDA_LIBS_SOURCE; install NVIDIA's wheels, e.g. pip install nvidia-cuda-runtime nvidia-cuda-nvrtc nvidia-cublas nvidia-curand for CUDA 13, or set LD_LIBRARY_PATH)"
fi
case "$device" in
  cuda*)
    echo "error: --device $device: the CUDA build cannot run here: $why" >&2
    exit 2 ;;
  cpu) ;;
  *)
    echo "note: the CUDA build cannot run here ($why); running the CPU build" >&2 ;;
esac
exec "$here/bin/smartmixed-cpu" "$@"

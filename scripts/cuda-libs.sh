# Sourced by the GPU bundle's launcher and scripts/gpu-check.sh: makes the CUDA libraries a
# CUDA build of smartmixed links to (libcudart, libnvrtc, libcublas, libcublasLt, libcurand and
# the driver's libcuda) findable, and says where they came from.
#
# cuda_libs_setup BINARY: when `ldd BINARY` finds them all on the loader path, nothing changes.
# Otherwise the `nvidia/*/lib` folders of the Python environments' site-packages (NVIDIA's pip
# wheels: nvidia-cuda-runtime, nvidia-cuda-nvrtc, nvidia-cublas, nvidia-curand) are added to
# LD_LIBRARY_PATH. Sets CUDA_LIBS_SOURCE (a sentence) and CUDA_LIBS_MISSING (what is still
# missing, space-separated; libcuda.so.1 comes only with an NVIDIA driver).
cuda_libs_missing() {
  ldd "$1" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ' | sed 's/ $//'
}

cuda_libs_setup() {
  local bin=$1 dirs="" py dir
  CUDA_LIBS_MISSING=$(cuda_libs_missing "$bin")
  if [[ -z "$CUDA_LIBS_MISSING" ]]; then
    CUDA_LIBS_SOURCE="CUDA libraries from the loader path (ldconfig, LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-unset})"
    return 0
  fi
  for py in python3 python; do
    command -v "$py" >/dev/null || continue
    for dir in $("$py" -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))' 2>/dev/null); do
      for lib in "$dir"/nvidia/*/lib; do
        [[ -d "$lib" && ":$dirs:" != *":$lib:"* ]] && dirs="${dirs:+$dirs:}$lib"
      done
    done
  done
  if [[ -n "$dirs" ]]; then
    export LD_LIBRARY_PATH="$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    CUDA_LIBS_SOURCE="CUDA libraries from pip wheels: $dirs"
  else
    CUDA_LIBS_SOURCE="no nvidia/*/lib folders in the Python environments"
  fi
  CUDA_LIBS_MISSING=$(cuda_libs_missing "$bin")
}

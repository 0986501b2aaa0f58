# Sourced by the GPU bundle's launcher and scripts/gpu-check.sh: makes the CUDA libraries a
# CUDA build of smartmixed links to (libcudart, libnvrtc, libcublas, libcublasLt, libcurand and
# the driver's libcuda) findable, and says where they came from.
#
# cuda_libs_setup BINARY: when `ldd BINARY` finds them all on the loader path, nothing changes.
# Otherwise the `nvidia/*/lib` folders of NVIDIA's pip wheels (nvidia-cuda-runtime,
# nvidia-cuda-nvrtc, nvidia-cublas, nvidia-curand) are appended to LD_LIBRARY_PATH: from the
# site-packages of python3 / python, an active virtualenv or conda env, ~/.local and the
# system's Python folders. Sets CUDA_LIBS_SOURCE (a sentence) and CUDA_LIBS_MISSING (what is
# still missing, space-separated; libcuda.so.1 comes only with an NVIDIA driver).

# The libraries `ldd` cannot find; "ldd failed" when it cannot tell (no ldd, a binary for
# another machine).
cuda_libs_missing() {
  local report
  report=$(ldd "$1" 2>&1) || { echo "ldd failed ($(uname -m) host: ${report%%$'\n'*})"; return; }
  awk '/not found/ {print $1}' <<<"$report" | tr '\n' ' ' | sed 's/ $//'
}

# Candidate site-packages folders, one per line.
cuda_libs_site_dirs() {
  local py
  for py in python3 python; do
    command -v "$py" >/dev/null || continue
    "$py" -c 'import site, sys
for p in site.getsitepackages() + [site.getusersitepackages()] + sys.path: print(p)' 2>/dev/null
  done
  [[ -n "${VIRTUAL_ENV:-}" ]] && printf '%s\n' "$VIRTUAL_ENV"/lib/python3*/site-packages
  [[ -n "${CONDA_PREFIX:-}" ]] && printf '%s\n' "$CONDA_PREFIX"/lib/python3*/site-packages
  printf '%s\n' "$HOME"/.local/lib/python3*/site-packages /usr/local/lib/python3*/{site,dist}-packages \
    /usr/lib/python3*/{site,dist}-packages /usr/lib/python3/dist-packages
}

cuda_libs_setup() {
  local bin=$1 dirs="" dir lib
  CUDA_LIBS_MISSING=$(cuda_libs_missing "$bin")
  if [[ -z "$CUDA_LIBS_MISSING" ]]; then
    CUDA_LIBS_SOURCE="CUDA libraries from the loader path (ldconfig, LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-unset})"
    return 0
  fi
  while IFS= read -r dir; do
    for lib in "$dir"/nvidia/*/lib; do
      [[ -d "$lib" && ":$dirs:" != *":$lib:"* ]] && dirs="${dirs:+$dirs:}$lib"
    done
  done < <(cuda_libs_site_dirs)
  if [[ -n "$dirs" ]]; then
    # After the user's own folders: a library they chose wins over a wheel's.
    export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$dirs"
    CUDA_LIBS_SOURCE="CUDA libraries from pip wheels: $dirs"
  else
    CUDA_LIBS_SOURCE="no nvidia/*/lib folders in the Python environments"
  fi
  CUDA_LIBS_MISSING=$(cuda_libs_missing "$bin")
}

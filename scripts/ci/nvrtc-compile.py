#!/usr/bin/env python3
"""Compile a CUDA source with NVRTC, as src/cuda.rs does at run time, and list its kernels.

Usage: nvrtc-compile.py LIBNVRTC SOURCE.cu [--arch compute_90] [--expect NAME ...]

nvcc includes host headers that NVRTC lacks, so a source that nvcc accepts can still fail
under NVRTC; this runs the real NVRTC library (from the PyPI wheel nvidia-cuda-nvrtc) on the
same source with the same (default) options, without a GPU. Exits non-zero, printing NVRTC's
log, when compilation fails or an expected entry point is missing from the PTX.
"""
import argparse
import ctypes
import re
import sys


def check(nvrtc, status, what):
    if status != 0:
        nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
        sys.exit(f"NVRTC {what} failed: {nvrtc.nvrtcGetErrorString(status).decode()}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("libnvrtc")
    parser.add_argument("source")
    parser.add_argument("--arch", default=None)
    parser.add_argument("--expect", nargs="*", default=[])
    args = parser.parse_args()

    nvrtc = ctypes.CDLL(args.libnvrtc)
    source = open(args.source, "rb").read()
    program = ctypes.c_void_p()
    check(nvrtc, nvrtc.nvrtcCreateProgram(ctypes.byref(program), source,
                                          args.source.encode(), 0, None, None), "create")
    options = [f"--gpu-architecture={args.arch}".encode()] if args.arch else []
    option_array = (ctypes.c_char_p * len(options))(*options)
    status = nvrtc.nvrtcCompileProgram(program, len(options), option_array)

    log_size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(log_size))
    log = ctypes.create_string_buffer(log_size.value)
    nvrtc.nvrtcGetProgramLog(program, log)
    if log.value.strip():
        print(log.value.decode(), file=sys.stderr)
    check(nvrtc, status, f"compilation of {args.source}")

    ptx_size = ctypes.c_size_t()
    check(nvrtc, nvrtc.nvrtcGetPTXSize(program, ctypes.byref(ptx_size)), "PTX size")
    ptx = ctypes.create_string_buffer(ptx_size.value)
    check(nvrtc, nvrtc.nvrtcGetPTX(program, ptx), "PTX")
    entries = re.findall(r"\.entry\s+(\w+)", ptx.value.decode())
    missing = sorted(set(args.expect) - set(entries))
    if missing:
        sys.exit(f"NVRTC output lacks the kernels {missing}; it has {entries}")
    arch = args.arch or "NVRTC's default architecture"
    print(f"NVRTC compiled {args.source} for {arch}: {len(entries)} kernels")


if __name__ == "__main__":
    main()

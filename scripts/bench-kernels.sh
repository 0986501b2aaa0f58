#!/usr/bin/env bash
# `smartmixed bench train` with both matrix-product kernel families, alternated: builds the
# default binary (AVX-512 kernels where the CPU has avx512f) and the KERNELS=avx2 one, keeps
# each under $CARGO_TARGET_DIR/kernels/, then runs them in turn ROUNDS times per architecture
# (avx512, avx2, avx2, avx512, ...: drift on a shared machine hits both alike), single-threaded,
# appending every row to CSV (its `kernels` column says which family ran).
#   scripts/bench-kernels.sh [CSV] [ROUNDS] [ARCHS]
# Defaults: results/bench/cpu.csv, 2 rounds, architectures "3 12". Extra `bench train` flags
# go in BENCH_FLAGS (e.g. BENCH_FLAGS="--batches 100").
set -euo pipefail
cd "$(dirname "$0")/.."
csv=${1:-results/bench/cpu.csv} rounds=${2:-2} archs=${3:-3 12}
target=${CARGO_TARGET_DIR:-$HOME/.cache/smartmixed/target}
for kernels in avx2 avx512; do
  make --no-print-directory bin KERNELS=$kernels CARGO_TARGET_DIR="$target" >&2
  mkdir -p "$target/kernels/$kernels"
  cp "$target/release/smartmixed" "$target/kernels/$kernels/smartmixed"
done
grep -qw avx512f /proc/cpuinfo 2>/dev/null \
  || echo "note: this CPU has no avx512f: both binaries run the AVX2+FMA kernels" >&2
for arch in $archs; do
  for round in $(seq 1 "$rounds"); do
    order="avx512 avx2"; [ $((round % 2)) -eq 0 ] && order="avx2 avx512"
    for kernels in $order; do
      echo "== architecture $arch, round $round, $kernels kernels"
      # shellcheck disable=SC2086
      "$target/kernels/$kernels/smartmixed" bench train --arch "$arch" --threads 1 \
        --csv "$csv" ${BENCH_FLAGS:-}
    done
  done
done

#!/usr/bin/env bash
# What the TensorBoard writer adds to a sweep's time: experiments/quick.toml (or CONFIG) into
# fresh directories with and without events (--no-tensorboard), single-threaded, the two at once
# on two cores so that both see the same machine, REPS times; prints each pair's wall times and
# their ratio, then the ratio of the sums.
#   scripts/tensorboard-overhead.sh [SHARD]   (e.g. 1/3 for a third of the grid; default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/smartmixed/target}/release/smartmixed}
config=${CONFIG:-experiments/quick.toml}
data=${DATA_DIR:-../shared/data/mnist}
reps=${REPS:-2}
shard=${1:-1/1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sweep() { # OUT [FLAGS]: prints the wall seconds
  local out=$1; shift
  local t0; t0=$(date +%s.%N)
  RAYON_NUM_THREADS=1 "$bin" sweep --config "$config" --data-dir "$data" --out "$out" \
    --shard "$shard" --quiet "$@"
  echo "$(date +%s.%N) - $t0" | bc
}
total_on=0; total_off=0
for rep in $(seq "$reps"); do
  sweep "$tmp/on$rep" > "$tmp/on$rep.s" &
  on=$!
  sweep "$tmp/off$rep" --no-tensorboard > "$tmp/off$rep.s" &
  off=$!
  wait $on $off
  s_on=$(cat "$tmp/on$rep.s"); s_off=$(cat "$tmp/off$rep.s")
  total_on=$(echo "$total_on + $s_on" | bc); total_off=$(echo "$total_off + $s_off" | bc)
  events=$(find "$tmp/on$rep/tensorboard" -name '*tfevents*' | wc -l)
  bytes=$(find "$tmp/on$rep/tensorboard" -name '*tfevents*' -printf '%s\n' | paste -sd+ | bc)
  printf 'rep %s: with events %.1f s (%s files, %s bytes), without %.1f s, ratio %.4f\n' \
    "$rep" "$s_on" "$events" "$bytes" "$s_off" "$(echo "$s_on / $s_off" | bc -l)"
done
printf '%s shard %s, %s reps: with / without = %.4f\n' "$config" "$shard" "$reps" \
  "$(echo "$total_on / $total_off" | bc -l)"

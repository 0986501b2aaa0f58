#!/usr/bin/env bash
# Runs the same small runs and a small sweep (cohorts of mixed methods, and one run at a time)
# with two smartmixed binaries on the MNIST subset in the tests, and compares every file they
# write, timing columns blanked: for refactors that must keep every result's bits.
#   scripts/compare-binaries.sh OLD_BINARY NEW_BINARY [WORK_DIR]
# Exit 0 when everything matches; the differing files otherwise.
set -euo pipefail
old=$1 new=$2 work=${3:-$(mktemp -d)}
mkdir -p "$work"
data=$(cd "$(dirname "$0")/.." && pwd)/crates/experiments/tests/data/mnist-mini
common=(--data-dir "$data" --widths 32,16 --epochs 4 --batch-size 64 --quiet)
runs=(
  "smartmixed:--method smartmixed --phase1-epochs 2 --seed 1"
  "pool:--method smartmixed --phase1-epochs 2 --pool relu,elu,gelu --clamp none --seed 2"
  "reference:--preset reference --phase1-epochs 2 --seed 3"
  "fresh:--method smartmixed --phase1-epochs 2 --phase2-init fresh --seed 4"
  "relu:--method relu --seed 1"
  "diverging:--method relu --lr 1e30 --grad-clip none --seed 5"
  "pau:--method pau --seed 6"
  "pau_neuron:--method pau_neuron --seed 7"
  "prelu:--method prelu --seed 8"
  "swish_beta:--method swish_beta --seed 9"
  "softmix:--method softmix --seed 10"
  "softmix_freeze:--method softmix_freeze --phase1-epochs 2 --seed 11"
)
sweep=$work/sweep.toml
cat > "$sweep" <<TOML
name = "compare-binaries"
architectures = [[32, 16]]
methods = ["relu", "elu", "gelu", "smartmixed"]
seeds = [1, 2]
[overrides]
epochs = 4
phase1_epochs = 2
batch_size = 64
[grid]
pool = ["paper", "relu,elu,gelu"]
TOML
for side in old new; do
  bin=${!side}
  for entry in "${runs[@]}"; do
    name=${entry%%:*}
    # shellcheck disable=SC2086
    RAYON_NUM_THREADS=1 "$bin" train "${common[@]}" ${entry#*:} --out "$work/$side/runs/$name"
  done
  for size in 1 8; do
    RAYON_NUM_THREADS=1 "$bin" sweep --config "$sweep" --data-dir "$data" --quiet \
      --cohort-size $size --out "$work/$side/sweep-$size" > /dev/null
  done
done
# What may differ: wall times, timestamps, the commit, the binary's own version line, its
# record of the machine's kernels and columns newer than one binary that these runs leave empty.
normalise() {
  case "$1" in
    *epochs.csv) awk -F, 'BEGIN{OFS=","} {if (NR > 1) $6 = ""; print}' "$1" ;;
    *results.csv) python3 - "$1" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for r in rows:
    for k in list(r):
        if "seconds" in k or k in ("timestamp", "git_commit"):
            r[k] = ""
# Columns since 2026-12-06, empty for these MNIST MLP runs: MNIST-1D's generator arguments and
# the named net.
newer = ("mnist1d", "net")
fields = [k for k in (rows[0] if rows else []) if k not in newer or any(r[k] for r in rows)]
w = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore")
w.writeheader(); w.writerows(rows)
PY
    ;;
    *summary.json|*config.json|*manifest.json) python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for k in list(d):
    if "seconds" in k or k in ("git_commit", "git_dirty", "written", "threads"):
        d[k] = None
    # The machine's record (kernel family, SIMD sets), absent from binaries before 2026-12-06.
    if k in ("matmul_kernels", "cpu_simd"):
        del d[k]
print(json.dumps(d, sort_keys=True, indent=1))
PY
    ;;
    *) cat "$1" ;;
  esac
}
status=0 files=0
while IFS= read -r path; do
  rel=${path#"$work/old/"}
  files=$((files + 1))
  if [ ! -f "$work/new/$rel" ]; then echo "missing in new: $rel"; status=1; continue; fi
  if ! cmp -s <(normalise "$path") <(normalise "$work/new/$rel"); then echo "differs: $rel"; status=1; fi
done < <(find "$work/old" -type f ! -name '.lock' ! -name '*.tmp.*' ! -name '*tfevents*' | sort)
# TensorBoard's event files are left out of the byte comparison: their names and records carry
# wall-clock times (and an epoch-time scalar); every other value in them comes from the
# config.json, epochs.csv and summary.json compared above. Both binaries must still write them
# in the same run directories (where both write any: a binary before TensorBoard writes none).
event_dirs() { (cd "$1" && find . -type f -name '*tfevents*' -exec dirname {} \; | sort); }
old_events=$(event_dirs "$work/old" | wc -l) new_events=$(event_dirs "$work/new" | wc -l)
if [ "$old_events" -gt 0 ] && ! cmp -s <(event_dirs "$work/old") <(event_dirs "$work/new"); then
  echo "differs: the directories holding TensorBoard event files"; status=1
fi
extra=$(cd "$work/new" && find . -type f ! -name '.lock' ! -name '*tfevents*' | wc -l)
echo "compared $files files from the old binary ($extra written by the new one; TensorBoard event files, compared by place only: $old_events old, $new_events new) in $work: $([ $status = 0 ] && echo all identical || echo DIFFERENCES)"
exit $status

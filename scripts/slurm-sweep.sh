#!/usr/bin/env bash
# Submits a sweep to SLURM: one job array whose task I runs `smartmixed sweep --shard I/N`, then a
# dependent job that runs compare and plot over OUT once every task has ended (afterany).
#
# usage: scripts/slurm-sweep.sh CONFIG OUT [N]
#   N                 array size (default: one task per run of the grid, at most $SLURM_MAX_TASKS)
# environment (all optional):
#   SMARTMIXED_BIN    the binary (default: $CARGO_TARGET_DIR or ~/.cache/smartmixed/target, release)
#   DATA_DIR          --data-dir for every task (a path the compute nodes can read)
#   SLURM_PARTITION   sbatch --partition          SLURM_TIME     sbatch --time (default 24:00:00)
#   SLURM_CPUS        --cpus-per-task (default 2)  SLURM_GPUS     GPUs per task (default: 1 when
#   SLURM_MAX_TASKS   cap on N (default 64)                       the config's device is cuda)
#   SLURM_EXTRA       further sbatch options, split on spaces
# A failed or preempted task can be resubmitted with the same command: finished runs are skipped.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
config=$(realpath "$1")
out=$(realpath -m "$2")
bin=${SMARTMIXED_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/smartmixed/target}/release/smartmixed}
[[ -x $bin ]] || { echo "error: no smartmixed binary at $bin (build it, or set SMARTMIXED_BIN)" >&2; exit 2; }
[[ -f $config ]] || { echo "error: no sweep config at $1" >&2; exit 2; }
command -v sbatch >/dev/null || { echo "error: sbatch not found: is this a SLURM login node?" >&2; exit 2; }

data_args=()
[[ -n ${DATA_DIR:-} ]] && data_args=(--data-dir "$(realpath "$DATA_DIR")")
runs=$("$bin" sweep --config "$config" --out "$out" --plan "${data_args[@]}" | sed -n 's/^runs: //p')
max=${SLURM_MAX_TASKS:-64}
n=${3:-$(( runs < max ? runs : max ))}
if ! [[ $n =~ ^[0-9]+$ ]] || (( n < 1 )); then
  echo "error: N must be a positive integer, got '$n'" >&2
  exit 2
fi

opts=(--parsable --job-name=smartmixed --cpus-per-task="${SLURM_CPUS:-2}" --time="${SLURM_TIME:-24:00:00}")
[[ -n ${SLURM_PARTITION:-} ]] && opts+=(--partition="$SLURM_PARTITION")
gpus=${SLURM_GPUS:-}
if [[ -z $gpus ]] && grep -Eq '^[[:space:]]*device[[:space:]]*=[[:space:]]*"cuda' "$config"; then gpus=1; fi
[[ -n $gpus && $gpus != 0 ]] && opts+=(--gres="gpu:$gpus")
# shellcheck disable=SC2206
[[ -n ${SLURM_EXTRA:-} ]] && opts+=(${SLURM_EXTRA})

mkdir -p "$out/slurm"
q() { printf '%q ' "$@"; }
shard_cmd="RAYON_NUM_THREADS=\${SLURM_CPUS_PER_TASK:-1} $(q "$bin" sweep --config "$config" --out "$out" "${data_args[@]}") --shard \$SLURM_ARRAY_TASK_ID/$n"
array=$(sbatch "${opts[@]}" --array="1-$n" --output="$out/slurm/shard-%a.log" --wrap="$shard_cmd")
array=${array%%;*}
report_cmd="$(q "$bin" compare "$out") && $(q "$bin" plot "$out")"
report=$(sbatch --parsable --job-name=smartmixed-report --dependency="afterany:$array" \
  --output="$out/slurm/report.log" ${SLURM_PARTITION:+--partition="$SLURM_PARTITION"} --wrap="$report_cmd")
report=${report%%;*}

echo "submitted: $runs runs as job array $array (tasks 1-$n), report job $report"
echo "watch:     squeue -j $array,$report     sacct -j $array --format=JobID,State,Elapsed,ExitCode"
echo "logs:      $out/slurm/shard-<task>.log, $out/slurm/report.log"
echo "resubmit:  $0 $1 $2 $n   (finished runs are skipped)"

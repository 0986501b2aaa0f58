#!/usr/bin/env bash
# Tests scripts/slurm-sweep.sh against a real one-node SLURM cluster started here: munged with a
# fresh key, slurmctld and slurmd on this host, all configuration, state and logs under a
# temporary directory (nothing in /etc is touched), stopped again by their process ids at the end.
#
# It submits a tiny sweep (the shipped MNIST subset, 2 architectures x 2 methods x 2 seeds) as an
# array of 4 tasks, checks that the merged results equal a local run of the same sweep, then
# cancels one task of a second submission on purpose and shows that resubmitting finishes the grid.
#
# usage: scripts/slurm-test.sh   (as root; installs slurmctld, slurmd, slurm-client and munge
#                                  from Debian if they are missing)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${SMARTMIXED_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/smartmixed/target}/release/smartmixed}
[[ -x $bin ]] || { echo "slurm-test: no binary at $bin (run make bin first)" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm-test: installing SLURM and munge from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

tmp=$(mktemp -d /tmp/smartmixed-slurm.XXXXXX)
pids=()
cleanup() {
  for pidfile in "$tmp/slurmd.pid" "$tmp/slurmctld.pid" "$tmp/munged.pid"; do
    [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  sleep 1
  for pidfile in "$tmp/slurmd.pid" "$tmp/slurmctld.pid" "$tmp/munged.pid"; do
    [[ -f $pidfile ]] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  done
  if [[ ${KEEP_SLURM_TMP:-0} == 1 ]]; then echo "slurm-test: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
fail() {
  echo "slurm-test: FAILED: $*" >&2
  for log in "$tmp"/*.log; do echo "--- $log" >&2; tail -n 20 "$log" >&2; done
  exit 1
}

# munge: a fresh key and a private socket.
mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool"
chmod 700 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
munged --force --key-file="$tmp/munge/munge.key" --socket="$tmp/munge/munge.socket" \
  --pid-file="$tmp/munged.pid" --log-file="$tmp/munged.log" --seed-file="$tmp/munge/munged.seed"

host=$(hostname -s)
port=$(( 20000 + RANDOM % 20000 ))
cat >"$tmp/slurm.conf" <<CONF
ClusterName=smartmixed-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$(( port + 1 ))
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$tmp/slurm.conf
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
for _ in $(seq 60); do
  sinfo -h -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)' && break
  sleep 1
done
sinfo -h -o '%t' | grep -Eq '^(idle|mix|alloc)' || fail "the node did not come up: $(sinfo 2>&1)"
echo "slurm-test: one-node cluster up ($(sinfo -h -o '%P %D %c %t'))"

config=$tmp/tiny.toml
cat >"$config" <<'TOML'
name = "slurm-tiny"
dataset = "mnist"
architectures = [[24], [24, 12]]
methods = ["relu", "smartmixed"]
seeds = [1, 2]
device = "cpu"

[overrides]
epochs = 2
phase1_epochs = 1
batch_size = 64
TOML
export DATA_DIR=$root/crates/experiments/tests/data/mnist-mini SMARTMIXED_BIN=$bin SLURM_CPUS=1

wait_for() { # job ids...
  local ids; ids=$(IFS=,; echo "$*")
  for _ in $(seq 300); do
    [[ -z $(squeue -h -j "$ids" 2>/dev/null) ]] && return 0
    sleep 1
  done
  fail "jobs $ids still queued or running after 300 s: $(squeue)"
}
metrics() { # key, method, seed, test_acc, val_loss, best_epoch, status of results.csv, sorted
  python3 - "$1" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1] + "/results.csv")))
keys = [r["key"] for r in rows]
assert len(keys) == len(set(keys)), "duplicate rows"
for r in sorted(rows, key=lambda r: r["key"]):
    print(r["key"], r["method"], r["seed"], r["test_acc"], r["val_loss"], r["best_epoch"], r["status"])
PY
}

# 1. The whole grid as an array of 4 tasks, against a local run.
"$bin" sweep --config "$config" --out "$tmp/local" --data-dir "$DATA_DIR" --quiet
submit=$("$root/scripts/slurm-sweep.sh" "$config" "$tmp/array" 4)
echo "$submit"
ids=$(sed -n 's/^submitted: .* job array \([0-9]*\) .*report job \([0-9]*\)$/\1 \2/p' <<<"$submit")
[[ -n $ids ]] || fail "could not read the job ids"
# shellcheck disable=SC2086
wait_for $ids
[[ -f $tmp/array/comparison.md && -f $tmp/array/figures/accuracy_vs_depth.png ]] || fail "the report job wrote no comparison"
diff <(metrics "$tmp/local") <(metrics "$tmp/array") || fail "array results differ from the local run"
echo "slurm-test: array of 4 tasks = local run ($(metrics "$tmp/array" | wc -l) rows, same metrics)"

# 2. Cancel one task on purpose; resubmitting finishes the grid. The array is submitted held so
#    that the cancellation cannot come after the task has already finished.
submit=$(SLURM_EXTRA=--hold "$root/scripts/slurm-sweep.sh" "$config" "$tmp/retry" 4)
array=$(sed -n 's/^submitted: .* job array \([0-9]*\) .*report job \([0-9]*\)$/\1/p' <<<"$submit")
report=$(sed -n 's/^submitted: .*report job \([0-9]*\)$/\1/p' <<<"$submit")
scancel "${array}_3"
scontrol release "$array"
wait_for "$array" "$report"
partial=$(metrics "$tmp/retry" | wc -l)
(( partial < 8 )) || fail "the cancelled task's runs were recorded anyway"
echo "slurm-test: task 3 cancelled: $partial of 8 runs recorded; resubmitting"
submit=$("$root/scripts/slurm-sweep.sh" "$config" "$tmp/retry" 4)
# shellcheck disable=SC2086
wait_for $(sed -n 's/^submitted: .* job array \([0-9]*\) .*report job \([0-9]*\)$/\1 \2/p' <<<"$submit")
diff <(metrics "$tmp/local") <(metrics "$tmp/retry") || fail "resubmitted results differ from the local run"
echo "slurm-test: resubmission finished the grid (8 rows, same metrics as the local run)"
echo "slurm-test: 2 passed, 0 failed"

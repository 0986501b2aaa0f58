#!/usr/bin/env bash
# docs/img/tensorboard-hparams.png: TensorBoard's HParams table of a committed sweep, taken with
# headless Chromium against a real `tensorboard` server (the package of scripts/tensorboard-env.sh).
#   scripts/tensorboard-screenshot.sh [SET] [OUT.png]   (default: results/adaptive)
# Needs the smartmixed binary (make bin) and chromium (Debian: apt install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
set=${1:-results/adaptive}
out=${2:-docs/img/tensorboard-hparams.png}
bin=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/smartmixed/target}/release/smartmixed}
port=${PORT:-6123}
python=$(scripts/tensorboard-env.sh)
"$bin" tensorboard "$set" >/dev/null
"$(dirname "$python")/tensorboard" --logdir "$set/tensorboard" --host 127.0.0.1 --port "$port" \
  >/tmp/tensorboard-screenshot.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$port/data/plugins_listing" | grep -q '"hparams"' && break
  sleep 1
done
# The server loads runs in the background: wait until it has read every run's session.
sleep "${SETTLE:-20}"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,1000 \
  --virtual-time-budget=30000 --screenshot="$out" "http://127.0.0.1:$port/#hparams" 2>/dev/null
echo "$out"

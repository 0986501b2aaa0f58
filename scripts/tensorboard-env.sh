#!/usr/bin/env bash
# A virtual environment with the `tensorboard` package from PyPI (for looking at runs, for the
# read-back test of `make test` and for the docs' screenshot); prints the path of its python.
# Made once, then reused:
#   scripts/tensorboard-env.sh [DIR]   (default: ~/.cache/smartmixed/tensorboard-env)
set -euo pipefail
dir=${1:-${SMARTMIXED_TENSORBOARD_ENV:-$HOME/.cache/smartmixed/tensorboard-env}}
version=2.21.0
if ! "$dir/bin/python" -c "import tensorboard, sys; sys.exit(tensorboard.__version__ != '$version')" 2>/dev/null; then
  python3 -m venv "$dir" >&2
  "$dir/bin/pip" install --quiet --disable-pip-version-check "tensorboard==$version" >&2
fi
echo "$dir/bin/python"

#!/usr/bin/env bash
# Side-by-side benchmark of gmu against TensorFlow (the seed's TF-1 loop and
# tf.function) and JAX on the seed's toy. Creates bench/.venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/venv.sh
exec "$PY" bench/compare.py "$@"

#!/usr/bin/env bash
# Side-by-side benchmark of gmu against TensorFlow (the seed's TF-1 loop and
# tf.function) and JAX on the seed's toy. Creates bench/.venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q -r bench/requirements.txt
fi
exec bench/.venv/bin/python bench/compare.py "$@"

#!/usr/bin/env bash
# `m.predict` from Python (the gmu package) against the CLI, PyTorch eager and onnxruntime on the
# same model on 10,000, 32 and 1 mfeat rows, at 1 and 2 threads, plus the wheel's size and import time.
# Builds the wheel, installs it into bench/.venv (with onnx and onnxruntime) and runs
# bench/python_predict.py; see its docstring for what is timed.
# Usage: bench/python.sh [--reps N]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/venv.sh
cargo build --release -q
"$PY" -m pip install -q maturin==1.16.0 onnx==1.23.2 onnxruntime==1.32.0
rm -rf target/wheels
"$PY" -m maturin build --release -q -m python/Cargo.toml -o target/wheels
"$PY" -m pip install -q --force-reinstall --no-deps target/wheels/gmu-*.whl
wheel=$(ls target/wheels/gmu-*.whl)
for threads in 1 2; do
  for rows in 10000 32 1; do
    "$PY" bench/python_predict.py --threads $threads --rows $rows --wheel "$wheel" "$@"
  done
done

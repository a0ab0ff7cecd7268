#!/usr/bin/env bash
# Encoding throughput: gmu's MiniLM and EfficientNet-Lite0 (burn) beside PyTorch on the same
# weights, batch 32, on 1 and 2 threads, interleaved. Needs `gmu encoders fetch`.
# Usage: bench/encode.sh [--batches N] [--reps N]. Creates bench/.venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${BENCH_PYTHON:-bench/.venv/bin/python}
if [ ! -x "$PY" ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q -r bench/requirements.txt
fi
cargo bench --bench encode --no-run -q 2>/dev/null || cargo bench --bench encode --no-run
for threads in 1 2; do
  RAYON_NUM_THREADS=$threads cargo bench -q --bench encode -- "$@"
  "$PY" bench/encode_torch.py --threads $threads "$@"
done

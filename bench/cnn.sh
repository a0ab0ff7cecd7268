#!/usr/bin/env bash
# Training speed of the small image CNN every Twemoji method trains: gmu (burn) beside the same
# model in PyTorch, batch 64 of 3x32x32, on 1 and 2 threads, interleaved so machine noise hits
# both alike; each prints samples/s and ms per stage (forward + loss, backward, Adam).
# Usage: bench/cnn.sh [--steps N] [--reps N]. Creates bench/.venv on first use (BENCH_PYTHON overrides; bench/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/venv.sh
cargo bench --bench cnn --no-run -q 2>/dev/null || cargo bench --bench cnn --no-run
for threads in 1 2; do
  RAYON_NUM_THREADS=$threads cargo bench -q --bench cnn -- "$@"
  "$PY" bench/cnn_torch.py --threads $threads "$@"
done

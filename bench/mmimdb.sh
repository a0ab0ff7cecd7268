#!/usr/bin/env bash
# Training throughput at MM-IMDb's shape (4096 + 300 -> 512 -> 23, batch 128), gmu beside PyTorch,
# on 1 and 2 threads, interleaved so machine noise hits both alike: the GMU classifier (burn and
# the dense engine) and the paper's GMU -> maxout-MLP model (burn; PyTorch's --model paper).
# Usage: bench/mmimdb.sh [--steps N] [--reps N]. Creates bench/.venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/venv.sh
cargo bench --bench mmimdb --no-run -q 2>/dev/null || cargo bench --bench mmimdb --no-run
for threads in 1 2; do
  RAYON_NUM_THREADS=$threads cargo bench -q --bench mmimdb -- "$@"
  "$PY" bench/mmimdb_torch.py --threads $threads "$@"
  "$PY" bench/mmimdb_torch.py --threads $threads --model paper "$@"
done

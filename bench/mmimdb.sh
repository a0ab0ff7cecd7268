#!/usr/bin/env bash
# Training throughput at MM-IMDb's shape (4096 + 300 -> 512 -> 23, batch 128), gmu beside PyTorch,
# on 1 and 2 threads, interleaved so machine noise hits both alike: the GMU classifier (burn and
# the dense engine) and the paper's GMU -> maxout-MLP model (burn; PyTorch's --model paper).
# Usage: bench/mmimdb.sh [--steps N] [--reps N]. Creates bench/.venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q -r bench/requirements.txt
fi
cargo bench --bench mmimdb --no-run -q 2>/dev/null || cargo bench --bench mmimdb --no-run
for threads in 1 2; do
  RAYON_NUM_THREADS=$threads cargo bench -q --bench mmimdb -- "$@"
  bench/.venv/bin/python bench/mmimdb_torch.py --threads $threads "$@"
  bench/.venv/bin/python bench/mmimdb_torch.py --threads $threads --model paper "$@"
done

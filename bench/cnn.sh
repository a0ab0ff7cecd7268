#!/usr/bin/env bash
# Training speed of the small image CNN every Twemoji method trains, with a linear classifier to 9
# classes, batch 64 of 3x32x32: gmu's cnn engine (what `auto` picks on the CPU), gmu on burn's
# autodiff (--engine burn) and the same model in PyTorch, on 1 and 2 threads. The three alternate
# round by round so the shared machine's noise hits them alike; each prints samples/s and ms per
# stage (forward + loss, backward, Adam), and the summary gives each side's median over the rounds
# and the median of the per-round ratios to PyTorch.
# Usage: bench/cnn.sh [--rounds N] [--steps N]. Creates bench/.venv on first use (BENCH_PYTHON overrides; bench/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/venv.sh
rounds=3
steps=30
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo bench --bench cnn --no-run -q 2>/dev/null || cargo bench --bench cnn --no-run
out=$(mktemp)
for threads in 1 2; do
  for ((r = 0; r < rounds; r++)); do
    for engine in cnn burn; do
      RAYON_NUM_THREADS=$threads cargo bench -q --bench cnn -- --engine $engine --steps "$steps" --reps 1 | tee -a "$out"
    done
    "$PY" bench/cnn_torch.py --threads $threads --steps "$steps" --reps 1 | tee -a "$out"
  done
done
"$PY" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("\n| implementation | threads | samples/s (median) | forward + loss ms | backward ms | Adam ms | ratio to PyTorch (median of rounds) |")
print("|---|---|---|---|---|---|---|")
for t in ("1", "2"):
    torch = [r for r in rows if r["impl"] == "cnn-pytorch" and r["threads"] == t]
    for name in ("gmu-cnn-cnn", "gmu-cnn-burn", "cnn-pytorch"):
        mine = [r for r in rows if r["impl"] == name and r["threads"] == t]
        if not mine:
            continue
        med = lambda key: statistics.median(r["ms_per_step"][key] for r in mine)
        ratio = statistics.median(a["samples_per_s"] / b["samples_per_s"] for a, b in zip(mine, torch))
        print(f"| {name} | {t} | {statistics.median(r['samples_per_s'] for r in mine):.0f} | {med('forward_and_loss'):.1f} | {med('backward'):.1f} | {med('adam'):.1f} | {ratio:.2f}x |")
PY
rm -f "$out"

#!/usr/bin/env bash
# Training throughput at MM-IMDb's shape (x_v 4096 + x_t 300, hidden 512, 23 labels, batch 128),
# gmu beside PyTorch on the same models, on 1 and 2 threads: the plain GMU classifier (gmu's dense
# engine) and the paper's Table 2 models with the maxout MLP (gmu's maxout engine, PyTorch's
# --model paper --fusion ...): gmu, concat, linear-sum, visual, text. The two alternate round by
# round (gmu, PyTorch, gmu, ...) so the shared machine's noise hits both alike; the summary gives
# each side's median over the rounds and the median of the per-round ratios.
# Usage: bench/mmimdb.sh [--rounds N] [--steps N] [--burn] [--avx2] (--burn adds burn's autodiff on
# the GMU models, for the before/after; --avx2 adds gmu at GMU_CPU=avx2 in every round, the column an
# AVX2-only CPU would see). Creates bench/.venv on first use (BENCH_PYTHON overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/venv.sh
rounds=3
steps=20
burn=0
avx2=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --burn) burn=1; shift ;;
    --avx2) avx2=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo bench --bench mmimdb --no-run -q 2>/dev/null || cargo bench --bench mmimdb --no-run
out=$(mktemp)
for threads in 1 2; do
  for ((r = 0; r < rounds; r++)); do
    for only in dense maxout; do
      RAYON_NUM_THREADS=$threads cargo bench -q --bench mmimdb -- --only $only --steps "$steps" --reps 1 | tee -a "$out"
      if [ $avx2 = 1 ]; then
        GMU_CPU=avx2 RAYON_NUM_THREADS=$threads cargo bench -q --bench mmimdb -- --only $only --steps "$steps" --reps 1 |
          sed 's/^{"impl": "\([^"]*\)"/{"impl": "\1@avx2"/' | tee -a "$out"
      fi
    done
    if [ $burn = 1 ]; then
      for only in gmu fusion; do
        RAYON_NUM_THREADS=$threads cargo bench -q --bench mmimdb -- --only $only --steps "$steps" --reps 1 | tee -a "$out"
      done
    fi
    "$PY" bench/mmimdb_torch.py --threads $threads --steps "$steps" --reps 1 | tee -a "$out"
    "$PY" bench/mmimdb_torch.py --threads $threads --steps "$steps" --reps 1 --model paper --fusion gmu concat linear-sum visual text | tee -a "$out"
  done
done
"$PY" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
pairs = [("GMU -> linear", "gmu-dense", "gmu-pytorch")]
pairs += [(f"{m} -> maxout MLP", f"{m}-maxout-mlp-engine", f"{m}-maxout-mlp-pytorch") for m in ["gmu", "concat", "linear-sum", "visual", "text"]]
pairs += [("GMU -> linear (burn)", "gmu-burn", "gmu-pytorch"), ("gmu -> maxout MLP (burn)", "gmu-maxout-mlp-burn", "gmu-maxout-mlp-pytorch")]
avx2 = any(r["impl"].endswith("@avx2") for r in rows)
extra = " gmu at GMU_CPU=avx2 | ratio at avx2 |" if avx2 else ""
print(f"\n| model | threads | gmu samples/s (median) | PyTorch samples/s (median) | ratio (median of rounds) |{extra}")
print("|---|---|---|---|---|" + ("---|---|" if avx2 else ""))
for label, ours, theirs in pairs:
    for t in ("1", "2"):
        g = [r["samples_per_s"] for r in rows if r["impl"] == ours and r["threads"] == t]
        p = [r["samples_per_s"] for r in rows if r["impl"] == theirs and r["threads"] == t]
        a = [r["samples_per_s"] for r in rows if r["impl"] == ours + "@avx2" and r["threads"] == t]
        if g and p:
            ratio = statistics.median(x / y for x, y in zip(g, p))
            line = f"| {label} | {t} | {statistics.median(g):.0f} | {statistics.median(p):.0f} | {ratio:.2f}x |"
            if avx2:
                line += f" {statistics.median(a):.0f} | {statistics.median(x / y for x, y in zip(a, p)):.2f}x |" if a else " | |"
            print(line)
PY
rm -f "$out"

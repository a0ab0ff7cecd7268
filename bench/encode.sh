#!/usr/bin/env bash
# Encoding throughput: gmu's MiniLM and EfficientNet-Lite0 beside PyTorch on the same weights,
# batch 32, on 1 and 2 threads. The two alternate round by round (gmu, PyTorch, gmu, ...) so the
# shared machine's noise hits both alike; the summary gives each side's median over the rounds
# and the median of the per-round ratios. Needs `gmu encoders fetch`.
# Usage: bench/encode.sh [--rounds N] [--batches N] [--only minilm|effnet-lite0] [--bf16].
# --bf16 adds, each round, gmu under GMU_ENCODER_PRECISION=bf16 (AMX or AVX512-BF16) and PyTorch under
# torch.autocast(bfloat16) (oneDNN's bf16 kernels: AMX or AVX512-BF16), so both precisions are compared in one sitting.
# Each round also measures the cores' f32 fused-multiply-add peak (`--only peak`) and the summary
# states MiniLM's f32 arithmetic rate on both sides as a share of it: the ceiling a faster f32
# encoder would meet. Creates bench/.venv on first use (BENCH_PYTHON overrides; bench/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/venv.sh
rounds=5
bf16=0
peak=1
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --bf16) bf16=1; shift ;;
    --only) args+=("$1" "$2"); [ "$2" = minilm ] || peak=0; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
cargo bench --bench encode --no-run -q 2>/dev/null || cargo bench --bench encode --no-run
out=$(mktemp)
for threads in 1 2; do
  for ((r = 0; r < rounds; r++)); do
    RAYON_NUM_THREADS=$threads cargo bench -q --bench encode -- --reps 1 "${args[@]}" | tee -a "$out"
    "$PY" bench/encode_torch.py --threads $threads --reps 1 "${args[@]}" | tee -a "$out"
    if [ $bf16 = 1 ]; then
      GMU_ENCODER_PRECISION=bf16 RAYON_NUM_THREADS=$threads cargo bench -q --bench encode -- --reps 1 "${args[@]}" | tee -a "$out"
      "$PY" bench/encode_torch.py --threads $threads --reps 1 --bf16 "${args[@]}" | tee -a "$out"
    fi
    if [ $peak = 1 ]; then
      RAYON_NUM_THREADS=$threads cargo bench -q --bench encode -- --only peak --reps 3 | tee -a "$out"
    fi
  done
done
"$PY" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("\n| encoder | threads | gmu | PyTorch | gmu (median) | PyTorch (median) | ratio (median of rounds) |")
print("|---|---|---|---|---|---|---|")
pairs = [("gmu", "pytorch"), ("gmu-bf16", "pytorch-bf16"), ("gmu-bf16", "pytorch")]
for enc in dict.fromkeys(r["encoder"] for r in rows if "encoder" in r):
    for t in (1, 2):
        for gi, pi in pairs:
            g = [r["items_per_s"] for r in rows if r.get("encoder") == enc and r["threads"] == t and r["impl"] == gi]
            p = [r["items_per_s"] for r in rows if r.get("encoder") == enc and r["threads"] == t and r["impl"] == pi]
            if g and p:
                ratio = statistics.median(a / b for a, b in zip(g, p))
                print(f"| {enc} | {t} | {gi} | {pi} | {statistics.median(g):.2f} | {statistics.median(p):.2f} | {ratio:.2f}x |")
# MiniLM in f32 against the cores' FMA peak: both sides do the same multiply-adds per 256-token text.
per_item = [r["gflop_per_s"] / r["items_per_s"] for r in rows if r.get("encoder") == "minilm" and r["impl"] == "gmu"]
if per_item and any(r["impl"] == "fma-peak" for r in rows):
    flop = statistics.median(per_item)
    print(f"\nMiniLM f32, {flop:.2f} GFLOP per 256-token text, against the cores' f32 FMA peak (GFLOP/s, medians):\n")
    print("| threads | FMA peak | gmu | share of peak | PyTorch | share of peak | 1.3x PyTorch would need |")
    print("|---|---|---|---|---|---|---|")
    for t in (1, 2):
        peak = [r["gflop_per_s"] for r in rows if r["impl"] == "fma-peak" and r["threads"] == t]
        g = [r["items_per_s"] * flop for r in rows if r.get("encoder") == "minilm" and r["threads"] == t and r["impl"] == "gmu"]
        p = [r["items_per_s"] * flop for r in rows if r.get("encoder") == "minilm" and r["threads"] == t and r["impl"] == "pytorch"]
        if peak and g and p:
            pk, gm, pm = (statistics.median(v) for v in (peak, g, p))
            print(f"| {t} | {pk:.0f} | {gm:.0f} | {gm / pk:.0%} | {pm:.0f} | {pm / pk:.0%} | {1.3 * pm / pk:.0%} of peak |")
PY
rm -f "$out"

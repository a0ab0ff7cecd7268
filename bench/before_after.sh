#!/usr/bin/env bash
# Nothing gets slower: gmu's own benchmarks, two builds side by side in one sitting, alternating
# round by round (before, after, after, before, ...) so the shared machine's noise hits both alike.
# BEFORE is a folder holding the `gmu` binary and the bench binaries `toy`, `mmimdb`, `cnn` and
# `encode` of the older build (copied from target/release/ and target/release/deps/); the newer
# build is this checkout's. Prints each benchmark's median per side and the median of the
# per-round ratios (after / before; above 1 is faster after, for times it is before / after).
# Usage: bench/before_after.sh BEFORE [--rounds 5]   (about 10 minutes on 2 cores; the encoders
# need `gmu encoders fetch`)
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(realpath "$1")
shift
rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release -q
cargo bench --no-run -q 2>/dev/null || cargo bench --no-run
after=$(mktemp -d)
trap 'rm -rf "$after"' EXIT
cp target/release/gmu "$after/"
for b in toy mmimdb cnn encode; do
  cp "$(ls -t target/release/deps/$b-* | grep -v '\.d$' | head -1)" "$after/$b"
done
out=$(mktemp)
run_side() {
  local side=$1 dir=$2 threads=$3
  tag() { sed -e "s/^{/{\"side\": \"$side\", \"threads_set\": \"$threads\", /"; }
  RAYON_NUM_THREADS=$threads "$dir/toy" --reps 20 | grep '^{' | grep median_ms | tag >>"$out"
  for only in dense maxout; do
    RAYON_NUM_THREADS=$threads "$dir/mmimdb" --only $only --steps 20 --reps 3 | grep '^{' | grep samples_per_s | tag >>"$out"
  done
  RAYON_NUM_THREADS=$threads "$dir/cnn" --engine cnn --steps 30 --reps 3 | grep '^{' | tag >>"$out"
  RAYON_NUM_THREADS=$threads "$dir/encode" --batches 1 --reps 3 | grep '^{' | tag >>"$out" || true
  local start end
  start=$(date +%s.%N)
  RAYON_NUM_THREADS=$threads "$dir/gmu" protocol --seeds 200 --out "$after/protocol-$side.json" >/dev/null 2>&1
  end=$(date +%s.%N)
  echo "{\"side\": \"$side\", \"threads_set\": \"$threads\", \"impl\": \"gmu protocol --seeds 200\", \"wall_ms\": $(python3 -c "print(($end - $start) * 1000)")}" >>"$out"
}
for ((r = 0; r < rounds; r++)); do
  for threads in 1 2; do
    if ((r % 2 == 0)); then
      run_side before "$before" $threads
      run_side after "$after" $threads
    else
      run_side after "$after" $threads
      run_side before "$before" $threads
    fi
  done
  echo "round $((r + 1)) of $rounds done" >&2
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def key(r):
    name = r["impl"] + (f" {r['encoder']}" if "encoder" in r else "")
    return name, r["threads_set"]
metrics = {"median_ms": False, "wall_ms": False, "samples_per_s": True, "items_per_s": True}
print("| benchmark | threads | before | after | after vs before (median of rounds) |")
print("|---|---|---|---|---|")
for k in sorted({key(r) for r in rows}):
    group = [r for r in rows if key(r) == k]
    metric = next(m for m in metrics if m in group[0])
    higher_better = metrics[metric]
    b = [r[metric] for r in group if r["side"] == "before"]
    a = [r[metric] for r in group if r["side"] == "after"]
    if not a or not b:
        continue
    ratios = [(x / y if higher_better else y / x) for x, y in zip(a, b)]
    unit = {"median_ms": "ms", "wall_ms": "ms", "samples_per_s": "samples/s", "items_per_s": "items/s"}[metric]
    print(f"| {k[0]} | {k[1]} | {statistics.median(b):.1f} {unit} | {statistics.median(a):.1f} {unit} | {statistics.median(ratios):.3f}x |")
PY
rm -f "$out"

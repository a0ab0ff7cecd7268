#!/usr/bin/env bash
# `gmu mmimdb` end to end against its own training steps and PyTorch's (issue 21, item 3), on a file
# of MM-IMDb's published shapes (tests/fixtures/make_mmimdb_h5.py --full: 25,959 rows, 300 + 4096
# features, train 15,552 / dev 2,608 / test 7,799). An epoch's time is the difference of a 4-epoch
# and a 1-epoch run of the whole command, divided by 3: the training steps, the batching and
# shuffling, the dev pass, the checkpoint and the log of one epoch, nothing that runs once (reading
# the file, scoring and explaining the test split). Beside it, in the same round: the training-step
# rate of the same model (benches/mmimdb.rs, the paper's GMU -> maxout MLP on the maxout engine) and
# PyTorch's training-only rate (bench/mmimdb_torch.py --model paper --fusion gmu), batch 128. And
# the same ratio inside one run, from the lines `gmu mmimdb` logs for each epoch of the 4-epoch run
# (its steps' rate against its whole epoch's, epochs 2-4): no second process, no other minute.
# Usage: bench/mmimdb_epoch.sh [--rounds N] [--file PATH] (the file is written on first use; about
# 460 MB). Creates bench/.venv on first use (BENCH_PYTHON overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/venv.sh
rounds=3
file=${TMPDIR:-/tmp}/mmimdb_full.hdf5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --file) file=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f "$file" ] || "$PY" tests/fixtures/make_mmimdb_h5.py --full "$file"
cargo build --release -q
cargo bench --bench mmimdb --no-run -q 2>/dev/null || cargo bench --bench mmimdb --no-run
out=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$out" "$work"' EXIT
run_epochs() { # threads epochs -> seconds of the whole command
  rm -rf "$work/run"
  local start end
  start=$(date +%s.%N)
  RAYON_NUM_THREADS=$1 target/release/gmu mmimdb --data "$file" --fusion gmu --no-single --epochs "$2" \
    --patience 10 --out "$work/run" > "$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
for threads in 1 2; do
  for ((r = 0; r < rounds; r++)); do
    one=$(run_epochs "$threads" 1)
    four=$(run_epochs "$threads" 4)
    echo "{\"impl\": \"gmu-mmimdb\", \"threads\": \"$threads\", \"one_epoch_s\": $one, \"four_epochs_s\": $four}" | tee -a "$out"
    "$PY" - "$work/log" "$threads" <<'PY' | tee -a "$out"
import json, re, sys
line = re.compile(r"epoch +(\d+) .* ([\d.]+) s \(\d+ samples/s\): steps ([\d.]+) s \(\d+ samples/s\), dev pass ([\d.]+) s")
epochs = [m.groups() for m in map(line.search, open(sys.argv[1])) if m]
epochs = [[float(x) for x in e[1:]] for e in epochs if int(e[0]) > 1]
print(json.dumps({"impl": "gmu-mmimdb-in-run", "threads": sys.argv[2], "epochs": epochs}))
PY
    RAYON_NUM_THREADS=$threads cargo bench -q --bench mmimdb -- --only maxout --steps 20 --reps 1 | grep '"gmu-maxout' | tee -a "$out"
    "$PY" bench/mmimdb_torch.py --threads "$threads" --steps 20 --reps 1 --model paper --fusion gmu | tee -a "$out"
  done
done
"$PY" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
train = 15552
print("\n| threads | gmu mmimdb: one epoch (s) | epoch rate (samples/s) | training steps (samples/s) | epoch / steps | PyTorch steps (samples/s) | epoch rate / PyTorch | 4 epochs whole run (s) | in the run: epoch / steps, dev pass share |")
print("|---|---|---|---|---|---|---|---|---|")
for t in ("1", "2"):
    runs = [r for r in rows if r["impl"] == "gmu-mmimdb" and r["threads"] == t]
    steps = [r["samples_per_s"] for r in rows if r["impl"] == "gmu-maxout-mlp-engine" and r["threads"] == t]
    torch = [r["samples_per_s"] for r in rows if r["impl"] == "gmu-maxout-mlp-pytorch" and r["threads"] == t]
    epoch = [(r["four_epochs_s"] - r["one_epoch_s"]) / 3 for r in runs]
    # Inside the run: each epoch's steps / whole epoch (seconds), and its dev pass's share of it.
    inner = [e for r in rows if r["impl"] == "gmu-mmimdb-in-run" and r["threads"] == t for e in r["epochs"]]
    in_run = (f"{statistics.median(steps_s / s for s, steps_s, _ in inner):.2f}, "
              f"{statistics.median(d / s for s, _, d in inner):.1%}") if inner else "-"

    rate = [train / e for e in epoch]
    print(f"| {t} | {statistics.median(epoch):.2f} | {statistics.median(rate):.0f} | {statistics.median(steps):.0f} | "
          f"{statistics.median(a / b for a, b in zip(rate, steps)):.2f} | {statistics.median(torch):.0f} | "
          f"{statistics.median(a / b for a, b in zip(rate, torch)):.2f}x | {statistics.median(r['four_epochs_s'] for r in runs):.1f} | {in_run} |")
PY

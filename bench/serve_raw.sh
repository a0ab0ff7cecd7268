#!/usr/bin/env bash
# `gmu serve` on a plot+poster model against the Python stack people would deploy for it: FastAPI +
# uvicorn, transformers' MiniLM, timm's EfficientNet-Lite0 and the fusion model in PyTorch
# (bench/serve_fastapi_raw.py), side by side in one sitting, driven by bench/loadgen.rs.
#
# The model: a GMU trained by `gmu mmimdb --archive` on a small archive of MM-IMDb's layout written
# here (60 movies; plots of ~150 words; 182x268 JPEG posters, MM-IMDb's usual size). Each request
# carries ROWS (1, then 8) plots as BYTES strings and posters as base64 JPEG bytes in JSON, and asks
# for the outputs both servers compute (probabilities and the two gates). Both servers get the
# machine's two cores: gmu one process (--threads 2), FastAPI two uvicorn processes on one port, one
# PyTorch thread each. The answers are compared first (largest probability difference), the peak
# resident memory of each is printed last. Needs the encoders (`gmu encoders fetch`).
# With --bf16, both also run their encoders in bf16 (gmu: GMU_ENCODER_PRECISION=bf16 on AMX or AVX512-BF16;
# FastAPI: torch.autocast bfloat16, oneDNN's bf16 kernels) as a second pair of servers, same cells.
# With --before GMU (an older build's binary), a third server `gmu-before` runs it on the same model,
# for a before/after in one sitting. With --rounds N, every cell runs N times, the servers taking
# turns round by round, and a summary gives each server's median and the medians of its per-round
# ratios to FastAPI (and of gmu to gmu-before): the host's noise then hits every side alike.
# Usage: bench/serve_raw.sh [SECONDS] [--bf16] [--before GMU] [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=10
BF16=0
BEFORE=
ROUNDS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bf16) BF16=1; shift ;;
    --before) BEFORE=$(realpath "$2"); shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    [0-9]*) SECONDS_EACH=$1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
source bench/venv.sh
source bench/serve_lib.sh
"$PY" -m pip install -q fastapi==0.128.0 uvicorn==0.40.0 onnx==1.23.2 transformers==5.24.0 timm==1.0.31
cargo build --release -q
cargo build --release -q --example loadgen
GMU=target/release/gmu
LOAD=target/release/examples/loadgen
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "serve_fastapi_raw.py $work" || true; rm -rf "$work"' EXIT
"$PY" - "$work" <<'PY'
import base64, json, os, sys, numpy as np
from PIL import Image
work = sys.argv[1]; data = os.path.join(work, "mmimdb", "dataset"); os.makedirs(data)
rng = np.random.default_rng(0)
genres = [("Horror", ["ghost", "haunted", "scream", "blood"], (40, 10, 10)),
          ("Comedy", ["funny", "wedding", "prank", "laugh"], (240, 200, 60)),
          ("Sci-Fi", ["space", "robot", "planet", "alien"], (20, 60, 200))]
filler = "the a town family night finds old house friends city young man woman must find their way home".split()
ids = []
for i in range(60):
    genre, words, colour = genres[i % 3]
    plot = " ".join(words[k % 4] if k % 5 == 0 else filler[rng.integers(len(filler))] for k in range(150)) + "."
    mid = f"{100 + i:07d}"
    json.dump({"title": f"Movie {i}", "genres": [genre] + (["Drama"] if i % 4 == 0 else []), "plot": [plot],
               "imdb_id": mid}, open(os.path.join(data, mid + ".json"), "w"))
    img = np.clip(np.array(colour)[None, None, :] + rng.normal(0, 25, (268, 182, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(os.path.join(data, mid + ".jpeg"), quality=90)
    ids.append(mid)
json.dump({"train": ids[:36], "dev": ids[36:48], "test": ids[48:]}, open(os.path.join(work, "mmimdb", "split.json"), "w"))
for rows in (1, 8):
    picked = ids[48:48 + rows]
    texts = [json.load(open(os.path.join(data, m + ".json")))["plot"][0] for m in picked]
    images = [base64.b64encode(open(os.path.join(data, m + ".jpeg"), "rb").read()).decode() for m in picked]
    body = {"inputs": [{"name": "text", "shape": [rows], "datatype": "BYTES", "data": texts},
                       {"name": "visual", "shape": [rows], "datatype": "BYTES", "data": images}],
            "outputs": [{"name": "probabilities"}, {"name": "gate_text"}, {"name": "gate_visual"}]}
    open(os.path.join(work, f"rows{rows}.json"), "w").write(json.dumps(body))
PY
"$GMU" mmimdb --archive "$work/mmimdb" --fusion gmu --no-single --epochs 8 --hidden 32 --batch-size 8 --lr 0.01 \
  --seed 1 --out "$work/run" >/dev/null 2>&1
"$GMU" export --model "$work/run/gmu" --out "$work/raw.onnx" >/dev/null

"$GMU" serve --model "$work/run/gmu" --name genres --addr 127.0.0.1:8191 --threads 2 >/dev/null 2>&1 &
PYTHONPATH=bench "$PY" bench/serve_fastapi_raw.py "$work/raw.onnx" genres 8192 --workers 2 &
wait_up 127.0.0.1:8191
wait_up 127.0.0.1:8192
servers="gmu:8191 fastapi:8192"
if [ -n "$BEFORE" ]; then
  "$BEFORE" serve --model "$work/run/gmu" --name genres --addr 127.0.0.1:8195 --threads 2 >/dev/null 2>&1 &
  wait_up 127.0.0.1:8195
  servers="$servers gmu-before:8195"
fi
if [ $BF16 = 1 ]; then
  GMU_ENCODER_PRECISION=bf16 "$GMU" serve --model "$work/run/gmu" --name genres --addr 127.0.0.1:8193 --threads 2 >/dev/null 2>&1 &
  PYTHONPATH=bench "$PY" bench/serve_fastapi_raw.py "$work/raw.onnx" genres 8194 --workers 2 --bf16 &
  wait_up 127.0.0.1:8193
  wait_up 127.0.0.1:8194
  servers="$servers gmu-bf16:8193 fastapi-bf16:8194"
fi
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for rows in 1 8; do
  for s in $servers; do
    curl -sf -H 'content-type: application/json' --data-binary @"$work/rows$rows.json" \
      http://127.0.0.1:${s#*:}/v2/models/genres/infer >"$work/${s%%:*}$rows.out"
  done
  # every answer against gmu's default (f32) one
  "$PY" - "$work" "$rows" $servers <<'PY'
import json, sys, numpy as np
work, rows, names = sys.argv[1], sys.argv[2], [s.split(":")[0] for s in sys.argv[3:]]
get = lambda n: np.asarray(next(o for o in json.load(open(f"{work}/{n}{rows}.out"))["outputs"]
                                if o["name"] == "probabilities")["data"], dtype=np.float64)
for n in names[1:]:
    print(f"rows={rows}: largest |p_{n} - p_gmu| = {np.abs(get(n) - get('gmu')).max():.2e}")
PY
done
for s in $servers; do
  echo "ceiling ${s%%:*} GET /v2/health/live c=8: $("$LOAD" 127.0.0.1:${s#*:} GET /v2/health/live - 8 "$SECONDS_EACH")"
done
for rows in 1 8; do
  for c in 1 8; do
    for ((round = 1; round <= ROUNDS; round++)); do
      for s in $servers; do
        echo "${s%%:*} rows=$rows $("$LOAD" 127.0.0.1:${s#*:} POST /v2/models/genres/infer "$work/rows$rows.json" $c "$SECONDS_EACH")"
      done
    done
  done
done | tee "$work/cells"
if [ "$ROUNDS" -gt 1 ]; then
  "$PY" - "$work/cells" <<'PY'
import collections, json, statistics, sys
cells = collections.defaultdict(list)  # (rows, concurrency) -> [(round's server -> req/s)]
for line in open(sys.argv[1]):
    name, rows, result = line.split(" ", 2)
    r = json.loads(result)
    rounds = cells[(rows, r["concurrency"])]
    if not rounds or name in rounds[-1]:
        rounds.append({})
    rounds[-1][name] = r["requests_per_s"]
names = list(cells[next(iter(cells))][0])
print(f"\nmedians of {len(next(iter(cells.values())))} rounds, requests/s (and the median of the per-round ratios):")
for (rows, c), rounds in cells.items():
    parts = [f"{n} {statistics.median(r[n] for r in rounds):.1f}" for n in names]
    ratios = [f"{n}/fastapi {statistics.median(r[n] / r['fastapi'] for r in rounds):.2f}x"
              for n in names if n.startswith("gmu") and "fastapi" in names and not n.endswith("bf16")]
    if "gmu-before" in names:
        ratios.append(f"gmu/gmu-before {statistics.median(r['gmu'] / r['gmu-before'] for r in rounds):.2f}x")
    print(f"{rows} c={c}: " + ", ".join(parts) + "; " + ", ".join(ratios))
PY
fi
echo "peak RSS kB: gmu $(peak_rss 'addr 127.0.0.1:8191') fastapi (2 processes) $(peak_rss 'genres 8192')"
[ -z "$BEFORE" ] || echo "peak RSS kB, gmu-before: $(peak_rss 'addr 127.0.0.1:8195')"
if [ $BF16 = 1 ]; then
  echo "peak RSS kB, bf16: gmu $(peak_rss 'addr 127.0.0.1:8193') fastapi (2 processes) $(peak_rss 'genres 8194')"
fi

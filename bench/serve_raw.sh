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
# Usage: bench/serve_raw.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-10}
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
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for rows in 1 8; do
  curl -sf -H 'content-type: application/json' --data-binary @"$work/rows$rows.json" http://127.0.0.1:8191/v2/models/genres/infer >"$work/gmu$rows.out"
  curl -sf -H 'content-type: application/json' --data-binary @"$work/rows$rows.json" http://127.0.0.1:8192/v2/models/genres/infer >"$work/py$rows.out"
  "$PY" - "$work/gmu$rows.out" "$work/py$rows.out" "$rows" <<'PY'
import json, sys, numpy as np
a, b = (json.load(open(p)) for p in sys.argv[1:3])
get = lambda r, n: np.asarray(next(o for o in r["outputs"] if o["name"] == n)["data"], dtype=np.float64)
print(f"rows={sys.argv[3]}: largest |p_gmu - p_python| = {np.abs(get(a, 'probabilities') - get(b, 'probabilities')).max():.2e}")
PY
done
for port in 8191 8192; do
  echo "ceiling $port GET /v2/health/live c=8: $("$LOAD" 127.0.0.1:$port GET /v2/health/live - 8 "$SECONDS_EACH")"
done
for rows in 1 8; do
  for c in 1 8; do
    echo "gmu rows=$rows $("$LOAD" 127.0.0.1:8191 POST /v2/models/genres/infer "$work/rows$rows.json" $c "$SECONDS_EACH")"
    echo "fastapi rows=$rows $("$LOAD" 127.0.0.1:8192 POST /v2/models/genres/infer "$work/rows$rows.json" $c "$SECONDS_EACH")"
  done
done
echo "peak RSS kB: gmu $(peak_rss 'gmu serve --model') fastapi (2 processes) $(peak_rss 'serve_fastapi_raw.py')"

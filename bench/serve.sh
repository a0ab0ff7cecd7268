#!/usr/bin/env bash
# `gmu serve` against the FastAPI + uvicorn + PyTorch app people deploy today
# (bench/serve_fastapi.py: the same model, exported to ONNX and run in PyTorch eager), side by
# side in one sitting, driven by the same Rust load generator (bench/loadgen.rs), whose ceiling
# against a trivial endpoint of each server is reported first.
#
# Feature-view model: the mfeat fou + zer GMU of tests/fixtures (the issue's shape). Requests of
# 1 and 64 rows, JSON, at concurrency 1, 8 and 32, SECONDS each (default 10). Both servers get the
# machine's two cores: gmu one process (--threads 2), FastAPI two uvicorn processes on one port
# (SO_REUSEPORT, the best two-core deployment measured). Peak resident memory of each is printed.
# Usage: bench/serve.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-10}
source bench/venv.sh
source bench/serve_lib.sh
"$PY" -m pip install -q fastapi==0.128.0 uvicorn==0.40.0 onnx==1.23.2
cargo build --release -q
cargo build --release -q --example loadgen
GMU=target/release/gmu
LOAD=target/release/examples/loadgen
MODEL=tests/fixtures/model_v2/mfeat-gmu
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "serve_fastapi.py $work" || true; rm -rf "$work"' EXIT
"$GMU" export --model "$MODEL" --out "$work/mfeat.onnx" >/dev/null
# Request bodies: 1 and 64 rows of mfeat-like values (the same for both servers).
"$PY" - "$work" <<'PY'
import json, sys, numpy as np
rng = np.random.default_rng(0)
for rows in (1, 64):
    body = {"inputs": [
        {"name": "fou", "shape": [rows, 76], "datatype": "FP32", "data": rng.normal(0.1, 0.05, (rows, 76)).round(6).tolist()},
        {"name": "zer", "shape": [rows, 47], "datatype": "FP32", "data": rng.normal(300, 100, (rows, 47)).round(4).tolist()},
    ]}
    open(f"{sys.argv[1]}/rows{rows}.json", "w").write(json.dumps(body))
    # The outputs the FastAPI app computes (it has no occlusion importance, which costs gmu two
    # more forward passes per view): gmu is timed both ways.
    body["outputs"] = [{"name": "probabilities"}, {"name": "gate_fou"}, {"name": "gate_zer"}]
    open(f"{sys.argv[1]}/rows{rows}_same.json", "w").write(json.dumps(body))
PY

"$GMU" serve --model "$MODEL" --name mfeat --addr 127.0.0.1:8181 --threads 2 >/dev/null 2>&1 &
PYTHONPATH=bench "$PY" bench/serve_fastapi.py "$work/mfeat.onnx" mfeat 8182 --workers 2 &
wait_up 127.0.0.1:8181
wait_up 127.0.0.1:8182
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for port in 8181 8182; do
  echo "ceiling $port GET /v2/health/live c=32: $("$LOAD" 127.0.0.1:$port GET /v2/health/live - 32 "$SECONDS_EACH")"
done
for rows in 1 64; do
  for c in 1 8 32; do
    echo "gmu(all outputs) rows=$rows $("$LOAD" 127.0.0.1:8181 POST /v2/models/mfeat/infer "$work/rows$rows.json" $c "$SECONDS_EACH")"
    echo "gmu(same outputs) rows=$rows $("$LOAD" 127.0.0.1:8181 POST /v2/models/mfeat/infer "$work/rows${rows}_same.json" $c "$SECONDS_EACH")"
    echo "fastapi rows=$rows $("$LOAD" 127.0.0.1:8182 POST /v2/models/mfeat/infer "$work/rows$rows.json" $c "$SECONDS_EACH")"
  done
done
echo "peak RSS kB: gmu $(peak_rss 'gmu serve --model') fastapi (2 processes) $(peak_rss 'serve_fastapi.py')"

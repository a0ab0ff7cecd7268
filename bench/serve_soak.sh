#!/usr/bin/env bash
# The load test of `gmu serve`: MINUTES (default 10) of mixed good and bad requests at
# concurrency 32 against the mfeat GMU of tests/fixtures, from bench/loadgen.rs. Every answer must
# be the one its request calls for (200 for the good ones; 400 for malformed JSON, a wrong
# shape, an unknown view, a partly missing row; 413 for too many rows), the server must still
# answer at the end, and its resident memory is sampled every 5 s (start, peak, end printed).
# Usage: bench/serve_soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
cargo build --release -q
cargo build --release -q --example loadgen
GMU=target/release/gmu
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import json, random, sys
random.seed(0)
w = sys.argv[1]
def rows(n, width, scale):
    return [[round(random.gauss(0, scale), 5) for _ in range(width)] for _ in range(n)]
def body(n):
    return {"inputs": [{"name": "fou", "shape": [n, 76], "datatype": "FP32", "data": rows(n, 76, 0.1)},
                       {"name": "zer", "shape": [n, 47], "datatype": "FP32", "data": rows(n, 47, 100)}]}
files = {"good1": body(1), "good64": body(64)}
bad = body(2); bad["inputs"][0]["shape"] = [2, 75]; files["shape"] = bad
bad = body(1); bad["inputs"][0]["name"] = "kar"; files["unknown"] = bad
bad = body(2); bad["inputs"][1]["data"][1][3] = None; files["partial"] = bad
files["rows"] = body(300)
for name, b in files.items():
    open(f"{w}/{name}.json", "w").write(json.dumps(b))
open(f"{w}/malformed.json", "w").write('{"inputs": [{"name": "fou", "shape": [1, 76], "datatype": "FP32", "data": [1, 2')
PY
"$GMU" serve --model tests/fixtures/model_v2/mfeat-gmu --name mfeat --addr 127.0.0.1:8191 --max-rows 256 >/dev/null 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:8191/v2/health/ready >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' /proc/$server/status; }
start=$(rss); peak=$start
( while sleep 5; do rss; done ) > "$work/rss" &
mix="$work/good1.json:200,$work/good64.json:200,$work/good1.json:200,$work/malformed.json:400,$work/shape.json:400,$work/unknown.json:400,$work/partial.json:400,$work/rows.json:413"
result=$(target/release/examples/loadgen 127.0.0.1:8191 POST /v2/models/mfeat/infer "$mix" 32 "${SOAK_SECONDS:-$((MINUTES * 60))}")
peak=$(sort -n "$work/rss" | tail -1)
end=$(rss)
curl -sf http://127.0.0.1:8191/v2/health/live >/dev/null && alive=yes || alive=no
echo "soak ${SOAK_SECONDS:-$((MINUTES * 60))} s, c=32: $result"
echo "server alive after: $alive; RSS kB start $start, peak ${peak:-$start}, end $end; samples: $(tr '\n' ' ' < "$work/rss")"

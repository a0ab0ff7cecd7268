"""`m.predict` from Python against what a user would run instead, on one model and the same rows.

The model: `gmu multiview`'s default GMU (fou + zer of mfeat, GMU 128 -> maxout MLP -> 10 classes),
trained briefly by the CLI. The rows: mfeat's 2,000 fou and zer rows tiled to 10,000 (float32).
Timed, each the median of --reps runs after one warm-up, at --threads threads:

- gmu (Python, in-process): `m.predict(views, importance=False)` (probabilities, gates, shares),
  and `m.predict(views)` (plus occlusion importance, what `gmu predict` computes);
- gmu CLI: `gmu predict --model M --files fou.npy,zer.npy --out p.csv` (process start, model load,
  importance, the CSV written), the whole command;
- PyTorch eager: the same graph (`gmu export`'s ONNX, its initializers as torch tensors) run op
  by op with torch functions under `torch.inference_mode()`: the model a PyTorch user would have;
- onnxruntime on the same ONNX file.

Also checks that every runtime's probabilities agree (max abs difference printed), and prints
the `gmu` wheel's size and `import gmu`'s time when --wheel names the wheel.

    bench/python.sh      # both thread counts; needs `pip install ./python` into bench/.venv
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--reps", type=int, default=7)
parser.add_argument("--rows", type=int, default=10_000)
parser.add_argument("--gmu", default=str(ROOT / "target" / "release" / "gmu"))
parser.add_argument("--work", default=str(ROOT / "target" / "bench-python"))
parser.add_argument("--wheel")
args = parser.parse_args()

# Thread counts are read when each library starts its pool: set them before the imports.
for var in ["RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]:
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

import gmu  # noqa: E402
from onnx_torch import TorchGraph  # noqa: E402

torch.set_num_threads(args.threads)
work = Path(args.work)
work.mkdir(parents=True, exist_ok=True)
model_dir = work / "runs" / "fou+zer" / "gmu"
if not (model_dir / "config.json").exists():
    subprocess.run([args.gmu, "multiview", "--modalities", "fou,zer", "--fusion", "gmu", "--no-single",
                    "--epochs", "10", "--seed", "0", "--out", work / "runs"], check=True, capture_output=True)
onnx_path = work / "gmu.onnx"
if not onnx_path.exists():
    subprocess.run([args.gmu, "export", "--model", model_dir, "--out", onnx_path], check=True)


def mfeat(view):
    with gzip.open(ROOT / "data" / "mfeat" / f"mfeat-{view}.csv.gz", "rt") as f:
        return np.loadtxt(f, delimiter=",", skiprows=1, dtype=np.float32)[:, :-1]  # the last column is the digit


reps = -(-args.rows // 2000)
views = {v: np.ascontiguousarray(np.tile(mfeat(v), (reps, 1))[: args.rows]) for v in ["fou", "zer"]}
for v, x in views.items():
    np.save(work / f"{v}.npy", x)  # the CLI's input: the same rows


def median_ms(f, n=args.reps if args.rows > 100 else 20 * args.reps):
    f()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


model = gmu.load(model_dir)
results = {}
results["gmu_python"] = median_ms(lambda: model.predict(views, importance=False))
results["gmu_python_importance"] = median_ms(lambda: model.predict(views))
files = f"{work / 'fou.npy'},{work / 'zer.npy'}"
results["gmu_cli_importance"] = median_ms(
    lambda: subprocess.run([args.gmu, "predict", "--model", model_dir, "--files", files, "--out",
                            work / "p.csv"], check=True, capture_output=True), n=max(3, args.reps))

run_torch = TorchGraph(onnx_path)


torch_inputs = {k: torch.from_numpy(v) for k, v in views.items()}


def torch_predict():
    with torch.inference_mode():
        return run_torch(torch_inputs)


results["pytorch_eager"] = median_ms(torch_predict)
options = ort.SessionOptions()
options.intra_op_num_threads = args.threads
options.inter_op_num_threads = 1
session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
results["onnxruntime"] = median_ms(lambda: session.run(None, views))

p_gmu = model.predict(views, importance=False)["probabilities"]
agree = {
    "pytorch_eager": float(np.abs(torch_predict()[0].numpy() - p_gmu).max()),
    "onnxruntime": float(np.abs(session.run(["probabilities"], views)[0] - p_gmu).max()),
}
line = {"threads": args.threads, "rows": args.rows, "median_ms": {k: round(v, 2) for k, v in results.items()},
        "pytorch_over_gmu": round(results["pytorch_eager"] / results["gmu_python"], 2),
        "onnxruntime_over_gmu": round(results["onnxruntime"] / results["gmu_python"], 2),
        "cli_over_python": round(results["gmu_cli_importance"] / results["gmu_python_importance"], 2),
        "max_abs_diff_to_gmu": agree, "torch": torch.__version__, "onnxruntime_version": ort.__version__}
if args.wheel and args.rows == 10_000:
    line["wheel_mb"] = round(Path(args.wheel).stat().st_size / 1e6, 2)
    imports = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import gmu"], capture_output=True, text=True)
        total = [l for l in out.stderr.splitlines() if l.rstrip().endswith("| gmu")]
        imports.append(int(total[-1].split("|")[1]) / 1e3)
    line["import_gmu_ms"] = round(statistics.median(imports), 1)
print(json.dumps(line))

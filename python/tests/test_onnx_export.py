"""`gmu export --format onnx`, checked the way a user would: every model a
training command writes (each fusion method of the paper, two and three
views, single-label and multilabel, and the synthetic experiment's
classifiers) is exported, passes `onnx.checker` (full check, with shape
inference), and onnxruntime's probabilities and gates on the same rows equal
`gmu predict`'s within 1e-5.

Run from the repository root after `cargo build --release`:
    python -m pytest python/tests/test_onnx_export.py
(`GMU_BIN` names another binary.)
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[2]
GMU = os.environ.get("GMU_BIN", str(ROOT / "target" / "release" / "gmu"))
TOLERANCE = 1e-5


def gmu(*args, cwd=None):
    run = subprocess.run([GMU, *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert run.returncode == 0, f"gmu {' '.join(map(str, args))}: {run.stderr}"
    return run.stdout


def write_views(d: Path, n=180, seed=3):
    """Three views (4, 3 and 2 columns) with the class planted in each,
    single-label classes and multilabel label sets."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    views = {}
    for name, width, strength in [("a", 4, 2.0), ("b", 3, 1.0), ("c", 2, 0.5)]:
        x = rng.normal(size=(n, width)) * 1.5 + 4.0
        x[np.arange(n), y % width] += strength
        views[name] = x
        np.savetxt(d / f"{name}.csv", x, delimiter=",", header=",".join(f"{name}{j}" for j in range(width)),
                   comments="", fmt="%.6f")
    (d / "y.csv").write_text("label\n" + "".join(f"k{v}\n" for v in y))
    extra = (views["b"][:, 0] > 4.0).astype(int)
    multi = ["|".join([f"k{v}"] + (["wide"] if e else [])) for v, e in zip(y, extra)]
    (d / "multi.csv").write_text("labels\n" + "".join(f"{m}\n" for m in multi))
    return views


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every kind of model: (model directory, the views it reads as arrays, predict's --files)."""
    d = tmp_path_factory.mktemp("onnx")
    views = write_views(d)
    common = ["--epochs", "3", "--hidden", "8", "--seed", "1"]
    files = lambda names: ",".join(str(d / f"{n}.csv") for n in names)  # noqa: E731
    gmu("multiview", "--files", files("ab"), "--labels", d / "y.csv",
        "--fusion", "gmu", "--fusion", "concat", "--fusion", "linear-sum", "--fusion", "avg-probs",
        "--fusion", "moe", "--experts", "maxout", "--tied-gates", "false", *common, "--out", d / "two")
    gmu("multiview", "--files", files("ab"), "--labels", d / "y.csv", "--fusion", "moe", "--experts", "logistic",
        "--tied-gates", "true", "--no-single", *common, "--out", d / "moe")
    gmu("multiview", "--files", files("abc"), "--labels", d / "y.csv", "--fusion", "gmu", "--no-single",
        *common, "--out", d / "three")
    gmu("multiview", "--files", files("abc"), "--labels", d / "y.csv", "--fusion", "gmu", "--gate-softmax",
        "--no-single", *common, "--out", d / "three-softmax")
    gmu("multiview", "--files", files("ab"), "--labels", d / "multi.csv", "--fusion", "gmu", "--fusion", "moe",
        "--fusion", "avg-probs", "--head", "maxout", *common, "--out", d / "multi")
    gmu("multiview", "--files", files("ab"), "--labels", d / "y.csv", "--fusion", "gmu", "--head", "linear",
        "--no-single", *common, "--out", d / "linear")
    gmu("multiview", "--files", files("abc"), "--labels", d / "y.csv", "--fusion", "gmu", "--gate-hidden", "4",
        "--no-single", *common, "--out", d / "gate-hidden")
    # per-view gate units, trained with corrupted views and the gate-supervision term (burn's autodiff)
    gmu("multiview", "--files", files("abc"), "--labels", d / "y.csv", "--fusion", "gmu", "--gate-hidden", "6",
        "--gate-per-view", "--view-noise", "0.3", "--gate-supervision", "1", "--no-single", *common,
        "--out", d / "gate-per-view")
    found = []
    for run in ["two", "moe", "three", "three-softmax", "multi", "linear", "gate-hidden", "gate-per-view"]:
        for config in sorted((d / run).glob("*/*/config.json")):
            names = [v["name"] for v in json.loads(config.read_text())["views"]]
            found.append((config.parent, {n: views[n] for n in names}, files(names)))
    # The synthetic experiment's classifiers (`gmu train`): views v and t of one column each.
    gmu("synth", "--out", d / "toy.csv", "--n", "300", "--seed", "2")
    toy = np.loadtxt(d / "toy.csv", delimiter=",", skiprows=1)
    for model in ["gmu", "ff", "logreg"]:
        gmu("train", "--data", d / "toy.csv", "--model", model, "--out", d / f"toy-{model}", "--restarts", "1")
        found.append((d / f"toy-{model}", {"v": toy[:, [0]], "t": toy[:, [1]]}, str(d / "toy.csv")))
    return d, found


def predict_rows(model: Path, files: str):
    flag = "--data" if files.endswith("toy.csv") else "--files"
    return [json.loads(line) for line in gmu("predict", "--model", model, flag, files, "--json").splitlines()]


def test_every_model_exports_and_runs_in_onnxruntime_as_gmu_predicts(runs):
    d, found = runs
    methods = set()
    for model, views, files in found:
        out = d / f"{model.parent.name}-{model.name}.onnx"
        gmu("export", "--model", model, "--format", "onnx", "--out", out)
        proto = onnx.load(out)
        onnx.checker.check_model(proto, full_check=True)
        config = json.loads((model / "config.json").read_text())
        classes = config["outputs"]
        meta = {p.key: p.value for p in proto.metadata_props}
        assert json.loads(meta["classes"]) == classes and meta["method"] == config["method"]
        assert [i.name for i in proto.graph.input] == list(views)
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        feeds = {name: x.astype(np.float32) for name, x in views.items()}
        got = dict(zip(names, session.run(None, feeds)))
        rows = predict_rows(model, files)
        expected = np.array([[r[f"p_{c}"] for c in classes] for r in rows])
        assert got["probabilities"].shape == expected.shape
        worst = np.abs(got["probabilities"] - expected).max()
        assert worst < TOLERANCE, f"{model}: probabilities differ by {worst}"
        gated = f"gate_{next(iter(views))}" in rows[0] and config["method"] != "avg-probs"
        assert ("gates" in names) == gated, f"{model}: outputs {names}"
        if gated:
            # predict's gate_<view> is the view's gate averaged over units (GMU) or labels (mixtures).
            for k, view in enumerate(views):
                mean = got["gates"][:, k, :].mean(axis=1)
                worst = np.abs(mean - np.array([r[f"gate_{view}"] for r in rows])).max()
                assert worst < TOLERANCE, f"{model}: gate of {view} differs by {worst}"
        methods.add((config["method"], len(views), config["task"]))
    # What was covered: every method on two views, the GMU on three, multilabel, the synthetic models.
    for needed in [("gmu", 2, "multiclass"), ("concat", 2, "multiclass"), ("linear-sum", 2, "multiclass"),
                   ("avg-probs", 2, "multiclass"), ("moe-maxout", 2, "multiclass"),
                   ("moe-logistic-tied", 2, "multiclass"), ("gmu", 3, "multiclass"), ("gmu", 2, "multilabel"),
                   ("avg-probs", 2, "multilabel")]:
        assert needed in methods, f"{needed} not exported: {sorted(methods)}"


def test_the_batch_axis_is_dynamic(runs):
    d, found = runs
    model, views, _ = found[0]
    out = d / "batch.onnx"
    gmu("export", "--model", model, "--out", out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    one = session.run(["probabilities"], {n: x[:1].astype(np.float32) for n, x in views.items()})[0]
    many = session.run(["probabilities"], {n: x[:50].astype(np.float32) for n, x in views.items()})[0]
    assert one.shape[0] == 1 and many.shape[0] == 50
    assert np.abs(one[0] - many[0]).max() < 1e-6


def test_models_that_cannot_export_are_refused_with_one_line(runs, tmp_path):
    d, found = runs
    model = found[0][0]
    inside = subprocess.run([GMU, "export", "--model", model, "--out", model / "m.onnx"], capture_output=True, text=True)
    assert inside.returncode == 1 and "inside the model directory" in inside.stderr
    assert not (model / "m.onnx").exists()
    missing = subprocess.run([GMU, "export", "--model", tmp_path / "nope", "--out", tmp_path / "m.onnx"],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "nope" in missing.stderr and "panicked" not in missing.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_the_readmes_onnxruntime_example_runs_as_written(tmp_path):
    """The README's Python block, run on the model its `gmu export` line writes
    (a GMU on mfeat fou + zer, trained briefly here)."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```python\nimport numpy as np, onnxruntime")
    block = readme[start + len("```python\n"):readme.index("```", start + 3)]
    gmu("multiview", "--modalities", "fou,zer", "--fusion", "gmu", "--no-single", "--epochs", "2",
        "--out", "runs/multiview-mfeat", cwd=tmp_path)
    gmu("export", "--model", "runs/multiview-mfeat/fou+zer/gmu", "--out", "gmu.onnx", cwd=tmp_path)
    printed = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("[") and len(printed.stdout.splitlines()) >= 2

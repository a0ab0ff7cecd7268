"""The `gmu` Python package against the command line: the same rows give the
same numbers, bit for bit; `gmu.fit` with the CLI's options trains the CLI's
model; the scikit-learn estimator works under `cross_val_score` and
`GridSearchCV`; bad input raises the documented exceptions.

Run from the repository root after `cargo build --release` and
`pip install ./python`:
    python -m pytest python/tests/test_python_api.py
(`GMU_BIN` names another binary.)
"""

import json
import logging
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import gmu

ROOT = Path(__file__).resolve().parents[2]
GMU = os.environ.get("GMU_BIN", str(ROOT / "target" / "release" / "gmu"))
COMMON = ["--epochs", "4", "--hidden", "8", "--seed", "1"]


def cli(*args):
    run = subprocess.run([GMU, *map(str, args)], capture_output=True, text=True)
    assert run.returncode == 0, f"gmu {' '.join(map(str, args))}: {run.stderr}"
    return run.stdout


def predict_json(model, files):
    rows = [json.loads(line) for line in cli("predict", "--model", model, "--files", files, "--json").splitlines()]
    return rows


def planted(n=180, seed=3):
    """Two views (4 and 3 columns) with the class planted in each, and a
    multilabel target with an extra label."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    views = {}
    for name, width, strength in [("a", 4, 2.0), ("b", 3, 1.0)]:
        x = (rng.normal(size=(n, width)) * 1.5 + 4.0).astype(np.float32)
        x[np.arange(n), y % width] += strength
        views[name] = x
    return views, y


def write(d: Path, views, y, multilabel=None):
    for name, x in views.items():
        np.save(d / f"{name}.npy", x)
    (d / "y.csv").write_text("label\n" + "".join(f"k{v}\n" for v in y))
    if multilabel is not None:
        (d / "multi.csv").write_text("labels\n" + "".join("|".join(r) + "\n" for r in multilabel))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A GMU, a concat and a multilabel GMU trained by the CLI on .npy views."""
    d = tmp_path_factory.mktemp("api")
    views, y = planted()
    extra = views["b"][:, 0] > 4.0
    multi = [[f"k{v}"] + (["wide"] if e else []) for v, e in zip(y, extra)]
    write(d, views, y, multi)
    files = f"{d / 'a.npy'},{d / 'b.npy'}"
    cli("multiview", "--files", files, "--labels", d / "y.csv", "--fusion", "gmu", "--fusion", "concat",
        "--no-single", *COMMON, "--out", d / "runs")
    cli("multiview", "--files", files, "--labels", d / "multi.csv", "--fusion", "gmu", "--no-single", *COMMON,
        "--out", d / "multi")
    # New rows to predict, in files of the same view names; row 2 has view b missing, row 5 view a.
    new = d / "new"
    new.mkdir()
    rows, _ = planted(n=40, seed=9)
    rows["b"][2] = np.nan
    rows["a"][5] = np.nan
    for name, x in rows.items():
        np.save(new / f"{name}.npy", x)
    return {
        "dir": d,
        "views": views,
        "y": y,
        "multi": multi,
        "gmu": next((d / "runs").glob("*/gmu")),
        "concat": next((d / "runs").glob("*/concat")),
        "multilabel": next((d / "multi").glob("*/gmu")),
        "rows": rows,
        "files": f"{new / 'a.npy'},{new / 'b.npy'}",
    }


def assert_same_as_cli(out, rows, model):
    """Every number of `out` equals `gmu predict --json`'s (which prints each float32 exactly)."""
    n = len(rows)
    probs = np.array([[r[f"p_{c}"] for c in model.classes] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(out["probabilities"], probs)
    if model.task == "multilabel":
        assert out["predicted"] == [r["predicted"] for r in rows]
    else:
        assert list(out["predicted"]) == [r["predicted"][0] for r in rows]
    for v in model.views:
        for key in (["gate", "share"] if model.gated else []) + ["importance", "conflict"]:
            cli_values = np.array([np.nan if r[f"{key}_{v}"] is None else r[f"{key}_{v}"] for r in rows],
                                  dtype=np.float32)
            np.testing.assert_array_equal(out[f"{key}_{v}"], cli_values, err_msg=f"{key}_{v}")
        assert out[f"present_{v}"].shape == (n,)


@pytest.mark.parametrize("which", ["gmu", "concat", "multilabel"])
def test_predict_is_bit_identical_to_the_cli(trained, which):
    model = gmu.load(trained[which])
    out = model.predict(trained["rows"])
    rows = predict_json(trained[which], trained["files"])
    assert len(rows) == 40
    assert_same_as_cli(out, rows, model)
    # The rows with a view missing: present says so, and that view's readouts are NaN.
    assert not out["present_b"][2] and not out["present_a"][5] and out["present_a"][2]
    # Importance needs a view left to fall back on: NaN for both views of a row with one view.
    assert np.isnan(out["importance_b"][2]) and np.isnan(out["importance_a"][2])
    assert np.isfinite(out["importance_a"][0])
    if model.gated:
        assert np.isnan(out["gate_b"][2]) and out["gate_a"][2] == 1.0 and out["share_a"][2] == 1.0
    # float64 input is rounded to float32 first, so it predicts the same.
    again = model.predict({k: v.astype(np.float64) for k, v in trained["rows"].items()})
    np.testing.assert_array_equal(again["probabilities"], out["probabilities"])


def test_a_loaded_model_describes_itself(trained):
    model = gmu.load(trained["gmu"])
    assert model.views == ["a", "b"] and model.widths == [4, 3]
    assert model.classes == ["k0", "k1", "k2"] and model.task == "multiclass"
    assert model.method == "gmu" and model.gated
    assert model.config["views"][0]["name"] == "a"
    assert gmu.load(trained["concat"]).gated is False
    multi = gmu.load(trained["multilabel"])
    assert multi.task == "multilabel" and "wide" in multi.classes
    assert "gmu multiclass" in repr(model)


def test_gates_and_shares_are_those_of_a_gmu(trained):
    out = gmu.load(trained["gmu"]).predict(trained["rows"])
    both = out["present_a"] & out["present_b"]
    np.testing.assert_allclose(out["gate_a"][both] + out["gate_b"][both], 1.0, atol=1e-6)
    np.testing.assert_allclose(out["share_a"][both] + out["share_b"][both], 1.0, atol=1e-5)


def test_a_view_left_out_is_missing_in_every_row(trained):
    model = gmu.load(trained["gmu"])
    a = trained["rows"]["a"][:5]  # rows with view a present
    only_a = model.predict({"a": a})
    nan_b = {"a": a, "b": np.full((5, 3), np.nan, dtype=np.float32)}
    np.testing.assert_array_equal(only_a["probabilities"], model.predict(nan_b)["probabilities"])
    assert not only_a["present_b"].any()


def test_bad_input_raises_value_errors_that_name_the_view(trained):
    model = gmu.load(trained["gmu"])
    with pytest.raises(ValueError, match="'c'"):
        model.predict(dict(trained["rows"], c=np.zeros((40, 2))))
    with pytest.raises(ValueError, match="view 'b' has 5 columns"):
        model.predict({"a": trained["rows"]["a"], "b": np.zeros((40, 5), dtype=np.float32)})
    with pytest.raises(ValueError, match="view 'b' has 39 rows"):
        model.predict({"a": trained["rows"]["a"], "b": trained["rows"]["b"][:39]})
    bad = dict(trained["rows"])
    bad["a"] = bad["a"].copy()
    bad["a"][3, 1] = np.inf
    with pytest.raises(ValueError, match="view 'a' holds inf at row 3, column 1"):
        model.predict(bad)
    with pytest.raises(ValueError, match="not numeric"):
        model.predict({"a": [["x"] * 4]})
    with pytest.raises(ValueError, match="texts"):
        model.predict(texts=["a plot"])


def test_load_errors_are_python_exceptions(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="absent"):
        gmu.load(tmp_path / "absent")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    with pytest.raises((gmu.GmuError, ValueError), match="config.json"):
        gmu.load(broken)
    assert issubclass(gmu.GmuError, Exception)


def test_save_and_export_write_what_the_cli_writes(tmp_path, trained):
    model = gmu.load(trained["gmu"])
    model.save(tmp_path / "copy")
    copy = gmu.load(tmp_path / "copy")
    np.testing.assert_array_equal(copy.predict(trained["rows"])["probabilities"],
                                  model.predict(trained["rows"])["probabilities"])
    model.export_onnx(tmp_path / "py.onnx")
    cli("export", "--model", trained["gmu"], "--out", tmp_path / "cli.onnx")
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()


def test_fit_with_the_clis_options_trains_the_clis_model(trained):
    """`gmu multiview` splits dev and test 0.2 each by the seed; gmu.fit with
    the same shares and options must train the same model, bit for bit."""
    views, y = trained["views"], trained["y"]
    records = []
    model = gmu.fit(views, [f"k{v}" for v in y], fusion="gmu", dev=0.2, test=0.2, epochs=4, hidden=8, seed=1,
                    callback=records.append)
    cli_model = gmu.load(trained["gmu"])
    np.testing.assert_array_equal(model.predict(trained["rows"])["probabilities"],
                                  cli_model.predict(trained["rows"])["probabilities"])
    assert model.classes == cli_model.classes
    # The callback saw every epoch, as the history records it.
    assert [(r["epoch"], r["train_loss"], r["dev_macro_f1"]) for r in records] == \
        [(h["epoch"], h["train_loss"], h["dev_macro_f1"]) for h in model.history[0]]
    assert len(records) == 4
    assert set(model.scores) == {"dev", "test"}
    assert 0.0 <= model.scores["test"]["accuracy"] <= 1.0


def test_fit_multilabel_from_label_lists_and_matrices(trained):
    views, multi = trained["views"], trained["multi"]
    from_lists = gmu.fit(views, multi, epochs=4, hidden=8, seed=1, test=0.2)
    cli_model = gmu.load(trained["multilabel"])
    assert from_lists.task == "multilabel" and sorted(from_lists.classes) == sorted(cli_model.classes)
    np.testing.assert_array_equal(from_lists.predict(trained["rows"])["probabilities"],
                                  cli_model.predict(trained["rows"])["probabilities"])
    names = from_lists.classes
    matrix = np.array([[int(c in r) for c in names] for r in multi])
    from_matrix = gmu.fit(views, matrix, label_names=names, epochs=4, hidden=8, seed=1, test=0.2)
    np.testing.assert_array_equal(from_matrix.predict(trained["rows"])["probabilities"],
                                  from_lists.predict(trained["rows"])["probabilities"])


def test_fit_logs_each_epoch_and_same_seed_same_model(trained, caplog):
    views, y = trained["views"], trained["y"]
    with caplog.at_level(logging.INFO, logger="gmu"):
        a = gmu.fit(views, y, epochs=3, hidden=8, seed=5)
    epochs = [r for r in caplog.records if "epoch" in r.getMessage()]
    assert len(epochs) == len(a.history[0]) == 3
    b = gmu.fit(views, y, epochs=3, hidden=8, seed=5)
    np.testing.assert_array_equal(a.predict(trained["rows"])["probabilities"],
                                  b.predict(trained["rows"])["probabilities"])


def test_fit_saves_its_model_where_asked(tmp_path, trained):
    model = gmu.fit(trained["views"], trained["y"], fusion="concat", epochs=2, hidden=8, out=tmp_path / "m")
    assert (tmp_path / "m" / "config.json").exists()
    assert gmu.load(tmp_path / "m").method == "concat" == model.method


def test_view_noise_options_reach_the_model(trained):
    model = gmu.fit(trained["views"], trained["y"], epochs=2, hidden=8, view_noise=0.3, noise_kind="swap",
                    noise_sigma=(1.0, 2.0))
    assert model.config["training"]["view_noise"] == {"p": 0.3, "kind": "swap", "sigma": [1.0, 2.0]}
    supervised = gmu.fit(trained["views"], trained["y"], epochs=2, hidden=8, view_noise=0.3, gate_supervision=0.5,
                         gate_hidden=4, gate_per_view=True)
    assert supervised.config["training"]["view_noise"]["gate_supervision"] == 0.5
    assert "gate_supervision_clean" not in supervised.config["training"]["view_noise"]
    two_sided = gmu.fit(trained["views"], trained["y"], epochs=1, hidden=8, view_noise=0.3, gate_supervision=0.5,
                        gate_supervision_clean=0.1)
    assert two_sided.config["training"]["view_noise"]["gate_supervision_clean"] == pytest.approx(0.1)
    assert supervised.config["training"]["model"]["gate_per_view"] is True
    with pytest.raises(ValueError, match="gate_supervision"):
        gmu.fit(trained["views"], trained["y"], epochs=1, view_noise=0.3, gate_supervision=-1.0)
    with pytest.raises(ValueError, match="gate_supervision_clean"):
        gmu.fit(trained["views"], trained["y"], epochs=1, view_noise=0.3, gate_supervision=1.0,
                gate_supervision_clean=-1.0)
    with pytest.raises(ValueError, match="noise_sigma"):
        gmu.fit(trained["views"], trained["y"], epochs=1, view_noise=0.3, noise_sigma=(4.0, 1.0))


def test_fit_refuses_bad_options_and_data(trained):
    views, y = trained["views"], trained["y"]
    with pytest.raises(ValueError, match="hiden"):
        gmu.fit(views, y, hiden=8)
    with pytest.raises(ValueError, match="fusion"):
        gmu.fit(views, y, fusion="sum-of-everything")
    with pytest.raises(ValueError, match="lr"):
        gmu.fit(views, y, lr=-1.0, epochs=1)
    with pytest.raises(ValueError, match="179 labels for 180 rows"):
        gmu.fit(views, y[:-1])
    with pytest.raises(ValueError, match="0 and 1"):
        gmu.fit(views, np.full((180, 2), 2))
    bad = dict(views, a=views["a"].copy())
    bad["a"][7, 0] = np.inf
    with pytest.raises(ValueError, match="inf"):
        gmu.fit(bad, y, epochs=1)


def test_an_exception_in_the_callback_stops_training_and_is_raised(trained):
    class Enough(Exception):
        pass

    def stop(record):
        if record["epoch"] == 2:
            raise Enough("two epochs will do")

    with pytest.raises(Enough, match="two epochs"):
        gmu.fit(trained["views"], trained["y"], epochs=50, patience=50, hidden=8, callback=stop)


def test_docstrings_read_well():
    for f in (gmu.load, gmu.fit, gmu.Model.predict, gmu.GMUClassifier, gmu.encode_texts, gmu.encode_images):
        assert f.__doc__ and len(f.__doc__) > 80, f
    assert "gate" in gmu.Model.predict.__doc__


# scikit-learn


def sklearn_data():
    views, y = planted(n=150, seed=4)
    return np.hstack([views["a"], views["b"]]), np.array([f"k{v}" for v in y])


def test_the_estimator_works_with_cross_val_score():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import cross_val_score

    from sklearn.linear_model import LogisticRegression

    X, y = sklearn_data()
    clf = gmu.GMUClassifier(views={"a": slice(0, 4), "b": slice(4, 7)}, epochs=60, hidden=16, lr=1e-2, seed=2)
    scores = cross_val_score(clf, X, y, cv=3)
    assert scores.shape == (3,)
    # Chance is 1/3; the planted class's noise caps a logistic regression near 0.75 (measured
    # 0.74 / 0.70 / 0.82, the GMU 0.68 / 0.68 / 0.72): the GMU is within 0.1 of it in the mean.
    logistic = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=3)
    assert scores.min() > 0.55 and scores.mean() > logistic.mean() - 0.1, (scores, logistic)


def test_the_estimator_works_with_grid_search_and_reports_gates():
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    X, y = sklearn_data()
    base = gmu.GMUClassifier(views={"a": slice(0, 4), "b": [4, 5, 6]}, epochs=20, seed=2)
    search = GridSearchCV(base, {"hidden": [4, 16], "fusion": ["gmu", "concat"]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["hidden"] in (4, 16)
    assert len(search.cv_results_["mean_test_score"]) == 4
    best = search.best_estimator_
    assert set(best.predict(X[:5])) <= set(y)
    proba = best.predict_proba(X[:5])
    assert proba.shape == (5, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert list(best.classes_) == ["k0", "k1", "k2"]
    assert clone(base).get_params()["views"] == base.get_params()["views"]
    gated = gmu.GMUClassifier(views={"a": slice(0, 4), "b": slice(4, 7)}, epochs=5, hidden=8).fit(X, y)
    gates = gated.gates(X[:10])
    np.testing.assert_allclose(gates["a"] + gates["b"], 1.0, atol=1e-6)


def test_the_estimator_learns_multilabel_targets_and_refuses_the_wrong_width():
    X, y = sklearn_data()
    Y = np.stack([y == "k0", X[:, 4] > 4.0], axis=1).astype(int)
    clf = gmu.GMUClassifier(views={"a": slice(0, 4), "b": slice(4, 7)}, epochs=60, hidden=16, lr=1e-2,
                            seed=1).fit(X, Y)
    predicted = clf.predict(X)
    assert predicted.shape == Y.shape and set(np.unique(predicted)) <= {0, 1}
    # Label 1 is a threshold on one column of view b (0.99 measured), label 0 the planted class
    # (0.90); a constant predictor scores 0.67 and about 0.5.
    per_label = (predicted == Y).mean(axis=0)
    assert per_label[0] > 0.8 and per_label[1] > 0.9, per_label
    with pytest.raises(ValueError, match="6 columns"):
        clf.predict(X[:, :6])
    with pytest.raises(AttributeError, match="not fitted"):
        gmu.GMUClassifier(views={"a": slice(0, 4)}).predict(X)


# Raw inputs through the pretrained encoders (they need `gmu encoders fetch`).


def encoders_present():
    listing = subprocess.run([GMU, "encoders", "list"], capture_output=True, text=True).stdout.splitlines()
    ready = all(any(line.startswith(name + " ") and "not fetched" not in line for line in listing)
                for name in ("minilm", "effnet-lite0"))
    if not ready:
        if os.environ.get("GMU_REQUIRE_ENCODERS") == "1":
            pytest.fail("GMU_REQUIRE_ENCODERS=1 but the encoders are not fetched")
        skipped = os.environ.get("GMU_SKIPPED")
        if skipped:
            with open(skipped, "a") as f:
                f.write("python raw-input checks: encoders not fetched\n")
        pytest.skip("the pretrained encoders are not fetched (gmu encoders fetch)")


def png(width, height, seed):
    """A small RGB PNG (stored, filtered rows) written by hand."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_raw_inputs_encode_and_predict_as_the_cli_does(tmp_path):
    encoders_present()
    n = 30
    plots = [f"story {i}: " + ("a detective hunts a killer in the city" if i % 2 else "two friends laugh at a party")
             for i in range(n)]
    plots[4] = ""  # an empty plot: no features, a missing view of its row
    images = [png(40 + i, 30, i) for i in range(n)]
    for i, b in enumerate(images):
        (tmp_path / f"p{i}.png").write_bytes(b)
    (tmp_path / "plots.csv").write_text("plot\n" + "".join(json.dumps(p) + "\n" for p in plots))
    (tmp_path / "posters.csv").write_text("path\n" + "".join(f"p{i}.png\n" for i in range(n)))
    cli("encode", "--text", tmp_path / "plots.csv", "--column", "plot", "--out", tmp_path / "plot.npy")
    cli("encode", "--images", tmp_path / "posters.csv", "--column", "path", "--out", tmp_path / "poster.npy")

    text_features, text_missing = gmu.encode_texts(plots)
    np.testing.assert_array_equal(text_features, np.load(tmp_path / "plot.npy"))
    assert [m[0] for m in text_missing] == [4] and np.isnan(text_features[4]).all()
    from_bytes, none = gmu.encode_images(images)
    from_paths, _ = gmu.encode_images([tmp_path / f"p{i}.png" for i in range(n)])
    np.testing.assert_array_equal(from_bytes, np.load(tmp_path / "poster.npy"))
    np.testing.assert_array_equal(from_paths, from_bytes)
    assert none == [] and from_bytes.shape == (n, 1280)
    _, bad = gmu.encode_images([b"not an image"])
    assert bad[0][0] == 0 and "not" in bad[0][2]

    (tmp_path / "y.csv").write_text("genre\n" + "".join(("crime" if i % 2 else "comedy") + "\n" for i in range(n)))
    cli("multiview", "--files", f"{tmp_path / 'plot.npy'},{tmp_path / 'poster.npy'}", "--labels", tmp_path / "y.csv",
        "--fusion", "gmu", "--no-single", "--epochs", "2", "--hidden", "8", "--out", tmp_path / "runs")
    model_dir = next((tmp_path / "runs").glob("*/gmu"))
    model = gmu.load(model_dir)
    out = model.predict(texts=[plots[1]], images=[images[1]])
    rows = [json.loads(line) for line in cli("predict", "--model", model_dir, "--text", plots[1], "--image",
                                             tmp_path / "p1.png", "--json").splitlines()]
    assert_same_as_cli(out, rows, model)
    text_only = model.predict(texts=[plots[3]])
    assert not text_only["present_poster"][0] and text_only["present_plot"][0]
    broken = model.predict(texts=[plots[3]], images=[b"\xff\xd8 cut"])
    assert broken["unusable"][0][0] == "poster" and not broken["present_poster"][0]


def test_the_readmes_python_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```python\nimport numpy as np, gmu")
    block = readme[start + len("```python\n"):readme.index("```", start + 3)]
    assert len(block.strip().splitlines()) <= 6  # the import and five lines
    printed = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    assert (tmp_path / "runs" / "python-gmu" / "config.json").exists()
    # The last number printed is the dev accuracy: the planted view makes it easy.
    assert float(printed.stdout.split()[-1]) > 0.9, printed.stdout


def test_a_panic_inside_gmu_is_a_gmu_error():
    with pytest.raises(gmu.GmuError, match="internal error.*deliberate panic"):
        gmu._native._panic_for_tests()


def test_predict_releases_the_gil(trained):
    """While a thread is inside `predict`, the main thread runs. The worker
    reads the main thread's counter just before and just after the call;
    with a switch interval far longer than the call, a call that kept the GIL
    would return before the waiting main thread could ask for it, and see the
    counter unchanged."""
    import threading

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    try:
        _count_during_predict(trained, threading)
    finally:
        sys.setswitchinterval(interval)


def _count_during_predict(trained, threading):
    model = gmu.load(trained["gmu"])
    # 40,000 rows with importance: long enough (~0.1 s) for the main thread to be scheduled on a busy machine
    rows = {k: np.tile(v, (1000, 1)) for k, v in trained["rows"].items()}
    counter, seen = [0], []
    started = threading.Event()

    def work():
        started.set()
        before = counter[0]
        model.predict(rows)
        seen.append(counter[0] - before)

    worker = threading.Thread(target=work)
    worker.start()
    started.wait()
    while worker.is_alive():
        counter[0] += 1
    worker.join()
    assert seen[0] > 0, "the main thread did not run while predict ran: the GIL was held"

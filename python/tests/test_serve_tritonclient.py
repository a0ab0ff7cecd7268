"""`gmu serve` spoken to by NVIDIA's Python client for Triton (`tritonclient[http]` from PyPI),
unchanged: numpy arrays go as the binary tensor extension, as the client sends them by default,
and every output comes back equal, bit for bit, to what `gmu predict --json` writes for the
same rows. (`GMU_BIN` names another binary.)"""

import json
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest

tritonclient = pytest.importorskip("tritonclient.http")

ROOT = pathlib.Path(__file__).resolve().parents[2]
GMU = os.environ.get("GMU_BIN", str(ROOT / "target" / "release" / "gmu"))
MODEL = ROOT / "tests" / "fixtures" / "model_v2" / "mfeat-gmu"


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen(
        [GMU, "serve", "--model", str(MODEL), "--name", "mfeat", "--addr", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    address = None
    for line in proc.stderr:
        found = re.search(r"listening on http://(\S+)", line)
        if found:
            address = found.group(1)
            break
    assert address, "gmu serve did not start"
    yield address
    proc.terminate()
    assert proc.wait(timeout=20) == 0


def rows(n=25):
    rng = np.random.default_rng(3)
    fou = (rng.normal(size=(n, 76)) * 0.2).astype(np.float32)
    zer = (rng.normal(size=(n, 47)) * 50 + 300).astype(np.float32)
    zer[4] = np.nan  # a missing view
    return fou, zer


def cli_predict(tmp_path, fou, zer):
    paths = []
    for name, x in (("fou", fou), ("zer", zer)):
        path = tmp_path / f"{name}.csv"
        lines = [",".join(f"c{i}" for i in range(x.shape[1]))]
        lines += ["," * (x.shape[1] - 1) if np.isnan(r).all() else ",".join(repr(float(v)) for v in r) for r in x]
        path.write_text("\n".join(lines) + "\n")
        paths.append(str(path))
    run = subprocess.run(
        [GMU, "predict", "--model", str(MODEL), "--files", ",".join(paths), "--json"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


def same(a, b):
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return np.array_equal(a, b, equal_nan=True)


def test_tritonclient_infers_with_gmu_predicts_numbers(server, tmp_path):
    fou, zer = rows()
    want = cli_predict(tmp_path, fou, zer)
    client = tritonclient.InferenceServerClient(server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mfeat")
    meta = client.get_model_metadata("mfeat")
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("fou", "FP32", [-1, 76]),
        ("zer", "FP32", [-1, 47]),
    ]
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    inputs = []
    for name, x in (("fou", fou), ("zer", zer)):
        t = tritonclient.InferInput(name, list(x.shape), "FP32")
        t.set_data_from_numpy(x)  # binary, the client's default
        inputs.append(t)
    result = client.infer("mfeat", inputs, request_id="t1")
    assert result.get_response()["id"] == "t1"
    probs = result.as_numpy("probabilities")
    assert probs.shape == (25, 10) and probs.dtype == np.float32
    labels = [str(c) for c in range(10)]
    assert same(probs, [[r[f"p_{c}"] if r[f"p_{c}"] is not None else np.nan for c in labels] for r in want])
    predicted = [p.decode() for p in result.as_numpy("predicted")]
    assert predicted == ["|".join(r["predicted"]) for r in want]
    for view in ("fou", "zer"):
        for what in ("gate", "share", "importance"):
            got = result.as_numpy(f"{what}_{view}")
            expected = [np.nan if r[f"{what}_{view}"] is None else r[f"{what}_{view}"] for r in want]
            assert same(got, expected), f"{what}_{view}"
    assert result.as_numpy("present_zer").tolist() == [i != 4 for i in range(25)]

    # a subset of outputs, as JSON
    asked = [tritonclient.InferRequestedOutput("share_fou", binary_data=False)]
    result = client.infer("mfeat", inputs, outputs=asked)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["share_fou"]
    assert same(result.as_numpy("share_fou"), [np.nan if r["share_fou"] is None else r["share_fou"] for r in want])


def test_tritonclient_gets_the_servers_error_by_name(server):
    client = tritonclient.InferenceServerClient(server)
    bad = tritonclient.InferInput("fou", [1, 75], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 75), dtype=np.float32))
    with pytest.raises(Exception, match="input 'fou': shape \\[1, 75\\], but the view has 76 features"):
        client.infer("mfeat", [bad])
    with pytest.raises(Exception, match="unknown model 'nope'"):
        client.get_model_metadata("nope")

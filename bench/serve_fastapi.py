"""The anchor of bench/serve.sh: what people deploy today, a FastAPI + uvicorn app around the same
model in PyTorch (gmu's model exported to ONNX and run op by op in PyTorch eager,
bench/onnx_torch.py: the same weights and scalers), answering the same Open Inference Protocol
JSON requests (`POST /v2/models/{name}/infer`, FP32 inputs; probabilities and gates out).

Deployed as the best two-core setup measured: `--workers N` processes, each with its own
listening socket on the same port (SO_REUSEPORT), so the kernel spreads connections over them
(uvicorn's own `--workers` mostly leaves one idle). `GET /v2/health/live` is the trivial
endpoint the load generator's ceiling is measured on.

Usage: python bench/serve_fastapi.py MODEL.onnx NAME PORT [--workers 2]"""

import argparse
import os

parser = argparse.ArgumentParser()
parser.add_argument("onnx")
parser.add_argument("name")
parser.add_argument("port", type=int)
parser.add_argument("--workers", type=int, default=2)
args = parser.parse_args()
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from fastapi import FastAPI, HTTPException, Request  # noqa: E402
from fastapi.responses import Response  # noqa: E402

import reuseport  # noqa: E402
from onnx_torch import TorchGraph  # noqa: E402

torch.set_num_threads(1)
graph = TorchGraph(args.onnx)
inputs_meta = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
app = FastAPI()


@app.get("/v2/health/live")
def live():
    return Response(status_code=200)


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    if name != args.name:
        raise HTTPException(404, f"unknown model '{name}'")
    body = await request.json()
    tensors = {}
    for t in body["inputs"]:
        if t["name"] not in inputs_meta or t["datatype"] != "FP32":
            raise HTTPException(400, f"input '{t['name']}'")
        tensors[t["name"]] = torch.tensor(np.asarray(t["data"], dtype=np.float32).reshape(t["shape"]))
    with torch.inference_mode():
        outs = graph(tensors)
    response = {"model_name": name, "outputs": []}
    for o, value in zip(graph.outputs, outs):
        response["outputs"].append(
            {"name": o, "datatype": "FP32", "shape": list(value.shape), "data": value.reshape(-1).tolist()}
        )
    return response


reuseport.run(app, args.port, args.workers)

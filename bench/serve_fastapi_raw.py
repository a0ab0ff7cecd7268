"""The anchor of bench/serve_raw.sh: a plot+poster genre model served the way people deploy it
today, FastAPI + uvicorn around PyTorch: the plot through `tokenizers` + transformers' BertModel
(all-MiniLM-L6-v2, mean pooling, L2 norm, 256 tokens), the poster decoded with Pillow, resized
(shorter side 256, antialiased bilinear), centre-cropped to 224 and through timm's
tf_efficientnet_lite0 (pooled 1280-d features), then gmu's fusion model exported to ONNX and run
op by op in PyTorch eager (bench/onnx_torch.py: the same weights and scalers). The same weights as
gmu's, from gmu's encoder cache; the same preprocessing as scripts/encoder_reference.py, which
checks gmu's encoders against these.

Requests are the Open Inference Protocol JSON that `gmu serve` takes: `text` as a BYTES string,
`visual` as base64 JPEG/PNG bytes; probabilities and gates out. Two uvicorn processes share the
port (SO_REUSEPORT), one PyTorch thread each, as in bench/serve_fastapi.py.

Usage: python bench/serve_fastapi_raw.py MODEL.onnx NAME PORT [--workers 2] [--cache DIR]"""

import argparse
import base64
import io
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("onnx")
parser.add_argument("name")
parser.add_argument("port", type=int)
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--bf16", action="store_true",
                    help="the encoders under torch.autocast('cpu', dtype=torch.bfloat16) (oneDNN's bf16 kernels: AMX or AVX512-BF16), "
                         "beside gmu's GMU_ENCODER_PRECISION=bf16; the fusion stays float32 in both")
parser.add_argument("--cache", default=os.environ.get("GMU_ENCODERS_DIR", os.path.expanduser("~/.cache/gmu/encoders")))
args = parser.parse_args()
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from fastapi import FastAPI, HTTPException, Request  # noqa: E402
from fastapi.responses import Response  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

import reuseport  # noqa: E402
from onnx_torch import TorchGraph  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from encoder_reference import pooled  # noqa: E402

torch.set_num_threads(1)
graph = TorchGraph(args.onnx)

folder = os.path.join(args.cache, "minilm-0.1.0")
bert = BertModel(BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                            intermediate_size=1536, max_position_embeddings=512, hidden_act="gelu",
                            layer_norm_eps=1e-12)).eval()
bert.load_state_dict(load_file(os.path.join(folder, "model.safetensors")), strict=False)
tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
tok.enable_truncation(max_length=256)
tok.enable_padding()

raw = torch.load(os.path.join(args.cache, "effnet-lite0-0.1.0", "efficientnet-lite0.pth"), map_location="cpu")
effnet = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
state = effnet.state_dict()
for k, v in zip([k for k in state if not k.endswith("num_batches_tracked")],
                [v for k, v in raw.items() if not k.endswith("num_batches_tracked")]):
    state[k] = v
effnet.load_state_dict(state)


def poster(data: bytes) -> torch.Tensor:
    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float32)
    x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0)
    h, w = x.shape[-2:]
    nh, nw = (256, max(256, int(256 * w / h))) if h <= w else (max(256, int(256 * h / w)), 256)
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    top, left = int(round((nh - 224) / 2.0)), int(round((nw - 224) / 2.0))
    return (x[:, :, top:top + 224, left:left + 224] - 127.0) / 128.0


def precision():
    """The autocast context --bf16 asks for, or none."""
    import contextlib
    return torch.autocast("cpu", dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()


app = FastAPI()


@app.get("/v2/health/live")
def live():
    return Response(status_code=200)


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    if name != args.name:
        raise HTTPException(404, f"unknown model '{name}'")
    body = await request.json()
    given = {t["name"]: t for t in body["inputs"]}
    if set(given) != {"text", "visual"} or any(t["datatype"] != "BYTES" for t in given.values()):
        raise HTTPException(400, "expected BYTES inputs 'text' and 'visual'")
    texts = [str(s) for s in given["text"]["data"]]
    images = torch.cat([poster(base64.b64decode(s)) for s in given["visual"]["data"]])
    with torch.inference_mode():
        enc = tok.encode_batch(texts)
        ids = torch.tensor([e.ids for e in enc])
        mask = torch.tensor([e.attention_mask for e in enc])
        with precision():
            hidden = bert(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            visual = effnet.forward_head(effnet.forward_features(images), pre_logits=True).float()
        text = pooled(hidden, mask)
        outs = graph({"text": text, "visual": visual})
    response = {"model_name": name, "outputs": []}
    for o, value in zip(graph.outputs, outs):
        response["outputs"].append(
            {"name": o, "datatype": "FP32", "shape": list(value.shape), "data": value.reshape(-1).tolist()}
        )
    return response


reuseport.run(app, args.port, args.workers)

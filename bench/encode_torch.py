#!/usr/bin/env python3
"""PyTorch reference for benches/encode.rs: the same encoders on the same
weights (from gmu's encoder cache), the same inputs, batch 32.

MiniLM: the tokenizer (Python `tokenizers`, truncation 256) and transformers'
BertModel, mean pooling and L2 norm, per batch of 32 texts of 256 tokens.
EfficientNet-Lite0: timm's tf_efficientnet_lite0 with the package's .pth,
forward to the pooled features, 32 images of 224x224.
Prints one JSON line per encoder, like the Rust bench.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from encoder_reference import pooled  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batches", type=int, default=3)
p.add_argument("--reps", type=int, default=3)
p.add_argument("--only", choices=["minilm", "effnet-lite0"], help="run one encoder")
p.add_argument("--bf16", action="store_true",
               help="run under torch.autocast('cpu', dtype=torch.bfloat16): oneDNN's bf16 (AMX or AVX512-BF16) kernels, PyTorch's answer to GMU_ENCODER_PRECISION=bf16")
p.add_argument("--cache", default=os.environ.get("GMU_ENCODERS_DIR", os.path.expanduser("~/.cache/gmu/encoders")))
a = p.parse_args()
torch.set_num_threads(a.threads)
B = 32
IMPL = "pytorch-bf16" if a.bf16 else "pytorch"


def precision():
    """The autocast context --bf16 asks for, or none."""
    import contextlib
    return torch.autocast("cpu", dtype=torch.bfloat16) if a.bf16 else contextlib.nullcontext()


def median(xs):
    return sorted(xs)[len(xs) // 2]


def timed(step):
    step()
    out = []
    for _ in range(a.reps):
        t = time.perf_counter()
        for _ in range(a.batches):
            step()
        out.append(a.batches * B / (time.perf_counter() - t))
    return median(out)


def run(name):
    return a.only is None or a.only == name


from safetensors.torch import load_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

folder = os.path.join(a.cache, "minilm-0.1.0")
config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                    intermediate_size=1536, max_position_embeddings=512, hidden_act="gelu", layer_norm_eps=1e-12)
model = BertModel(config).eval()
model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")), strict=False)
tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
tok.enable_truncation(max_length=256)
tok.enable_padding()
words = ["the", "young", "wizard", "travels", "across", "a", "dark", "kingdom", "to", "save", "his", "friends", "from", "an", "ancient", "curse"]
texts = [" ".join(words[(i * 7 + k * 3) % len(words)] for k in range(320)) for i in range(B)]


def minilm():
    enc = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    with torch.inference_mode(), precision():
        pooled(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)


if run("minilm"):
    print(json.dumps({"impl": IMPL, "encoder": "minilm", "tokens": 256, "batch": B, "threads": a.threads, "items_per_s": round(timed(minilm), 2)}))

if not run("effnet-lite0"):
    sys.exit(0)

import timm  # noqa: E402

raw = torch.load(os.path.join(a.cache, "effnet-lite0-0.1.0", "efficientnet-lite0.pth"), map_location="cpu")
net = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
state = net.state_dict()
for k, v in zip([k for k in state if not k.endswith("num_batches_tracked")], [v for k, v in raw.items() if not k.endswith("num_batches_tracked")]):
    state[k] = v
net.load_state_dict(state)
x = torch.randn(B, 3, 224, 224)


def effnet():
    with torch.inference_mode(), precision():
        net.forward_head(net.forward_features(x), pre_logits=True)


print(json.dumps({"impl": IMPL, "encoder": "effnet-lite0", "size": 224, "batch": B, "threads": a.threads, "items_per_s": round(timed(effnet), 2)}))

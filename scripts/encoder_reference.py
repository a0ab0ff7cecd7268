#!/usr/bin/env python3
"""Reference outputs of the pretrained encoders, computed with PyTorch, for
gmu's tests (src/encoders/). Kept so the committed numbers can be remade.

    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install torch transformers timm scikit-image safetensors
    gmu encoders fetch            # the real weights, into $GMU_ENCODERS_DIR
    /tmp/refenv/bin/python scripts/encoder_reference.py $GMU_ENCODERS_DIR

Writes tests/fixtures/encoders/:
- tiny_bert_reference.txt, tiny_effnet_reference.txt: outputs of tiny
  networks whose weights are a deterministic integer hash (`values` below,
  the same function as `encoders::testing::values` in Rust);
- minilm_reference.json: token ids and embeddings of a dozen texts
  (transformers' BertModel on the fetched folder, mean pooling, L2 norm);
- effnet_reference.json: EfficientNet-Lite0 (timm's tf_efficientnet_lite0
  loaded with the fetched .pth) features and top-5 of chelsea.png.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "encoders")
torch.set_num_threads(2)


def values(k, n, scale):
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(7919) + np.uint64(k) * np.uint64(104729) + np.uint64(17)) % np.uint64(2001)
    return ((h.astype(np.float64) - 1000.0) / 1000.0 * scale).astype(np.float32)


def rust_array(a):
    a = np.asarray(a)
    if a.ndim == 1:
        return "[" + ", ".join(str(np.float32(v)) for v in a) + "]"
    return "[" + ", ".join(rust_array(r) for r in a) + "]"


# ---------------------------------------------------------------- tiny BERT
def tiny_bert():
    from transformers import BertConfig, BertModel

    v, d, ff, p, layers = 50, 8, 12, 16, 2
    shapes = {
        "embeddings.word_embeddings.weight": (v, d),
        "embeddings.position_embeddings.weight": (p, d),
        "embeddings.token_type_embeddings.weight": (2, d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
    }
    per_layer = {
        "attention.self.query.weight": (d, d), "attention.self.query.bias": (d,),
        "attention.self.key.weight": (d, d), "attention.self.key.bias": (d,),
        "attention.self.value.weight": (d, d), "attention.self.value.bias": (d,),
        "attention.output.dense.weight": (d, d), "attention.output.dense.bias": (d,),
        "attention.output.LayerNorm.weight": (d,), "attention.output.LayerNorm.bias": (d,),
        "intermediate.dense.weight": (ff, d), "intermediate.dense.bias": (ff,),
        "output.dense.weight": (d, ff), "output.dense.bias": (d,),
        "output.LayerNorm.weight": (d,), "output.LayerNorm.bias": (d,),
    }
    for l in range(layers):
        for name, shape in per_layer.items():
            shapes[f"encoder.layer.{l}.{name}"] = shape
    state = {}
    for k, name in enumerate(sorted(shapes)):
        shape = shapes[name]
        vals = values(k, int(np.prod(shape)), 0.5)
        if name.endswith("LayerNorm.weight"):
            vals = vals + np.float32(1.0)
        state[name] = torch.from_numpy(vals.reshape(shape))
    config = BertConfig(vocab_size=v, hidden_size=d, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=ff, max_position_embeddings=p, hidden_act="gelu",
                        layer_norm_eps=1e-12, attn_implementation="eager")
    model = BertModel(config, add_pooling_layer=False).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in m for m in missing), (missing, unexpected)
    rows = [[1, 7, 13, 2], [1, 42, 2], [1, 3, 5, 8, 21, 34, 2]]
    t = max(map(len, rows))
    ids = torch.tensor([r + [0] * (t - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (t - len(r)) for r in rows])
    with torch.no_grad():
        emb = pooled(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
    with open(os.path.join(OUT, "tiny_bert_reference.txt"), "w") as f:
        f.write(rust_array(emb.numpy()) + "\n")


def pooled(hidden, mask):
    m = mask.unsqueeze(-1).float()
    mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(mean, p=2, dim=1)


# ------------------------------------------------------ tiny EfficientNet-Lite
def same_pad(x, k, s):
    h, w = x.shape[-2:]
    def pads(n):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    (t, b), (l, r) = pads(h), pads(w)
    return F.pad(x, (l, r, t, b))


def conv_bn(x, state, conv, bn, stride, groups):
    w = state[f"{conv}.weight"]
    x = F.conv2d(same_pad(x, w.shape[-1], stride), w, None, stride, 0, 1, groups)
    return F.batch_norm(x, state[f"{bn}.running_mean"], state[f"{bn}.running_var"],
                        state[f"{bn}.weight"], state[f"{bn}.bias"], False, 0.0, 1e-3)


def effnet_lite(x, state, strides):
    x = F.relu6(conv_bn(x, state, "_conv_stem", "_bn0", 2, 1))
    for i, s in enumerate(strides):
        p = f"_blocks.{i}"
        inp = x
        if f"{p}._expand_conv.weight" in state:
            x = F.relu6(conv_bn(x, state, f"{p}._expand_conv", f"{p}._bn0", 1, 1))
        c = x.shape[1]
        x = F.relu6(conv_bn(x, state, f"{p}._depthwise_conv", f"{p}._bn1", s, c))
        x = conv_bn(x, state, f"{p}._project_conv", f"{p}._bn2", 1, 1)
        if s == 1 and x.shape[1] == inp.shape[1]:
            x = x + inp
    x = F.relu6(conv_bn(x, state, "_conv_head", "_bn1", 1, 1))
    feats = x.mean((2, 3))
    return feats, F.linear(feats, state["_fc.weight"], state["_fc.bias"])


def tiny_effnet():
    shapes = {}
    def conv_bn_shapes(conv, bn, shape):
        shapes[f"{conv}.weight"] = shape
        for s in ["weight", "bias", "running_mean", "running_var"]:
            shapes[f"{bn}.{s}"] = (shape[0],)
    conv_bn_shapes("_conv_stem", "_bn0", (8, 3, 3, 3))
    conv_bn_shapes("_blocks.0._depthwise_conv", "_blocks.0._bn1", (8, 1, 3, 3))
    conv_bn_shapes("_blocks.0._project_conv", "_blocks.0._bn2", (8, 8, 1, 1))
    conv_bn_shapes("_blocks.1._expand_conv", "_blocks.1._bn0", (32, 8, 1, 1))
    conv_bn_shapes("_blocks.1._depthwise_conv", "_blocks.1._bn1", (32, 1, 5, 5))
    conv_bn_shapes("_blocks.1._project_conv", "_blocks.1._bn2", (12, 32, 1, 1))
    conv_bn_shapes("_conv_head", "_bn1", (16, 12, 1, 1))
    shapes["_fc.weight"] = (5, 16)
    shapes["_fc.bias"] = (5,)
    state = {}
    for k, name in enumerate(sorted(shapes)):
        vals = values(k, int(np.prod(shapes[name])), 0.5)
        if name.endswith("running_var") or ("_bn" in name and name.endswith(".weight")):
            vals = np.float32(1.0) + np.abs(vals)
        state[name] = torch.from_numpy(vals.reshape(shapes[name]))
    x = torch.from_numpy(values(999, 2 * 3 * 17 * 23, 1.0).reshape(2, 3, 17, 23))
    with torch.no_grad():
        feats, logits = effnet_lite(x, state, [1, 2])
    with open(os.path.join(OUT, "tiny_effnet_reference.txt"), "w") as f:
        f.write("(" + rust_array(feats.numpy()) + ", " + rust_array(logits.numpy()) + ")\n")


# ------------------------------------------------------------- real MiniLM
TEXTS = [
    "A young wizard discovers he has magical powers and attends a school of witchcraft.",
    "Two detectives hunt a serial killer who uses the seven deadly sins as his motives.",
    "Ein Mädchen träumt von Paris, während ihr Großvater 1945 über den Krieg erzählt.",
    "東京の夜、二人の刑事が事件を追う。",
    "The crew of the Nostromo 🚀 answers a distress call… and wakes something.",
    "Don't stop—it's only 3:45 a.m. in São Paulo; café au lait?",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "",
    "   ",
    "A",
    "naïve résumé of the coöperative's façade",
    " ".join(["word"] * 300),
]


def minilm(folder):
    from safetensors.torch import load_file
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel

    # all-MiniLM-L6-v2's config.json, which the cache does not keep
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512, hidden_act="gelu",
                        layer_norm_eps=1e-12, attn_implementation="eager")
    model = BertModel(config).eval()
    missing, unexpected = model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")), strict=False)
    assert not missing and unexpected in ([], ["embeddings.position_ids"]), (missing, unexpected)
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    out = {"texts": [], "max_tokens": 256}
    for max_len in (256, 512):
        tok.enable_truncation(max_length=max_len)
        tok.no_padding()
        for text in TEXTS:
            ids = tok.encode(text).ids
            entry = {"text": text, "max_tokens": max_len, "ids": ids}
            if max_len == 256 and text.strip():
                with torch.no_grad():
                    t = torch.tensor([ids])
                    m = torch.ones_like(t)
                    entry["embedding"] = [float(v) for v in pooled(model(input_ids=t, attention_mask=m).last_hidden_state, m)[0]]
            out["texts"].append(entry)
    with open(os.path.join(OUT, "minilm_reference.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False)


# ------------------------------------------------------ real EfficientNet-Lite0
def preprocess(path):
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
    x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0)
    h, w = x.shape[-2:]
    if h <= w:
        nh, nw = 256, max(256, int(256 * w / h))
    else:
        nh, nw = max(256, int(256 * h / w)), 256
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    top, left = int(round((nh - 224) / 2.0)), int(round((nw - 224) / 2.0))
    x = x[:, :, top:top + 224, left:left + 224]
    return (x - 127.0) / 128.0


def effnet(folder, image):
    import timm

    raw = torch.load(os.path.join(folder, "efficientnet-lite0.pth"), map_location="cpu")
    src = [v for k, v in raw.items() if not k.endswith("num_batches_tracked")]
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    dst = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert len(src) == len(dst)
    state = model.state_dict()
    for k, v in zip(dst, src):
        assert state[k].shape == v.shape, (k, state[k].shape, v.shape)
        state[k] = v
    model.load_state_dict(state)
    x = preprocess(image)
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)[0]
        probs = model.get_classifier()(feats).softmax(-1)
        # the same network written out by hand, on the raw .pth: a check on the mapping
        mine, _ = effnet_lite(x, {k: v for k, v in raw.items()}, [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1])
    assert (mine[0] - feats).abs().max() < 1e-4, float((mine[0] - feats).abs().max())
    top = probs.topk(5)
    out = {
        "image": os.path.basename(image),
        "input_mean": float(x.mean()),
        "input_first": [float(v) for v in x[0, :, 100, 100]],
        "features": [float(v) for v in feats],
        "top5": [[int(i), float(p)] for p, i in zip(top.values, top.indices)],
    }
    with open(os.path.join(OUT, "effnet_reference.json"), "w") as f:
        json.dump(out, f)
    print("top-5:", out["top5"])


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    tiny_bert()
    tiny_effnet()
    if len(sys.argv) > 1:
        root = sys.argv[1]
        minilm(os.path.join(root, "minilm-0.1.0"))
        effnet(os.path.join(root, "effnet-lite0-0.1.0"), os.path.join(OUT, "chelsea.png"))

"""A gmu model's exported ONNX graph run op by op as PyTorch eager functions: the same model,
weights and scalers in PyTorch, for the benchmarks that compare gmu with what a user would run
instead (bench/python_predict.py, bench/serve_fastapi.py)."""

import onnx
import torch
from onnx import numpy_helper


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


class TorchGraph:
    """`TorchGraph(path)(inputs)`: the graph's outputs for `inputs` (name -> tensor), in graph order."""

    def __init__(self, path):
        self.graph = onnx.load(str(path)).graph
        self.weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in self.graph.initializer}
        self.outputs = [o.name for o in self.graph.output]

    def __call__(self, inputs):
        env = dict(self.weights)
        env.update(inputs)
        for node in self.graph.node:
            x = [env[i] if i else None for i in node.input]
            op = node.op_type
            if op in ("Add", "Sub", "Mul", "Div"):
                y = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[op](x[0], x[1])
            elif op == "MatMul":
                y = torch.matmul(x[0], x[1])
            elif op in ("Tanh", "Sigmoid"):
                y = torch.tanh(x[0]) if op == "Tanh" else torch.sigmoid(x[0])
            elif op == "Softmax":
                y = torch.softmax(x[0], dim=attr(node, "axis", -1))
            elif op == "Concat":
                y = torch.cat(x, dim=attr(node, "axis"))
            elif op == "BatchNormalization":
                y = torch.nn.functional.batch_norm(x[0], x[3], x[4], x[1], x[2], False, 0.0, attr(node, "epsilon", 1e-5))
            elif op == "Reshape":
                shape = [x[0].shape[i] if s == 0 else int(s) for i, s in enumerate(x[1].tolist())]
                y = x[0].reshape(shape)
            elif op == "ReduceMax":
                y = torch.amax(x[0], dim=tuple(attr(node, "axes")), keepdim=bool(attr(node, "keepdims", 1)))
            elif op == "ReduceSum":
                y = torch.sum(x[0], dim=tuple(x[1].tolist()), keepdim=bool(attr(node, "keepdims", 1)))
            elif op == "Transpose":
                y = x[0].permute(*attr(node, "perm"))
            elif op == "Unsqueeze":
                y = x[0]
                for a in sorted(x[1].tolist()):
                    y = y.unsqueeze(a)
            elif op == "Identity":
                y = x[0]
            else:
                raise SystemExit(f"bench/onnx_torch.py: op {op} not in the interpreter")
            env[node.output[0]] = y
        return [env[o] for o in self.outputs]

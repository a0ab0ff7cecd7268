"""PyTorch reference for `benches/mmimdb.rs`: the same GMU classifier at MM-IMDb's shape
(x_v 4096 + x_t 300 -> GMU 512 -> 23 sigmoid outputs, BCE, Adam eps 1e-8, batch 128, fp32, CPU).

    bench/.venv/bin/python bench/mmimdb_torch.py --threads 1 --steps 30 --reps 5

Prints one JSON line: median samples/s over `reps` timed runs of `steps` steps (after 3 warm-up steps).
"""
import argparse
import json
import time

import torch
from torch import nn

B, D_V, D_T, H, C = 128, 4096, 300, 512, 23


class Gmu(nn.Module):
    def __init__(self):
        super().__init__()
        self.v = nn.Linear(D_V, H)
        self.t = nn.Linear(D_T, H)
        self.z = nn.Linear(D_V + D_T, H)
        self.head = nn.Linear(H, C)
        for layer in [self.v, self.t, self.z, self.head]:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, xv, xt):
        hv, ht = torch.tanh(self.v(xv)), torch.tanh(self.t(xt))
        z = torch.sigmoid(self.z(torch.cat([xv, xt], 1)))
        return self.head(ht + z * (hv - ht))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Gmu()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    loss_fn = nn.BCEWithLogitsLoss()
    batches = [(torch.randn(B, D_V), torch.randn(B, D_T), (torch.rand(B, C) < 0.1).float()) for _ in range(8)]

    def run(n):
        for s in range(n):
            xv, xt, y = batches[s % len(batches)]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xv, xt), y)
            loss.backward()
            opt.step()

    run(3)
    rates = []
    for _ in range(a.reps):
        t = time.perf_counter()
        run(a.steps)
        rates.append(a.steps * B / (time.perf_counter() - t))
    rates.sort()
    q = lambda f: rates[round((len(rates) - 1) * f)]
    print(json.dumps({"impl": "gmu-pytorch", "torch": torch.__version__, "threads": str(a.threads), "batch": B,
                      "samples_per_s": round(q(0.5)), "q1": round(q(0.25)), "q3": round(q(0.75)),
                      "steps": a.steps, "reps": a.reps}))


if __name__ == "__main__":
    main()

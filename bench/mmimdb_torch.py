"""PyTorch reference for `benches/mmimdb.rs`: the same models at MM-IMDb's shape
(x_v 4096 + x_t 300 -> GMU 512 -> 23 sigmoid outputs, BCE, Adam eps 1e-8, batch 128, fp32, CPU).

--model gmu: the GMU with a linear head (what gmu's dense engine trains).
--model paper: the paper's model, as `gmu mmimdb` trains it by default: GMU 512 -> BN -> maxout
(512 units, 2 pieces) -> dropout 0.5 -> BN -> maxout -> dropout -> BN -> linear 23, with the
max-norm constraint (every weight matrix's per-unit norm clipped to 10) after each Adam step.
--fusion picks Table 2's other models with the same maxout MLP: concat (the joined views),
linear-sum (per view BN -> maxout 512, summed), visual or text (one view).

    bench/.venv/bin/python bench/mmimdb_torch.py --threads 1 --steps 30 --reps 5 [--model paper --fusion gmu]

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


class Maxout(nn.Module):
    def __init__(self, d_in, d_out, pieces=2):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out * pieces)
        self.d_out, self.pieces = d_out, pieces
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x):
        # unit j's pieces are outputs j*pieces .. (gmu's layout)
        return self.linear(x).view(x.shape[0], self.d_out, self.pieces).amax(2)


class MaxoutMlp(nn.Module):
    """BN -> maxout -> dropout 0.5 -> BN -> maxout -> dropout -> BN -> linear C (gmu's MaxoutMlp)."""

    def __init__(self, d_in):
        super().__init__()
        self.norm_in, self.norm_1, self.norm_2 = nn.BatchNorm1d(d_in), nn.BatchNorm1d(H), nn.BatchNorm1d(H)
        self.maxout_1, self.maxout_2 = Maxout(d_in, H), Maxout(H, H)
        self.drop = nn.Dropout(0.5)
        self.output = nn.Linear(H, C)
        nn.init.xavier_uniform_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x):
        x = self.drop(self.maxout_1(self.norm_in(x)))
        x = self.drop(self.maxout_2(self.norm_1(x)))
        return self.output(self.norm_2(x))


class Paper(nn.Module):
    """The paper's Table 2 models, each with the maxout MLP: gmu, concat, linear-sum, visual, text."""

    def __init__(self, fusion):
        super().__init__()
        self.fusion = fusion
        if fusion == "gmu":
            self.gmu = Gmu()
            self.gmu.head = nn.Identity()
        if fusion == "linear-sum":
            self.norms = nn.ModuleList([nn.BatchNorm1d(D_V), nn.BatchNorm1d(D_T)])
            self.projections = nn.ModuleList([Maxout(D_V, H), Maxout(D_T, H)])
        d_in = {"gmu": H, "linear-sum": H, "concat": D_V + D_T, "visual": D_V, "text": D_T}[fusion]
        self.mlp = MaxoutMlp(d_in)

    def forward(self, xv, xt):
        if self.fusion == "gmu":
            x = self.gmu(xv, xt)
        elif self.fusion == "concat":
            x = torch.cat([xv, xt], 1)
        elif self.fusion == "linear-sum":
            x = sum(p(n(v)) for v, n, p in zip([xv, xt], self.norms, self.projections))
        else:
            x = xv if self.fusion == "visual" else xt
        return self.mlp(x)


@torch.no_grad()
def max_norm(model, limit=10.0):
    for p in model.parameters():
        if p.dim() == 2:  # [out, in]: one row per unit
            p.mul_(limit / p.norm(dim=1, keepdim=True).clamp_min(limit))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--model", choices=["gmu", "paper"], default="gmu")
    p.add_argument("--fusion", choices=["gmu", "concat", "linear-sum", "visual", "text"], default=["gmu"], nargs="+",
                   help="with --model paper: which of Table 2's models (several: one after the other)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for fusion in (a.fusion if a.model == "paper" else ["gmu"]):
        bench(a, fusion)


def bench(a, fusion):
    torch.manual_seed(0)
    model = Paper(fusion) if a.model == "paper" else Gmu()
    model.train()
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
            if a.model == "paper":
                max_norm(model)

    run(3)
    rates = []
    for _ in range(a.reps):
        t = time.perf_counter()
        run(a.steps)
        rates.append(a.steps * B / (time.perf_counter() - t))
    rates.sort()
    q = lambda f: rates[round((len(rates) - 1) * f)]
    name = f"{fusion}-maxout-mlp-pytorch" if a.model == "paper" else "gmu-pytorch"
    print(json.dumps({"impl": name, "torch": torch.__version__, "threads": str(a.threads), "batch": B,
                      "samples_per_s": round(q(0.5)), "q1": round(q(0.25)), "q3": round(q(0.75)),
                      "steps": a.steps, "reps": a.reps}), flush=True)

if __name__ == "__main__":
    main()

"""PyTorch reference for `benches/cnn.rs`: the small Twemoji CNN (two 3x3 conv 'same' -> ReLU ->
2x2 max pool stages, 16 and 32 channels, linear -> ReLU to 64) with a linear classifier to 9
classes, softmax cross-entropy, Adam eps 1e-8, batch 64 of 3x32x32 images, fp32, CPU.

    bench/.venv/bin/python bench/cnn_torch.py --threads 1 --steps 30 --reps 5

Prints one JSON line: median samples/s over `reps` runs of `steps` steps (after 3 warm-up
steps), and the mean milliseconds per stage (forward + loss, backward, Adam).
"""
import argparse
import json
import time

import torch
from torch import nn

B, C = 64, 9


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, C))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    loss_fn = nn.CrossEntropyLoss()
    batches = [(torch.rand(B, 3, 32, 32) * 2 - 1, torch.tensor([(i * 7 + k) % C for i in range(B)])) for k in range(8)]
    stages = [0.0, 0.0, 0.0]
    rates = []
    for rep in range(a.reps + 1):
        n = 3 if rep == 0 else a.steps
        start = time.perf_counter()
        for s in range(n):
            x, y = batches[s % len(batches)]
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            if rep > 0:
                for i, d in enumerate([t1 - t0, t2 - t1, t3 - t2]):
                    stages[i] += d * 1e3 / (a.steps * a.reps)
        if rep > 0:
            rates.append(n * B / (time.perf_counter() - start))
    rates.sort()
    print(json.dumps({"impl": "cnn-pytorch", "threads": str(a.threads), "batch": B, "samples_per_s": round(rates[len(rates) // 2]),
                      "ms_per_step": {"forward_and_loss": round(stages[0], 2), "backward": round(stages[1], 2), "adam": round(stages[2], 2)}}))


if __name__ == "__main__":
    main()

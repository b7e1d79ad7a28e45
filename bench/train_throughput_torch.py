"""PyTorch reference for bench/train-throughput.ts (not a project dependency; not run by CI).

Trains one shape the way descent's engine does (a seeded permutation per epoch, a gathered batch,
forward, softmax cross-entropy, backward, Adam at 1e-3) on synthetic data and prints one JSON line:
{"shape", "batch", "threads", "torch", "blas", "windows": [samples/s, ...]}.

    /usr/bin/python3 bench/train_throughput_torch.py SHAPE BATCH STEPS_PER_WINDOW WINDOWS [THREADS]

SHAPE is mlp (784-256-128-10), cnn (conv3x3x16, maxpool 2, conv3x3x32, dense 10 on 28x28x1) or
lstm (LSTM(64) on 50 steps of 16 features, dense 10). The first window is a warm-up.
"""

import json
import sys
import time

import torch
from torch import nn


def model_for(shape):
    if shape == "mlp":
        return nn.Sequential(
            nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
        ), (784,)
    if shape == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3), nn.ReLU(), nn.Flatten(), nn.Linear(11 * 11 * 32, 10),
        ), (1, 28, 28)
    if shape == "lstm":
        return LastStep(), (50, 16)
    raise SystemExit(f"unknown shape {shape}")


class LastStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 64, batch_first=True)
        self.out = nn.Linear(64, 10)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.out(h[-1])


def blas():
    """Which BLAS library the process loaded (torch's matmuls on CPU go through it)."""
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "libblas" in line or "mkl" in line}
    return ", ".join(sorted(lib.rsplit("/", 2)[-2] for lib in libs)) or "?"


def main():
    shape, batch, steps, windows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model, input_shape = model_for(shape)
    n = batch * steps
    x = torch.rand((n, *input_shape))
    y = torch.randint(0, 10, (n,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    rates = []
    for _ in range(windows + 1):
        order = torch.randperm(n)
        started = time.perf_counter()
        total = torch.zeros(())
        correct = torch.zeros(())
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            xb, yb = x[idx], y[idx]
            optimizer.zero_grad(set_to_none=True)
            pred = model(xb)
            loss = loss_fn(pred, yb)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                total += loss.detach() * len(idx)
                correct += (pred.argmax(-1) == yb).sum()
        float(total)  # one read per window, as the engine reads its sums once per epoch
        rates.append(n / (time.perf_counter() - started))
    print(json.dumps({
        "shape": shape, "batch": batch, "threads": threads, "torch": torch.__version__, "blas": blas(),
        "windows": rates[1:],
    }))


if __name__ == "__main__":
    main()

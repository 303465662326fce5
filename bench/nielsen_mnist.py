#!/usr/bin/env python3
"""Nielsen's network.py settings on MNIST-format IDX data, in PyTorch, for comparison with
`backprop train --data DIR --hidden 30 --activation sigmoid --cost quadratic --init large
--lr 3.0 --batch 10 --epochs 30`.

784-30-10, sigmoid hidden and output, C = 1/2 ||a - y||^2 averaged over the mini-batch,
weights and biases N(0, 1), plain SGD with eta = 3.0, mini-batches of 10, inputs / 255.
Prints the test accuracy after each epoch, and a last JSON line.

    pip install torch numpy
    python3 bench/nielsen_mnist.py DIR [--epochs 30] [--seed 1] [--threads 1]
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(directory, name):
    for candidate in (name, name + ".gz"):
        p = os.path.join(directory, candidate)
        if os.path.exists(p):
            return p
    raise SystemExit(f"{directory}: no {name} or {name}.gz")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    def load(prefix):
        x = read_idx(find(args.data, f"{prefix}-images-idx3-ubyte"))
        y = read_idx(find(args.data, f"{prefix}-labels-idx1-ubyte"))
        x = torch.tensor(x.reshape(len(x), -1), dtype=torch.float32) / 255.0
        return x, torch.tensor(y, dtype=torch.long)

    x_train, y_train = load("train")
    x_test, y_test = load("t10k")
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 30), torch.nn.Sigmoid(), torch.nn.Linear(30, 10), torch.nn.Sigmoid()
    )
    with torch.no_grad():  # Nielsen's "large" initialisation: N(0, 1) weights and biases
        for p in model.parameters():
            p.normal_(0.0, 1.0)
    opt = torch.optim.SGD(model.parameters(), lr=3.0)
    eye = torch.eye(10)
    start = time.perf_counter()
    acc = 0.0
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(x_train))
        for i in range(0, len(order), 10):
            idx = order[i:i + 10]
            a = model(x_train[idx])
            cost = 0.5 * ((a - eye[y_train[idx]]) ** 2).sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            cost.backward()
            opt.step()
        with torch.no_grad():
            acc = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
        print(f"epoch {epoch}/{args.epochs}: test accuracy {100 * acc:.2f}%", flush=True)
    print(json.dumps({"impl": "pytorch", "torch_version": torch.__version__, "test_accuracy": acc,
                      "epochs": args.epochs, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()

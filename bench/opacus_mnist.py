#!/usr/bin/env python3
"""Private training of a 784-100-10 network on MNIST with Opacus, for comparison with

    backprop train --data DIR --hidden 100 --activation relu --batch 240 --epochs 10 \
        --lr LR --dp-epsilon 3 --dp-delta 1e-5 --dp-clip 1

784-100-10, ReLU hidden, log-softmax output with the negative log-likelihood (the
log-likelihood cost of a softmax layer), PyTorch's nn.Linear initialisation, inputs / 255,
plain SGD. Opacus's make_private as it is by default: Poisson sampling at rate
q = 1 / len(data loader) = batch / N, per-example gradients clipped to --clip (flat), noise
of standard deviation sigma * clip added to the sum, divided by the expected batch size,
and the RDP accountant. --sigma is the noise multiplier; without it the smallest sigma
that keeps epsilon within --epsilon at --delta after --epochs is found
(get_noise_multiplier, what make_private_with_epsilon does). Prints the test accuracy and
epsilon after each epoch, and a last JSON line.

    pip install torch opacus numpy
    python3 bench/opacus_mnist.py DIR [--epochs 10] [--lr 0.5] [--epsilon 3] [--seed 1]
"""
import argparse
import gzip
import json
import os
import struct
import time
import warnings

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.accountants.utils import get_noise_multiplier

warnings.filterwarnings("ignore")


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
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=240)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--sigma", type=float, default=None)
    ap.add_argument("--epsilon", type=float, default=3.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--hidden", type=int, default=100)
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
    train = torch.utils.data.TensorDataset(x_train, y_train)
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch)
    q = 1.0 / len(loader)
    steps = len(loader) * args.epochs
    sigma = args.sigma
    if sigma is None:
        sigma = get_noise_multiplier(target_epsilon=args.epsilon, target_delta=args.delta,
                                     sample_rate=q, steps=steps, accountant="rdp")
    model = torch.nn.Sequential(
        torch.nn.Linear(784, args.hidden), torch.nn.ReLU(),
        torch.nn.Linear(args.hidden, 10), torch.nn.LogSoftmax(dim=1),
    )
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    engine = PrivacyEngine(accountant="rdp")
    model, opt, loader = engine.make_private(
        module=model, optimizer=opt, data_loader=loader, noise_multiplier=sigma,
        max_grad_norm=args.clip, poisson_sampling=True,
    )
    nll = torch.nn.NLLLoss()
    start = time.perf_counter()
    acc, eps = 0.0, 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            loss = nll(model(x), y)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
        eps = engine.get_epsilon(args.delta)
        print(f"epoch {epoch}/{args.epochs}: test accuracy {100 * acc:.2f}%, "
              f"epsilon {eps:.4f}", flush=True)
    print(json.dumps({
        "test_accuracy": acc, "epsilon": eps, "delta": args.delta, "noise": sigma,
        "sample_rate": q, "steps": steps, "clip": args.clip, "lr": args.lr,
        "epochs": args.epochs, "batch": args.batch, "seconds": time.perf_counter() - start,
    }))


if __name__ == "__main__":
    main()

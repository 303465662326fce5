#!/usr/bin/env python3
"""LeNet-5 or a small convnet trained on MNIST-format IDX data in PyTorch, for comparison
with `backprop train --arch lenet5|convnet`.

The models are pytorch_arch.py's (PyTorch's default initialisation, seeded), the cost
log-softmax + NLL averaged over the mini-batch. Inputs are the pixels / 255, nothing else
(no mean/std normalisation, no augmentation). Each epoch shuffles the 60,000 training
images (a generator seeded with --seed) and takes them in mini-batches of --batch, the last
one smaller (60,000 = 937 x 64 + 32). After each epoch it prints the test accuracy on the
10,000 test images, the training seconds so far (evaluation not counted) and the elapsed
seconds; at the end, the training seconds at which the test accuracy first reached 99.0%,
and a last JSON line.

Defaults: Adam, lr 1e-3 (betas 0.9, 0.999, eps 1e-8), batch 64, 15 epochs, constant lr.

    pip install torch numpy
    python3 bench/mnist_cnn.py DIR --arch lenet5 [--epochs 15] [--batch 64] [--lr 1e-3]
        [--optimizer adam|sgd|momentum|nesterov] [--momentum 0.9] [--seed 1] [--threads 1]
        [--schedule constant|cosine] [--stop-at-target]
"""
import argparse
import json
import time

import torch
from torch import nn

from nielsen_mnist import find, read_idx
from pytorch_arch import CONVNET, LENET5, build, peak_rss_bytes

TARGET = 0.99
EVAL_BATCH = 1000  # the test images in slices, so the convnet's activations stay small


def load(directory, prefix, count):
    """Images as count x 1 x 28 x 28 float32 / 255 and labels as int64; refuses other files."""
    pi = find(directory, f"{prefix}-images-idx3-ubyte")
    pl = find(directory, f"{prefix}-labels-idx1-ubyte")
    x, y = read_idx(pi), read_idx(pl)
    if x.shape != (count, 28, 28):
        raise SystemExit(f"{pi}: shape {x.shape}, expected ({count}, 28, 28)")
    if y.shape != (count,) or y.max() > 9:
        raise SystemExit(f"{pl}: shape {y.shape} (max {y.max()}), expected {count} labels 0-9")
    x = torch.tensor(x, dtype=torch.float32).reshape(count, 1, 28, 28) / 255.0
    return x, torch.tensor(y, dtype=torch.long)


def make_optimizer(args, params):
    if args.optimizer == "adam":
        return torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    return torch.optim.SGD(params, lr=args.lr, weight_decay=args.weight_decay,
                           momentum=0.0 if args.optimizer == "sgd" else args.momentum,
                           nesterov=args.optimizer == "nesterov")


def accuracy(model, x, y):
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), EVAL_BATCH):
            correct += (model(x[i:i + EVAL_BATCH]).argmax(1) == y[i:i + EVAL_BATCH]).sum().item()
    model.train()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="directory with the four MNIST IDX files (plain or .gz)")
    ap.add_argument("--arch", default=LENET5, choices=[LENET5, CONVNET])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--optimizer", default="adam", choices=["adam", "sgd", "momentum", "nesterov"])
    ap.add_argument("--lr", type=float, default=None,
                    help="learning rate (default 1e-3 for adam, 0.05 for the SGD kinds)")
    ap.add_argument("--momentum", type=float, default=0.9, help="for momentum and nesterov")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--schedule", default="constant", choices=["constant", "cosine"],
                    help="cosine: lr x (1 + cos(pi (epoch - 1) / epochs)) / 2 at each epoch, "
                         "as backprop's --schedule cosine (CosineAnnealingLR stepped per epoch)")
    ap.add_argument("--stop-at-target", action="store_true",
                    help="stop after the first epoch whose test accuracy reaches 99.0%%")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None,
                    help="train on the first N training images only (for smoke tests)")
    args = ap.parse_args()
    if args.lr is None:
        args.lr = 1e-3 if args.optimizer == "adam" else 0.05
    if args.epochs < 1 or args.batch < 1 or args.threads < 1:
        ap.error("--epochs, --batch and --threads must be >= 1")
    if not args.lr > 0 or not 0 <= args.momentum < 1 or not args.weight_decay >= 0:
        ap.error("--lr must be > 0, --momentum in [0, 1), --weight-decay >= 0")
    if args.limit is not None and not 1 <= args.limit <= 60_000:
        ap.error("--limit must be in 1..60000")
    torch.set_num_threads(args.threads)

    x_train, y_train = load(args.data, "train", 60_000)
    x_test, y_test = load(args.data, "t10k", 10_000)
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    torch.manual_seed(args.seed)
    model = build(args.arch)
    opt = make_optimizer(args, model.parameters())
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
                if args.schedule == "cosine" else None)
    cost = nn.CrossEntropyLoss()  # log-softmax + NLL, mean over the mini-batch
    shuffle = torch.Generator().manual_seed(args.seed)

    start = time.perf_counter()
    train_seconds = 0.0
    accuracies, losses = [], []
    reached = None  # (epoch, training seconds) when the test accuracy first reached TARGET
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(x_train), generator=shuffle)
        total, batches = 0.0, 0
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            opt.zero_grad(set_to_none=True)
            j = cost(model(x_train[idx]), y_train[idx])
            j.backward()
            opt.step()
            total += j.item()
            batches += 1
        train_seconds += time.perf_counter() - t0
        if schedule is not None:
            schedule.step()
        acc = accuracy(model, x_test, y_test)
        accuracies.append(acc)
        losses.append(total / batches)
        if reached is None and acc >= TARGET:
            # training alone, and training + evaluation (what backprop's --log `seconds` sums)
            reached = (epoch, train_seconds, time.perf_counter() - start)
        print(f"epoch {epoch}/{args.epochs}: test accuracy {100 * acc:.2f}%  "
              f"train loss {total / batches:.4f}  training {train_seconds:.1f} s  "
              f"elapsed {time.perf_counter() - start:.1f} s", flush=True)
        if reached and args.stop_at_target:
            break
    if reached:
        print(f"reached {100 * TARGET:.1f}% after epoch {reached[0]}, "
              f"{reached[1]:.1f} s of training, {reached[2]:.1f} s with evaluation", flush=True)
    else:
        print(f"did not reach {100 * TARGET:.1f}% in {args.epochs} epochs", flush=True)
    print(json.dumps({
        "impl": "pytorch", "torch_version": torch.__version__, "arch": args.arch,
        "optimizer": args.optimizer, "lr": args.lr,
        "momentum": args.momentum if args.optimizer in ("momentum", "nesterov") else None,
        "weight_decay": args.weight_decay, "schedule": args.schedule, "batch": args.batch,
        "epochs": args.epochs,
        "seed": args.seed, "threads": args.threads, "train_examples": len(x_train),
        "test_accuracy": accuracies[-1], "best_test_accuracy": max(accuracies),
        "test_accuracy_per_epoch": accuracies, "train_loss_per_epoch": losses,
        "target_accuracy": TARGET,
        "epoch_to_target": reached[0] if reached else None,
        "train_seconds_to_target": reached[1] if reached else None,
        "elapsed_seconds_to_target": reached[2] if reached else None,
        "train_seconds": train_seconds, "seconds": time.perf_counter() - start,
        "peak_rss_bytes": peak_rss_bytes(),
    }), flush=True)


if __name__ == "__main__":
    main()

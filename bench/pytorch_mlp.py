#!/usr/bin/env python3
"""The three networks of `backprop bench`, trained the way a fair PyTorch user would.

Same data shape and distribution (10,240 examples, 784 inputs uniform in [0, 1), 10
classes uniform, fixed seed), same step definition (forward, cost, backward, SGD update
of all weights and biases), float32, CPU. Prints one JSON object per config per line
with `--json`, using the keys of `backprop bench --json`.

    pip install torch numpy
    python3 bench/pytorch_mlp.py --config all --threads 1 --json
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

N_EXAMPLES = 10_240
FEATURES = 784
CLASSES = 10

# name -> (sizes, hidden activation, output, cost, lr, batch); the table of #5.
CONFIGS = {
    "nielsen": dict(sizes=[784, 30, 10], hidden="sigmoid", output="sigmoid",
                    cost="quadratic", lr=3.0, batch=10),
    "small": dict(sizes=[784, 128, 64, 10], hidden="relu", output="softmax",
                  cost="log-likelihood", lr=0.1, batch=64),
    "wide": dict(sizes=[784, 1024, 1024, 10], hidden="relu", output="softmax",
                 cost="log-likelihood", lr=0.1, batch=256),
}


def build(cfg):
    """nn.Linear layers (default init), hidden activation between them; the output
    activation is part of the cost below (sigmoid + quadratic, log-softmax + NLL)."""
    layers = []
    sizes = cfg["sizes"]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.Sigmoid() if cfg["hidden"] == "sigmoid" else nn.ReLU())
    return nn.Sequential(*layers)


def make_data(seed):
    """x: n x 784 uniform [0,1) float32; labels uniform in 0..10; one-hot targets."""
    rng = np.random.default_rng(seed)
    x = rng.random((N_EXAMPLES, FEATURES), dtype=np.float32)
    labels = rng.integers(0, CLASSES, size=N_EXAMPLES)
    onehot = np.zeros((N_EXAMPLES, CLASSES), dtype=np.float32)
    onehot[np.arange(N_EXAMPLES), labels] = 1.0
    return torch.from_numpy(x), torch.from_numpy(labels), torch.from_numpy(onehot)


def make_step(cfg, model, x, labels, onehot):
    """The training step for one mini-batch index (wrapping around the data)."""
    batch = cfg["batch"]
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"])
    n_batches = N_EXAMPLES // batch
    xs = [x[i * batch:(i + 1) * batch] for i in range(n_batches)]
    if cfg["cost"] == "quadratic":
        ys = [onehot[i * batch:(i + 1) * batch] for i in range(n_batches)]

        def cost(z, y):
            # The post's C = 1/2 ||a - y||^2 per example, J its mean over the batch
            # (MSELoss would also average over the outputs).
            a = torch.sigmoid(z)
            return 0.5 * ((a - y) ** 2).sum(1).mean()
    else:
        ys = [labels[i * batch:(i + 1) * batch] for i in range(n_batches)]
        log_softmax = nn.LogSoftmax(dim=1)
        nll = nn.NLLLoss()

        def cost(z, y):
            return nll(log_softmax(z), y)

    def train(i):
        k = i % n_batches
        opt.zero_grad(set_to_none=True)
        j = cost(model(xs[k]), ys[k])
        j.backward()
        opt.step()

    if cfg["cost"] == "quadratic":
        def infer(i):
            return torch.sigmoid(model(xs[i % n_batches]))
    else:
        def infer(i):
            return log_softmax(model(xs[i % n_batches]))

    return train, infer


# A repeat in which this process's threads waited this share of the wall time for a CPU
# was disturbed by another process: run it again (as src/bench.rs does).
CONTENDED = 0.05


def runqueue_wait_seconds():
    """Seconds this process's threads spent runnable but not running; None off Linux."""
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the thread exited meanwhile
    return total * 1e-9


def measure(step, batch, seconds, repeats, warmup, retries):
    """Samples per second per repeat: each repeat runs whole steps until `seconds` pass.
    Returns (rates, redone, contended) like src/bench.rs's measure."""
    i = 0
    for _ in range(warmup):
        step(i)
        i += 1
    rates, redone, contended = [], 0, 0
    while len(rates) < repeats:
        w0 = runqueue_wait_seconds()
        steps = 0
        t0 = time.perf_counter()
        while True:
            step(i)
            i += 1
            steps += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
        w1 = runqueue_wait_seconds()
        if w0 is not None and w1 is not None and w1 - w0 > CONTENDED * elapsed:
            if redone < retries:
                redone += 1
                continue
            contended += 1
        rates.append(steps * batch / elapsed)
    return rates, redone, contended


def peak_rss_bytes():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return r if sys.platform == "darwin" else r * 1024


def logical_cores():
    """Cores this process may run on (what Rust's available_parallelism reports)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(name, args):
    cfg = CONFIGS[name]
    torch.manual_seed(args.seed)
    model = build(cfg)
    x, labels, onehot = make_data(args.seed)
    train, infer = make_step(cfg, model, x, labels, onehot)
    batch = cfg["batch"]
    timing = (batch, args.seconds, args.repeats, args.warmup, args.retries)
    train_rates, redone_t, contended_t = measure(train, *timing)
    with torch.inference_mode():
        infer_rates, redone_i, contended_i = measure(infer, *timing)
    return {
        "config": name,
        "threads": args.threads,
        "train_samples_per_sec": statistics.median(train_rates),
        "infer_samples_per_sec": statistics.median(infer_rates),
        "peak_rss_bytes": peak_rss_bytes(),
        "impl": "pytorch",
        "torch_version": torch.__version__,
        "repeats": args.repeats,
        "seconds_per_repeat": args.seconds,
        "redone_repeats": redone_t + redone_i,
        "contended_repeats": contended_t + contended_i,
        "train_repeats_samples_per_sec": train_rates,
        "infer_repeats_samples_per_sec": infer_rates,
        "cpu_model": cpu_model(),
        "logical_cores": logical_cores(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="all", choices=[*CONFIGS, "all"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=0.5,
                   help="minimum length of one timed repeat (default 0.5)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    p.add_argument("--retries", type=int, default=10,
                   help="repeats to run again when another process took the CPU (default 10)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", action="store_true", help="one JSON object per config per line")
    args = p.parse_args()
    if args.threads < 1 or args.seconds <= 0 or args.repeats < 1 or args.warmup < 0 \
            or args.retries < 0:
        p.error("--threads and --repeats must be >= 1, --seconds > 0, --warmup and --retries >= 0")
    torch.set_num_threads(args.threads)
    names = list(CONFIGS) if args.config == "all" else [args.config]
    for name in names:
        r = run(name, args)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{name:8} threads {r['threads']}  train {r['train_samples_per_sec']:>10,.0f} "
                  f"samples/s  infer {r['infer_samples_per_sec']:>11,.0f} samples/s  "
                  f"peak RSS {r['peak_rss_bytes'] / 2**20:,.0f} MiB  "
                  f"(repeats redone {r['redone_repeats']}, contended {r['contended_repeats']})",
                  flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The convolutional and recurrent networks of `backprop bench`, trained the way a fair
PyTorch user would: the counterparts of `backprop bench --config lenet5|convnet|char-lstm`.

The step is the one of `pytorch_mlp.py`: forward, cost, backward, SGD update of every
parameter, float32, CPU, mini-batches of synthetic data in memory, wrapping around.

- lenet5, convnet: 10,240 images of 1x28x28 inputs uniform in [0, 1) and 10 classes uniform
  (the same draws as pytorch_mlp.py's data, shaped as images); log-softmax + NLL, batch 64.
- char-lstm: 10,240 sequences of 50 input ids and 50 target ids, uniform over V = 65;
  cross-entropy (log-softmax + NLL) averaged over all N x T positions, zero initial state,
  batch 50. A sample is one sequence (50 characters).

GFLOP/s counts only the multiply-adds of the convolutions, linear layers and LSTM matrix
products (M per sample, the MACs), 2 FLOP each: forward 2 M FLOP per sample, training
3 x 2 M = 6 M (the backward pass taken as twice the forward, as is usual; PyTorch skips the
first layer's input gradient, so its true count is a little lower). Activations, pooling,
the cost, LSTM gates and the update are not counted.

Prints one JSON object per config per line with `--json`, with the keys of
`pytorch_mlp.py --json` and `backprop bench --json` where they exist.

    pip install torch numpy
    python3 bench/pytorch_arch.py --config all --threads 1 --json
"""

import argparse
import json
import os
import statistics

import numpy as np
import torch
from torch import nn

# Timing, the contention check and the machine description are pytorch_mlp.py's, so both
# scripts measure alike.
from pytorch_mlp import cpu_model, logical_cores, measure, peak_rss_bytes

N_EXAMPLES = 10_240
CLASSES = 10
VOCAB = 65
SEQ_LEN = 50

LENET5 = "lenet5"
CONVNET = "convnet"
CHAR_LSTM = "char-lstm"

# name -> (arch as `backprop` and PyTorch write it, lr, batch)
CONFIGS = {
    LENET5: dict(arch="Conv2d(1, 6, 5, padding=2), ReLU(), MaxPool2d(2), Conv2d(6, 16, 5), "
                      "ReLU(), MaxPool2d(2), Flatten(), Linear(400, 120), ReLU(), "
                      "Linear(120, 84), ReLU(), Linear(84, 10)",
                 lr=0.1, batch=64),
    CONVNET: dict(arch="Conv2d(1, 32, 3), ReLU(), Conv2d(32, 64, 3), ReLU(), MaxPool2d(2), "
                       "Flatten(), Linear(9216, 128), ReLU(), Linear(128, 10)",
                  lr=0.1, batch=64),
    CHAR_LSTM: dict(arch=f"Embedding({VOCAB}, 64), LSTM(64, 128, num_layers=2, "
                         f"batch_first=True), Linear(128, {VOCAB})",
                    lr=0.1, batch=50),
}


class CharLSTM(nn.Module):
    """Embedding -> 2-layer LSTM -> Linear on every position; logits N x T x V."""

    def __init__(self, vocab=VOCAB, embed=64, hidden=128, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ids):
        h, _ = self.lstm(self.embed(ids))  # zero initial state
        return self.out(h)


def build(name):
    """The model with PyTorch's default initialisation (seeded by the caller)."""
    if name == LENET5:
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    if name == CONVNET:
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10))
    return CharLSTM()


def make_data(name, seed):
    """Inputs and targets, N_EXAMPLES samples."""
    rng = np.random.default_rng(seed)
    if name == CHAR_LSTM:
        ids = rng.integers(0, VOCAB, size=(N_EXAMPLES, SEQ_LEN))
        targets = rng.integers(0, VOCAB, size=(N_EXAMPLES, SEQ_LEN))
        return torch.from_numpy(ids), torch.from_numpy(targets)
    x = rng.random((N_EXAMPLES, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, CLASSES, size=N_EXAMPLES)
    return torch.from_numpy(x), torch.from_numpy(labels)


def macs_per_sample(model, x1):
    """Multiply-adds of the conv, linear and LSTM matrix products for one sample `x1`
    (a batch of 1), found by following the shapes through a forward pass."""
    total = 0

    def hook(m, inputs, output):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            total += output.numel() * k
        elif isinstance(m, nn.Linear):
            # Applied to every leading position (the LSTM's T outputs included).
            total += output.numel() // m.out_features * m.in_features * m.out_features
        elif isinstance(m, nn.LSTM):
            steps = output[0].shape[1] if m.batch_first else output[0].shape[0]
            h = m.hidden_size
            for layer in range(m.num_layers):
                i = m.input_size if layer == 0 else h
                total += steps * 4 * h * (i + h)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, nn.LSTM))]
    with torch.no_grad():
        model(x1)
    for h in handles:
        h.remove()
    return total


def make_step(name, model, x, y):
    """The training and inference steps for one mini-batch index (wrapping around)."""
    cfg = CONFIGS[name]
    batch = cfg["batch"]
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"])
    n_batches = N_EXAMPLES // batch
    xs = [x[i * batch:(i + 1) * batch] for i in range(n_batches)]
    ys = [y[i * batch:(i + 1) * batch].reshape(-1) for i in range(n_batches)]
    log_softmax = nn.LogSoftmax(dim=-1)
    nll = nn.NLLLoss()  # mean over the batch (over all N x T positions for char-lstm)

    def logits(k):
        z = model(xs[k])
        return z.reshape(-1, z.shape[-1])

    def train(i):
        k = i % n_batches
        opt.zero_grad(set_to_none=True)
        j = nll(log_softmax(logits(k)), ys[k])
        j.backward()
        opt.step()

    def infer(i):
        return log_softmax(logits(i % n_batches))

    return train, infer


def run(name, args):
    cfg = CONFIGS[name]
    torch.manual_seed(args.seed)
    model = build(name)
    x, y = make_data(name, args.seed)
    macs = macs_per_sample(model, x[:1])
    train, infer = make_step(name, model, x, y)
    batch = cfg["batch"]
    timing = (batch, args.seconds, args.repeats, args.warmup, args.retries)
    train_rates, redone_t, contended_t = measure(train, *timing)
    with torch.inference_mode():
        infer_rates, redone_i, contended_i = measure(infer, *timing)
    train_rate = statistics.median(train_rates)
    infer_rate = statistics.median(infer_rates)
    return {
        "config": name,
        "threads": args.threads,
        "train_samples_per_sec": train_rate,
        "infer_samples_per_sec": infer_rate,
        "peak_rss_bytes": peak_rss_bytes(),
        "impl": "pytorch",
        "torch_version": torch.__version__,
        "arch": cfg["arch"],
        "batch": batch,
        "lr": cfg["lr"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "macs_per_sample": macs,
        "train_gflop_per_sec": train_rate * 6 * macs / 1e9,
        "infer_gflop_per_sec": infer_rate * 2 * macs / 1e9,
        "repeats": args.repeats,
        "seconds_per_repeat": args.seconds,
        "redone_repeats": redone_t + redone_i,
        "contended_repeats": contended_t + contended_i,
        "train_repeats_samples_per_sec": train_rates,
        "infer_repeats_samples_per_sec": infer_rates,
        "cpu_model": cpu_model(),
        "logical_cores": logical_cores(),
        # PyTorch's defaults are kept, as a user would; this says whether the caller set it.
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
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
            print(f"{name:9} threads {r['threads']}  train {r['train_samples_per_sec']:>9,.0f} "
                  f"samples/s ({r['train_gflop_per_sec']:5.1f} GFLOP/s)  "
                  f"infer {r['infer_samples_per_sec']:>9,.0f} samples/s "
                  f"({r['infer_gflop_per_sec']:5.1f} GFLOP/s)  "
                  f"peak RSS {r['peak_rss_bytes'] / 2**20:,.0f} MiB  "
                  f"(repeats redone {r['redone_repeats']}, contended {r['contended_repeats']})",
                  flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The char-rnn model trained on a text file in PyTorch, for comparison with
`backprop train --arch char-lstm --data text:PATH`.

Model: Embedding(V, 64), LSTM(64, 128, num_layers=2, batch_first=True), Linear(128, V),
PyTorch's default initialisation (seeded), zero initial state for every sequence (no state
carried between sequences), cross-entropy averaged over all N x T positions of a
mini-batch, Adam (betas 0.9, 0.999, eps 1e-8), no gradient clipping.

Data, exactly as src/data/text.rs prepares it:
- the file's bytes, gunzipped if they start with 1f 8b, decoded as UTF-8 (strict; no newline
  translation, a byte-order mark is a character);
- vocabulary: the distinct characters sorted by code point; a character's id is its rank;
- the last round(0.1 n) characters (n characters in all, half rounded away from zero) are
  the test part, the rest the training part;
- sequences of T = --seq-len: sequence s has inputs ids[sT : sT+T] and targets
  ids[sT+1 : sT+T+1] for s = 0 .. floor((m - 1) / T) - 1, m the part's length (they do
  not overlap; a tail shorter than T + 1 is dropped);
- each epoch shuffles the training sequences (torch.randperm, a generator seeded with
  --seed) and takes them in mini-batches of --batch, the last one smaller.

Per epoch it prints the training loss (mean cross-entropy over every position trained on in
the epoch, while training) and the test loss (the test part cut into sequences the same way,
mean over all its positions, after the epoch), both in nats per character, with the
training seconds (evaluation not counted) and elapsed seconds; then a last JSON line.
`--sample N` then prints N characters generated at temperature 0.8 after --prime.

    pip install torch numpy
    python3 bench/char_lstm.py shakespeare [--epochs 5] [--seq-len 64] [--batch 50]
        [--lr 2e-3] [--seed 1] [--threads 1] [--sample 500]
"""
import argparse
import gzip
import io
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn

from pytorch_arch import CharLSTM, peak_rss_bytes

SHAKESPEARE = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                                            "shakespeare", "tragedies.txt.gz"))
TEST_FRACTION = 0.1
MIN_CHARS = 20  # as src/data/text.rs
MAX_TEXT_BYTES = 1 << 30
EVAL_BATCH = 500  # test sequences per forward pass (each starts from a zero state anyway)


def fail(msg):
    print(f"char_lstm.py: {msg}", file=sys.stderr)
    sys.exit(1)


def round_half_away(x):
    """Rust's f64::round for x >= 0 (Python's round() rounds half to even)."""
    f = math.floor(x)
    return f + 1 if x - f >= 0.5 else f


def read_text(path):
    """(vocabulary, training ids, test ids) as src/data/text.rs's Text::read makes them."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TEXT_BYTES + 1)
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
                data = g.read(MAX_TEXT_BYTES + 1)
        except (OSError, EOFError) as e:
            fail(f"{path}: {e}")
    if len(data) > MAX_TEXT_BYTES:
        fail(f"{path}: more than the {MAX_TEXT_BYTES} bytes a text may have")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        fail(f"{path}: not UTF-8 text (invalid byte at offset {e.start})")
    if len(text) < MIN_CHARS:
        fail(f"{path}: {len(text)} characters is too short (at least {MIN_CHARS} are needed)")
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
    test_len = round_half_away(len(ids) * TEST_FRACTION)
    return vocab, ids[:len(ids) - test_len], ids[len(ids) - test_len:]


def sequences(ids, seq_len):
    """(inputs, targets), each count x seq_len, as src/data/text.rs's sequences()."""
    count = max(len(ids) - 1, 0) // seq_len
    x = ids[:count * seq_len].reshape(count, seq_len)
    y = ids[1:count * seq_len + 1].reshape(count, seq_len)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


def mean_loss(model, x, y, cost_sum):
    """Mean cross-entropy over all positions of the sequences x (targets y)."""
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(x), EVAL_BATCH):
            z = model(x[i:i + EVAL_BATCH])
            total += cost_sum(z.reshape(-1, z.shape[-1]), y[i:i + EVAL_BATCH].reshape(-1)).item()
    model.train()
    return total / y.numel()


def sample(model, vocab, prime, n, temperature, generator):
    """`prime` followed by n characters drawn from softmax(logits / temperature)."""
    index = {c: i for i, c in enumerate(vocab)}
    model.eval()
    out = []
    with torch.inference_mode():
        ids = torch.tensor([[index[c] for c in prime]])
        state = None
        for _ in range(n):
            h, state = model.lstm(model.embed(ids), state)
            logits = model.out(h[0, -1])
            p = torch.softmax(logits / temperature, dim=0)
            nxt = torch.multinomial(p, 1, generator=generator).item()
            out.append(vocab[nxt])
            ids = torch.tensor([[nxt]])
    model.train()
    return prime + "".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text", help="a UTF-8 text file (plain or gzip), or `shakespeare` for "
                                 "data/shakespeare/tragedies.txt.gz")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sample", type=int, default=0, metavar="N",
                    help="print N generated characters after training")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--prime", default=None,
                    help="text the sample starts from (default: the text's first character)")
    ap.add_argument("--batches", type=int, default=None,
                    help="at most this many mini-batches per epoch (for smoke tests)")
    args = ap.parse_args()
    if args.epochs < 1 or args.seq_len < 1 or args.batch < 1 or args.threads < 1:
        ap.error("--epochs, --seq-len, --batch and --threads must be >= 1")
    if not args.lr > 0 or not args.temperature > 0 or args.sample < 0:
        ap.error("--lr and --temperature must be > 0, --sample >= 0")
    if args.batches is not None and args.batches < 1:
        ap.error("--batches must be >= 1")
    torch.set_num_threads(args.threads)

    path = SHAKESPEARE if args.text == "shakespeare" else args.text
    vocab, train_ids, test_ids = read_text(path)
    x_train, y_train = sequences(train_ids, args.seq_len)
    x_test, y_test = sequences(test_ids, args.seq_len)
    if len(x_train) == 0 or len(x_test) == 0:
        fail(f"{path}: the training part ({len(train_ids)} characters) and the test part "
             f"({len(test_ids)}) must each hold at least --seq-len + 1 = {args.seq_len + 1}")
    prime = args.prime if args.prime is not None else vocab[train_ids[0]]
    if args.sample and (not prime or not set(prime) <= set(vocab)):
        fail("--prime: must be non-empty and use only the text's characters")
    print(f"{path}: {len(train_ids) + len(test_ids):,} characters, V = {len(vocab)}; "
          f"{len(x_train):,} training and {len(x_test):,} test sequences of {args.seq_len}",
          flush=True)

    torch.manual_seed(args.seed)
    model = CharLSTM(vocab=len(vocab))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    cost = nn.CrossEntropyLoss()  # log-softmax + NLL, mean over all N x T positions
    cost_sum = nn.CrossEntropyLoss(reduction="sum")
    shuffle = torch.Generator().manual_seed(args.seed)

    start = time.perf_counter()
    train_seconds, train_chars = 0.0, 0
    train_losses, test_losses = [], []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(x_train), generator=shuffle)
        total, positions = 0.0, 0
        for b, i in enumerate(range(0, len(order), args.batch)):
            if args.batches is not None and b >= args.batches:
                break
            idx = order[i:i + args.batch]
            z = model(x_train[idx])
            y = y_train[idx].reshape(-1)
            j = cost(z.reshape(-1, z.shape[-1]), y)
            opt.zero_grad(set_to_none=True)
            j.backward()
            opt.step()
            total += j.item() * y.numel()
            positions += y.numel()
        train_seconds += time.perf_counter() - t0
        train_chars += positions
        train_losses.append(total / positions)
        test_losses.append(mean_loss(model, x_test, y_test, cost_sum))
        print(f"epoch {epoch}/{args.epochs}: train loss {train_losses[-1]:.4f}  "
              f"test loss {test_losses[-1]:.4f} nats/char  training {train_seconds:.1f} s  "
              f"elapsed {time.perf_counter() - start:.1f} s", flush=True)

    if args.sample:
        g = torch.Generator().manual_seed(args.seed)
        print(sample(model, vocab, prime, args.sample, args.temperature, g), flush=True)
    print(json.dumps({
        "impl": "pytorch", "torch_version": torch.__version__, "arch": "char-lstm",
        "text": path, "chars": len(train_ids) + len(test_ids), "vocab": len(vocab),
        "train_sequences": len(x_train), "test_sequences": len(x_test),
        "seq_len": args.seq_len, "batch": args.batch, "optimizer": "adam", "lr": args.lr,
        "epochs": args.epochs, "seed": args.seed, "threads": args.threads,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_loss": train_losses[-1], "test_loss": test_losses[-1],
        "train_loss_per_epoch": train_losses, "test_loss_per_epoch": test_losses,
        "train_seconds": train_seconds, "train_chars_per_sec": train_chars / train_seconds,
        "seconds": time.perf_counter() - start, "peak_rss_bytes": peak_rss_bytes(),
    }), flush=True)


if __name__ == "__main__":
    main()

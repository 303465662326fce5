#!/usr/bin/env python3
"""backprop against PyTorch, side by side on this machine: `backprop bench` and
`bench/pytorch_mlp.py` (the networks) or `bench/pytorch_arch.py` (the models of layers) run
alternately (A B A B ...) for each config and thread count, so drift in the machine's speed
hits both; the table shows the medians over the rounds and the ratios backprop / PyTorch.

    cargo build --release
    python3 bench/compare.py --config all --threads 1,2 --rounds 3    # nielsen, small, wide
    python3 bench/compare.py --config arch --threads 1,2 --rounds 3   # lenet5, convnet, char-lstm

PyTorch keeps its OpenMP defaults (threads that spin at barriers): setting
OMP_WAIT_POLICY=PASSIVE slows it by 1.4-2.3x on these models on a quiet machine, so the
table says whether it was set.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = ["nielsen", "small", "wide"]
ARCH_CONFIGS = ["lenet5", "convnet", "char-lstm"]
# The targets: backprop / PyTorch training samples per second.
TARGETS = {"nielsen": 10.0, "small": 2.0, "wide": 1.0,
           "lenet5": 2.0, "convnet": 1.0, "char-lstm": 1.5}
KEYS = ["config", "threads", "train_samples_per_sec", "infer_samples_per_sec", "peak_rss_bytes"]


class Failure(Exception):
    """A one-line reason to stop."""


def machine():
    model, cores = "unknown", os.cpu_count() or 1
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor() or model
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    return model, cores


def run_one(cmd, config, threads):
    """Runs one benchmark command; returns its JSON object for `config`."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise Failure(f"{cmd[0]}: cannot run: {e.strerror}")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise Failure(f"{' '.join(cmd)}: exit status {proc.returncode}: {last}")
    for line in proc.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise Failure(f"{cmd[0]}: bad JSON line ({e.msg}): {line[:80]}")
        if obj.get("config") != config:
            continue
        missing = [k for k in KEYS if k not in obj]
        if missing:
            raise Failure(f"{cmd[0]}: JSON for {config} lacks {', '.join(missing)}")
        if obj["threads"] != threads:
            raise Failure(f"{cmd[0]}: asked for {threads} threads, it reports {obj['threads']}")
        return obj
    raise Failure(f"{cmd[0]}: printed no JSON line for config {config}")


def compare(args, config, threads):
    """Alternates the two implementations for `args.rounds` rounds; medians of each."""
    seconds = ["--seconds", str(args.seconds)]
    ours = [args.backprop, "bench", "--config", config, "--threads", str(threads), "--json", *seconds]
    script = "pytorch_arch.py" if config in ARCH_CONFIGS else "pytorch_mlp.py"
    pytorch = args.pytorch or [sys.executable, os.path.join(HERE, script)]
    theirs = [*pytorch, "--config", config, "--threads", str(threads), "--json", *seconds]
    runs = {"backprop": [], "pytorch": []}
    for r in range(args.rounds):
        # Swap who goes first every round, so neither always runs on a warmer machine.
        order = [("backprop", ours), ("pytorch", theirs)]
        if r % 2 == 1:
            order.reverse()
        for name, cmd in order:
            runs[name].append(run_one(cmd, config, threads))
            if not args.json:
                print(f"  {config} threads {threads} round {r + 1}: {name} "
                      f"{runs[name][-1]['train_samples_per_sec']:,.0f} train samples/s",
                      file=sys.stderr, flush=True)

    def med(name, key):
        values = [o[key] for o in runs[name] if o.get(key) is not None]
        return statistics.median(values) if values else None

    row = {"config": config, "threads": threads, "rounds": args.rounds}
    for name in runs:
        for key in ["train_samples_per_sec", "infer_samples_per_sec", "peak_rss_bytes"]:
            row[f"{name}_{key}"] = med(name, key)
        # Repeats disturbed by other processes and kept anyway: a warning sign.
        row[f"{name}_contended_repeats"] = sum(o.get("contended_repeats", 0) for o in runs[name])
    for what in ["train", "infer"]:
        a, b = row[f"backprop_{what}_samples_per_sec"], row[f"pytorch_{what}_samples_per_sec"]
        row[f"{what}_ratio"] = a / b if a and b else None
    row["target_train_ratio"] = TARGETS.get(config)
    row["torch_version"] = runs["pytorch"][0].get("torch_version")
    return row


def fmt_rate(x):
    return "-" if x is None else f"{x:,.0f}"


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}x"


def fmt_mib(x):
    return "-" if x is None else f"{x / 2**20:,.0f}"


def table(rows, model, cores):
    out = [f"machine: {model}, {cores} logical cores; "
           f"PyTorch {rows[0]['torch_version'] if rows else '?'} "
           f"(OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset: its default')}); "
           f"medians of {rows[0]['rounds'] if rows else 0} alternating rounds",
           "",
           "| config | threads | train backprop | train PyTorch | ratio | target "
           "| infer backprop | infer PyTorch | ratio | peak RSS MiB (backprop / PyTorch) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio, target = r["train_ratio"], r["target_train_ratio"]
        mark = "" if ratio is None or target is None else (" ok" if ratio >= target else " MISSED")
        cells = [
            r["config"], str(r["threads"]),
            fmt_rate(r["backprop_train_samples_per_sec"]),
            fmt_rate(r["pytorch_train_samples_per_sec"]),
            fmt_ratio(ratio),
            ("-" if target is None else f">= {target:g}x") + mark,
            fmt_rate(r["backprop_infer_samples_per_sec"]),
            fmt_rate(r["pytorch_infer_samples_per_sec"]),
            fmt_ratio(r["infer_ratio"]),
            f"{fmt_mib(r['backprop_peak_rss_bytes'])} / {fmt_mib(r['pytorch_peak_rss_bytes'])}",
        ]
        out.append("| " + " | ".join(cells) + " |")
    # The comparison takes each side at its own best thread count.
    best = {}
    for r in rows:
        b = best.setdefault(r["config"], {"backprop": (None, 0), "pytorch": (None, 0)})
        for name in b:
            rate = r[f"{name}_train_samples_per_sec"] or 0
            if rate > b[name][1]:
                b[name] = (r["threads"], rate)
    if any(len({r["threads"] for r in rows if r["config"] == c}) > 1 for c in best):
        out += ["", "| config | backprop best (threads) | PyTorch best (threads) | ratio | target |",
                "|---|---|---|---|---|"]
        for config, b in best.items():
            (tb, rb), (tp, rp) = b["backprop"], b["pytorch"]
            ratio = rb / rp if rb and rp else None
            target = TARGETS.get(config)
            mark = "" if ratio is None or target is None else (" ok" if ratio >= target else " MISSED")
            out.append(f"| {config} | {fmt_rate(rb)} ({tb}) | {fmt_rate(rp)} ({tp}) | "
                       f"{fmt_ratio(ratio)} | >= {target:g}x{mark} |")
    contended = [f"{r['config']}/{r['threads']}: backprop {r['backprop_contended_repeats']}, "
                 f"PyTorch {r['pytorch_contended_repeats']}"
                 for r in rows
                 if r["backprop_contended_repeats"] or r["pytorch_contended_repeats"]]
    if contended:
        out += ["", "repeats kept although another process took the CPU: " + "; ".join(contended)]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backprop", default="target/release/backprop",
                   help="the backprop binary (default target/release/backprop)")
    p.add_argument("--pytorch", default=None,
                   help="command for the PyTorch side, split on spaces "
                        "(default: this Python running bench/pytorch_mlp.py or, for the "
                        "models of layers, bench/pytorch_arch.py)")
    p.add_argument("--config", default="all",
                   help="nielsen, small, wide, lenet5, convnet, char-lstm, all (the three "
                        "networks), arch (the three models of layers), or a comma list")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--seconds", type=float, default=0.5,
                   help="minimum seconds per timed repeat, passed to both (default 0.5)")
    p.add_argument("--json", action="store_true", help="one JSON object per config and thread count")
    args = p.parse_args()

    try:
        names = {"all": CONFIGS, "arch": ARCH_CONFIGS}.get(args.config) or args.config.split(",")
        bad = [n for n in names if n not in CONFIGS + ARCH_CONFIGS]
        if bad:
            raise Failure(f"--config: unknown {', '.join(bad)} (expected "
                          f"{', '.join(CONFIGS + ARCH_CONFIGS)}, all or arch)")
        try:
            threads = [int(t) for t in args.threads.split(",")]
        except ValueError:
            raise Failure(f"--threads: {args.threads!r} is not a comma list of integers")
        if not threads or min(threads) < 1:
            raise Failure("--threads: every count must be >= 1")
        if args.rounds < 1:
            raise Failure("--rounds: must be >= 1")
        if not args.seconds > 0:
            raise Failure("--seconds: must be > 0")
        if not os.path.isfile(args.backprop) or not os.access(args.backprop, os.X_OK):
            raise Failure(f"--backprop: {args.backprop}: no such executable "
                          "(build it with cargo build --release)")
        args.pytorch = args.pytorch.split() if args.pytorch else None
        model, cores = machine()
        rows = []
        for name in names:
            for t in threads:
                row = compare(args, name, t)
                row["cpu_model"], row["logical_cores"] = model, cores
                rows.append(row)
                if args.json:
                    print(json.dumps(row), flush=True)
        if not args.json:
            print(table(rows, model, cores))
    except Failure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

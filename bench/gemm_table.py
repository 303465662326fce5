#!/usr/bin/env python3
"""The GFLOP/s table of `cargo bench --bench gemm`, read from target/criterion.

For each product of a training step: GFLOP/s per kernel (criterion's median time), the
best kernel; then per network, the whole step's products with each kernel and with the
best kernel per product: the GEMM rate the training step can at most reach (the target
asks `wide` for 80% of it), and the samples/s that the products alone would allow.

    cargo bench --bench gemm -- --warm-up-time 1 --measurement-time 2
    python3 bench/gemm_table.py [--criterion target/criterion]
"""

import argparse
import json
import os
import sys

KERNELS = ["gemm-1t", "gemm-rayon2", "matrixmultiply-1t"]
ORDER = ["nielsen", "small", "wide", "square"]
ROLE = {"fwd": "A W^T (W^T strided)", "fwdT": "Z^T = W A^T (A^T strided, Z^T column-major)", "eq3": "Delta W (Eq. 3)", "eq1": "Delta^T A (Eq. 1, Delta^T strided)"}
BATCH = {"nielsen": 10, "small": 64, "wide": 256}


def load(root):
    """{group: {"shape": str, "flops": int, kernel: ns}} from criterion's JSON files."""
    groups = {}
    for dirpath, _dirs, files in os.walk(root):
        if "benchmark.json" not in files or os.path.basename(dirpath) != "new":
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        flops = (bench.get("throughput") or {}).get("Elements")
        if flops is None or bench["function_id"] not in KERNELS:
            continue
        g = groups.setdefault(bench["group_id"], {"shape": bench.get("value_str"), "flops": flops})
        g[bench["function_id"]] = est["median"]["point_estimate"]
    return groups


def sort_key(group):
    parts = group.split("-")
    role = parts[1] if len(parts) > 1 else ""
    return (ORDER.index(parts[0]) if parts[0] in ORDER else 9,
            ["fwd", "fwdT", "eq3", "eq1"].index(role) if role in ROLE else 9, group)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--criterion", default="target/criterion")
    args = p.parse_args()
    groups = load(args.criterion)
    if not groups:
        print(f"error: {args.criterion}: no gemm bench results (run cargo bench --bench gemm)",
              file=sys.stderr)
        return 1
    print("| product | m x k @ k x n | " + " | ".join(KERNELS) + " | best |")
    print("|---|---|" + "---|" * (len(KERNELS) + 1))
    totals = {}
    for name in sorted(groups, key=sort_key):
        g = groups[name]
        rates = {k: g["flops"] / g[k] for k in KERNELS if k in g}  # flops per ns = GFLOP/s
        best = max(rates, key=rates.get)
        cells = [f"{rates[k]:.1f}" if k in rates else "-" for k in KERNELS]
        role = name.split("-")[1] if "-" in name else ""
        label = f"{name} {ROLE.get(role, '')}".strip()
        print(f"| {label} | {g['shape']} | " + " | ".join(cells) + f" | {best} |")
        config = name.split("-")[0]
        # fwdT is an alternative to fwd, not a further product of the step.
        if config in BATCH and role != "fwdT":
            t = totals.setdefault(config, {"flops": 0, "best": 0.0, **{k: 0.0 for k in KERNELS}})
            t["flops"] += g["flops"]
            t["best"] += g[best]
            for k in KERNELS:
                t[k] += g.get(k, float("inf"))
    print()
    print("| step's products | " + " | ".join(KERNELS) + " | best per product | products-only samples/s (best) |")
    print("|---|" + "---|" * (len(KERNELS) + 2))
    for config in [c for c in ORDER if c in totals]:
        t = totals[config]
        cells = [f"{t['flops'] / t[k]:.1f}" for k in KERNELS]
        samples = BATCH[config] / (t["best"] * 1e-9)
        print(f"| {config} | " + " | ".join(cells) +
              f" | {t['flops'] / t['best']:.1f} | {samples:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

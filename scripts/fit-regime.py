#!/usr/bin/env python3
"""When each method's runs reach their best validation accuracy, and how well they fit the
training set there: the regime a result set's contest is decided in (issue 32, question 6).

    python3 scripts/fit-regime.py DIR...

Reads each sweep directory's results.csv and its runs' epochs.csv (committed) and prints, per
architecture and method (and tau for the methods that read it), one Markdown row: runs, the
median epoch of the best-validation checkpoint (the one whose test accuracy the reports give)
out of the epochs trained, the mean training loss at that epoch, the mean lowest training loss
of the run, and the mean test accuracy. A set whose runs peak early and then drive the training
loss towards zero is limited by overfitting; one whose runs peak at the last epochs with the
training loss still near the validation loss is still fitting. Then, per architecture, the
Spearman rank correlation over its methods between the training loss at the best checkpoint and
the test accuracy (-1: the method whose checkpoint fits the training set better always tests
better).
"""
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def usage_error(message):
    print(f"fit-regime.py: {message}", file=sys.stderr)
    sys.exit(2)


def rows_of(directory):
    results = directory / "results.csv"
    if not results.is_file():
        usage_error(f"{directory}: no results.csv (not a sweep output?)")
    with results.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["status"] != "ok":
                continue
            with (directory / "runs" / row["key"] / "epochs.csv").open(newline="") as f:
                epochs = list(csv.DictReader(f))
            yield row, epochs


def ranks(values):
    """Ranks from 1, ties given their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            result[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman(xs, ys):
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.mean(rx), statistics.mean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else float("nan")


def main():
    if len(sys.argv) < 2:
        usage_error("usage: fit-regime.py DIR...")
    groups = defaultdict(list)
    for name in sys.argv[1:]:
        directory = Path(name)
        for row, epochs in rows_of(directory):
            arch = row.get("net") or row["arch"] or f"widths {row['widths']}"
            reads_tau = "tau" not in row["not_applicable"].split()
            method = f"{row['method']} tau={row['tau']}" if reads_tau else row["method"]
            best = int(row["best_epoch"])
            at_best = next(e for e in epochs if int(e["epoch"]) == best)
            groups[(row["dataset"], arch, method)].append(
                (
                    best,
                    len(epochs),
                    float(at_best["train_loss"]),
                    min(float(e["train_loss"]) for e in epochs),
                    100 * float(row["test_acc"]),
                )
            )
    print("| data | architecture | method | runs | best epoch (median) / epochs "
          "| train loss at best | lowest train loss | test acc |")
    print("|---|---|---|---|---|---|---|---|")
    for (dataset, arch, method), runs in sorted(groups.items()):
        mean = lambda i: statistics.mean(r[i] for r in runs)
        print(f"| {dataset} | {arch} | {method} | {len(runs)} "
              f"| {statistics.median(r[0] for r in runs):g} / {max(r[1] for r in runs)} "
              f"| {mean(2):.3f} | {mean(3):.3f} | {mean(4):.2f} |")
    print()
    print("| data | architecture | methods | rank correlation, train loss at best vs test acc |")
    print("|---|---|---|---|")
    by_arch = defaultdict(list)
    for (dataset, arch, _), runs in sorted(groups.items()):
        by_arch[(dataset, arch)].append(
            (statistics.mean(r[2] for r in runs), statistics.mean(r[4] for r in runs))
        )
    for (dataset, arch), methods in by_arch.items():
        rho = spearman([m[0] for m in methods], [m[1] for m in methods])
        print(f"| {dataset} | {arch} | {len(methods)} | {rho:+.2f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""When each method's runs reach their best-validation checkpoint (lowest validation loss, the
one whose test accuracy the reports give), and how well they fit the training set there: the
regime a result set's contest is decided in (issue 32, question 6).

    python3 scripts/fit-regime.py DIR...

Reads each sweep directory's results.csv and its runs' epochs.csv (committed) and prints, per
architecture and method (with tau and the selection length for the methods that read them, and
the learning rate and batch size), one Markdown row: runs, the median epoch of the checkpoint
out of the epochs trained (a two-phase method's comes from its second phase: each phase keeps
its best and the second starts from the first's), the mean training loss at that epoch, the
mean lowest training loss of the run (the second phase's, for two-phase methods), and the mean
test accuracy. A set whose runs peak early and then drive the training
loss towards zero is limited by overfitting; one whose runs peak at the last epochs with the
training loss still near the validation loss is still fitting. Then, per architecture, the
Spearman rank correlation over its rows (methods and their settings) between the training loss
at the checkpoint and the test accuracy (-1: a row whose checkpoint fits the training set
better always tests better). An architecture trained for several budgets (epochs) gets
rows and a correlation per budget.
"""
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from result_sets import network_namer, usage_error


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
    runs_read = [(row, epochs) for name in sys.argv[1:] for row, epochs in rows_of(Path(name))]
    # The data set has a column of its own here.
    network = network_namer([row for row, _ in runs_read], with_dataset=False)
    groups = defaultdict(list)
    for row, epochs in runs_read:
        arch = network(row)
        unread = row["not_applicable"].split()
        method = row["method"]
        for setting in ("tau", "phase1_epochs", "pool"):
            if setting not in unread and row.get(setting):
                method += f" {setting}={row[setting]}"
        method += f" lr={row['lr']} batch={row['batch_size']}"
        best = int(row["best_epoch"])
        at_best = next(e for e in epochs if int(e["epoch"]) == best)
        # A two-phase run's checkpoint is its second phase's: its lowest loss is that
        # phase's too (the first phase trains another network, the soft or sampled one).
        last_phase = [e for e in epochs if e["phase"] == epochs[-1]["phase"]]
        groups[(row["dataset"], arch, method)].append(
            (
                best,
                len(epochs),
                float(at_best["train_loss"]),
                min(float(e["train_loss"]) for e in last_phase),
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
    print("| data | architecture | rows | rank correlation, train loss at best vs test acc |")
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

#!/usr/bin/env python3
"""SmartMixed against other methods over several networks at once: a sign test on the runs
paired by seed, per network and pooled over the networks (issue 32's cross-net answer).

    python3 scripts/sign-test.py [--tau T] [--against M1,M2,...] DIR...

A report's per-cell tests (`smartmixed compare`) have five to ten pairs each and adjust for the
cell's 14 comparisons, so a difference that recurs in every network can fail every one of them.
Pooling the networks asks a different, narrower question with more pairs: does SmartMixed beat
method M in more seeds than it loses, over these networks? Each pair is one seed of one network
(SmartMixed at tau T against M's run of the same seed, network, data and budget); pairs of
different networks or seeds are separate training runs, so the exact two-sided binomial sign
test applies (ties, equal test accuracy, are left out). Tau values are not pooled: the baseline
runs serve every tau, so two tau cells share their baseline's runs. A method that reads tau
(the soft mixtures) is paired at SmartMixed's tau.

Prints one Markdown table per tau: per method, each network's wins-losses(-ties) and mean
paired difference in points, then the pooled count and sign-test p, and that p adjusted by Holm
over the methods in the table.
"""
import argparse
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

from result_sets import network_namer, usage_error

# What makes two runs comparable, besides the seed; tau and the selection settings only for
# SmartMixed's side (a baseline reads neither). Older sets lack some columns (net, mnist1d).
SAME = ("dataset", "net", "arch", "widths", "preset", "epochs", "lr", "batch_size", "split_seed", "mnist1d")
DEFAULT_AGAINST = "pau_neuron,pau,prelu,swish_beta,softmix_freeze,softmix,relu,leaky_relu,gelu,elu"


def sign_test_p(wins, losses):
    """Exact two-sided binomial sign test: the chance, if wins and losses were equally likely,
    of a split at least this uneven."""
    n = wins + losses
    if n == 0:
        return float("nan")
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def holm(ps):
    """Holm's step-down adjustment; NaN (no pairs) stays NaN and does not count."""
    order = sorted((p, i) for i, p in enumerate(ps) if not math.isnan(p))
    adjusted = [float("nan")] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


def read_runs(directory):
    path = Path(directory) / "results.csv"
    if not path.is_file():
        usage_error(f"{path}: no such file (give sweep directories)")
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r.get("status") == "ok"]
    missing = [k for k in ("dataset", "epochs", "method", "tau", "not_applicable", "seed", "test_acc", "widths") if rows and k not in rows[0]]
    if missing:
        usage_error(f"{path}: no column {', '.join(missing)}")
    return rows


def tau_read(run):
    """The run's tau where its method reads it (the soft mixtures), else None: a fixed function's
    or PAU's run serves SmartMixed at every tau."""
    return None if "tau" in run["not_applicable"].split() else float(run["tau"])


def pairs(runs, tau, against):
    """{(method, network): [SmartMixed minus method, per seed]} at the given tau."""
    baseline = {}
    for r in runs:
        if r["method"] != "smartmixed":
            key = (r["method"],) + tuple(r.get(k, "") for k in SAME) + (r["seed"], tau_read(r))
            if key in baseline:
                usage_error(f"two runs of {r['method']} with the same settings and seed {r['seed']}")
            baseline[key] = r
    network = network_namer(runs)
    out = defaultdict(list)
    for r in runs:
        if r["method"] != "smartmixed" or float(r["tau"]) != tau:
            continue
        for method in against:
            settings = (method,) + tuple(r.get(k, "") for k in SAME) + (r["seed"],)
            other = baseline.get(settings + (tau,)) or baseline.get(settings + (None,))
            if other is not None:
                out[(method, network(r))].append(float(r["test_acc"]) - float(other["test_acc"]))
    return out


def table(runs, tau, against):
    diffs = pairs(runs, tau, against)
    networks = list(dict.fromkeys(net for _, net in diffs))  # in the order the runs list them
    if not networks:
        return None
    lines = [
        f"SmartMixed at tau {tau:g} against each method: per network, seeds SmartMixed wins-loses"
        " (-ties) and the mean paired difference in points; pooled over the networks, the counts,"
        " the exact two-sided sign test's p and that p adjusted by Holm over the table's methods.",
        "",
        "| method | " + " | ".join(networks) + " | pooled | sign-test p | Holm p |",
        "|---" * (len(networks) + 4) + "|",
    ]
    rows, ps = [], []
    for method in against:
        cells, wins, losses, ties = [], 0, 0, 0
        for net in networks:
            d = diffs.get((method, net), [])
            if not d:
                cells.append("-")
                continue
            w, l = sum(x > 0 for x in d), sum(x < 0 for x in d)
            t = len(d) - w - l
            wins, losses, ties = wins + w, losses + l, ties + t
            tie = f"-{t}" if t else ""
            cells.append(f"{w}-{l}{tie} ({100 * sum(d) / len(d):+.2f})")
        if wins + losses + ties == 0:
            continue
        rows.append((method, cells, wins, losses, ties))
        ps.append(sign_test_p(wins, losses))
    for (method, cells, wins, losses, ties), p, adjusted in zip(rows, ps, holm(ps)):
        tie = f"-{ties}" if ties else ""
        lines.append(
            f"| {method} | " + " | ".join(cells) + f" | {wins}-{losses}{tie} | {p:.2g} | {adjusted:.2g} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", metavar="DIR")
    parser.add_argument("--tau", default="0.3,1", help="SmartMixed's tau values, one table each")
    parser.add_argument("--against", default=DEFAULT_AGAINST, help="methods, comma-separated")
    args = parser.parse_args()
    try:
        taus = [float(t) for t in args.tau.split(",")]
    except ValueError:
        usage_error(f"--tau {args.tau}: not a list of numbers")
    against = [m for m in args.against.split(",") if m]
    runs = [r for d in args.dirs for r in read_runs(d)]
    known = {r["method"] for r in runs}
    unknown = [m for m in against if m not in known]
    if unknown:
        usage_error(f"--against: no run of {', '.join(unknown)} in {' '.join(args.dirs)}")
    tables = []
    for tau in taus:
        text = table(runs, tau, against)
        if text is None:
            usage_error(f"--tau: no SmartMixed run at tau {tau:g} pairs with another method")
        tables.append(text)
    print("# SmartMixed against each method over the networks, paired by seed\n")
    print(f"`python3 scripts/sign-test.py {' '.join(sys.argv[1:])}`\n")
    print("\n\n".join(tables))

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The numbers behind the six questions of issue 32 for one architecture of a report, from the
files `smartmixed compare` writes (comparison.csv, freeze.csv, methods.csv, comparison.md's
share tables): for writing and checking results/README.md's answers, not a report of its own.

    python3 scripts/answer-sheet.py REPORT_DIR ARCH     e.g. results/fashion-cnn conv4

Prints, in percentage points where a difference: 1. the fixed functions' means and spread;
2. SmartMixed minus each method per tau, paired by seed (interval, P(better), t-test and Holm p)
and how many calls hold; 3. SmartMixed minus the frozen soft mixture and the switch (freeze.csv);
4. the channels' shares per layer; 5. parameters added and epoch time against ReLU
(methods.csv; bench rows are results/bench's). Question 6 has its own measurement
(scripts/fit-regime.py).
"""
import csv
import re
import sys
from pathlib import Path

ADAPTIVE = {"smartmixed", "softmix", "softmix_freeze", "prelu", "swish_beta", "pau", "pau_neuron"}


def pct(x):
    return 100.0 * float(x)


def rows_of(path, arch):
    with open(path) as f:
        return [r for r in csv.DictReader(f) if r.get("arch", r.get("cell", "")).split(" ")[0] == arch]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    report, arch = Path(sys.argv[1]), sys.argv[2]
    cells = rows_of(report / "comparison.csv", arch)
    if not cells:
        sys.exit(f"{report / 'comparison.csv'}: no cell of architecture {arch}")
    taus = sorted({r["tau"] for r in cells}, key=float)

    print(f"# {arch} in {report}\n")
    print("## 1. Fixed functions (test accuracy %, mean [interval], seeds)")
    fixed = {}
    for r in cells:
        if r["method"] not in ADAPTIVE and r["method"] not in fixed:
            fixed[r["method"]] = r
    for m, r in sorted(fixed.items(), key=lambda kv: -float(kv[1]["mean_test_acc"])):
        print(f"  {m:12s} {pct(r['mean_test_acc']):.2f} [{pct(r['ci_low']):.2f}, {pct(r['ci_high']):.2f}] ({r['seeds']})")
    means = [pct(r["mean_test_acc"]) for r in fixed.values()]
    if means:
        print(f"  spread {max(means) - min(means):.2f} points; without the worst {sorted(means)[-1] - sorted(means)[1]:.2f}")

    print("\n## Adaptive methods (test accuracy %)")
    for tau in taus:
        for r in cells:
            if r["tau"] == tau and r["method"] in ADAPTIVE:
                print(f"  tau {tau:3s} {r['method']:15s} {pct(r['mean_test_acc']):.2f} [{pct(r['ci_low']):.2f}, {pct(r['ci_high']):.2f}] ({r['seeds']})")

    print("\n## 2-3. SmartMixed minus each method, paired by seed")
    for tau in taus:
        called = held = 0
        print(f"  tau {tau}:")
        paired = [r for r in cells if r["tau"] == tau and r["paired_diff"]]
        for r in sorted(paired, key=lambda r: float(r["paired_diff"])):
            lo, hi = pct(r["paired_low"]), pct(r["paired_high"])
            holm = r.get("paired_holm_p") or ""
            t_p = r.get("paired_t_p") or ""
            call = lo > 0 or hi < 0
            holds = holm != "" and float(holm) < 0.05
            called += call
            held += call and holds
            mark = ("holds" if holds else "interval only") if call else ""
            print(
                f"    {r['method']:15s} {pct(r['paired_diff']):+.2f} [{lo:+.2f}, {hi:+.2f}] "
                f"better in {float(r['p_improvement']) * int(r['paired_seeds']):.1f}/{r['paired_seeds']} "
                f"t {float(t_p) if t_p else float('nan'):.3f} Holm {float(holm) if holm else float('nan'):.3f} {mark}"
            )
        print(f"    {called} interval calls, {held} hold after Holm")

    freeze = report / "freeze.csv"
    if freeze.exists():
        print("\n## 3. The switch (validation %, freeze.csv)")
        for r in rows_of(freeze, arch):
            print(
                f"  {r['cell']:20s} {r['method']:15s} at switch {pct(r['val_acc_at_switch']):.2f} "
                f"one epoch later {pct(r['val_acc_after_first_epoch']):.2f} change {pct(r['change']):+.2f} "
                f"[{pct(r['change_ci_low']):+.2f}, {pct(r['change_ci_high']):+.2f}] recovered {r['runs_recovered']}/{r['runs']}"
            )

    md = (report / "comparison.md").read_text()
    print("\n## 4. Functions per layer (share of units, mean over seeds)")
    for section in re.split(r"\n## ", md):
        if not section.startswith(("SmartMixed's functions per layer", "softmix_freeze's functions per layer")):
            continue
        lines = section.splitlines()
        print(f"  {lines[0]}")
        for line in lines:
            if line.startswith("| arch") or line.startswith(f"| {arch} "):
                print(f"  {line}")

    methods = report / "methods.csv"
    if methods.exists():
        print("\n## 5. Parameters added (training / inference) and epoch time against ReLU (methods.csv)")
        seen = set()
        for r in rows_of(methods, arch):
            key = (r["method"], r["cell"].split("tau=")[-1] if r["method"] in ADAPTIVE else "")
            if key in seen:
                continue
            seen.add(key)
            ratio = f"{float(r['epoch_time_vs_relu']):.2f}x" if r["epoch_time_vs_relu"] else "-"
            print(f"  {r['cell']:20s} {r['method']:15s} {r['params_training']:>6s} / {r['params_inference']:>6s}  {ratio}")


if __name__ == "__main__":
    main()

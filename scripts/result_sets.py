"""What the analysis scripts (fit-regime.py, sign-test.py) share about a sweep's results.csv:
the clear exit on bad input, and the name of the network a run trained."""
import sys
from collections import defaultdict
from pathlib import Path


def usage_error(message):
    """Exit 2 with the calling script's name and what was wrong."""
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    sys.exit(2)


def network_namer(runs, with_dataset=True):
    """A function naming each run's network: its net, numbered architecture or widths, with its
    epochs where its network was trained for several budgets (a checkpoint, or a seed pair,
    means something else at another budget) and, `with_dataset`, its data set where `runs`
    span several."""

    def base(run):
        if run.get("net"):
            return run["net"]
        return f"arch {run['arch']}" if run.get("arch") else f"widths {run['widths']}"

    budgets = defaultdict(set)
    for run in runs:
        budgets[(run["dataset"], base(run))].add(run["epochs"])
    with_dataset = with_dataset and len({run["dataset"] for run in runs}) > 1

    def name(run):
        label = base(run)
        if len(budgets[(run["dataset"], label)]) > 1:
            label += f", {run['epochs']} epochs"
        return f"{run['dataset']} {label}" if with_dataset else label

    return name

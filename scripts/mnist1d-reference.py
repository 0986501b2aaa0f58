#!/usr/bin/env python3
"""Writes the reference that `make test` holds the Rust MNIST-1D generator to
(crates/experiments/tests/data/mnist1d-reference.json), from the `mnist1d` package itself:

    python3 -m venv /tmp/m1d && /tmp/m1d/bin/pip install mnist1d==0.0.2.post1
    /tmp/m1d/bin/python scripts/mnist1d-reference.py > crates/experiments/tests/data/mnist1d-reference.json

It records the versions it ran with; the pieces the generator is made of (NumPy's legacy
RandomState draws, SciPy's gaussian_filter and interp1d, the templates) on fixed inputs; and
`make_dataset(get_dataset_args())`: every label, every signal's sum and sum of squares, and the
first 50 training and test signals in full; plus the same summary of a small shuffled variant.
"""
import json
import sys

import mnist1d
import numpy as np
import scipy
from importlib.metadata import version
from mnist1d.data import get_dataset_args, get_templates, make_dataset
from scipy.interpolate import interp1d
from scipy.ndimage import gaussian_filter


def summary(d, full=50):
    out = {}
    for split in ("", "_test"):
        x, y = d["x" + split], d["y" + split]
        name = "train" if split == "" else "test"
        out[name] = {
            "labels": [int(v) for v in y],
            "sums": [float(v) for v in x.sum(1)],
            "sums_of_squares": [float(v) for v in (x * x).sum(1)],
            "first": [[float(v) for v in row] for row in x[:full]],
        }
    return out


def main():
    ref = {"versions": {"mnist1d": version("mnist1d"), "numpy": np.__version__,
                        "scipy": scipy.__version__, "python": sys.version.split()[0]}}
    np.random.seed(42)
    ref["rand_seed42"] = [float(np.random.rand()) for _ in range(5)]
    np.random.seed(1)
    ref["randn7_seed1"] = [float(v) for v in np.random.randn(7)]
    # The same stream on: the cached second value of a pair carries over to the next call.
    ref["randn3_then_randn2_seed1"] = [float(v) for v in np.random.randn(3)] + \
        [float(v) for v in np.random.randn(2)]
    np.random.seed(3)
    ref["choice48_seed3"] = [int(np.random.choice(48)) for _ in range(20)]
    np.random.seed(4)
    ref["permutation10_seed4"] = [int(v) for v in np.random.permutation(10)]
    ref["permutation1000_seed4_head"] = [int(v) for v in np.random.permutation(1000)[:20]]
    signal = np.sin(np.arange(23) * 0.7) + 0.1 * np.arange(23)
    ref["gauss_input"] = [float(v) for v in signal]
    ref["gauss_sigma2"] = [float(v) for v in gaussian_filter(signal, 2)]
    xs = np.linspace(0, 1, len(signal))
    at = np.linspace(0, 1, 40)
    ref["interp_to40"] = [float(v) for v in interp1d(xs, signal, kind="linear")(at)]
    ref["templates"] = [[float(v) for v in row] for row in get_templates()["x"]]
    ref["default"] = summary(make_dataset(get_dataset_args()))
    args = get_dataset_args()
    args.num_samples, args.shuffle_seq, args.seed, args.final_seq_length = 600, True, 7, 24
    ref["shuffled_600_seed7_len24"] = summary(make_dataset(args), full=5)
    json.dump(ref, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Rebuilds crates/experiments/tests/data/mnist-mini from the full MNIST IDX .gz files.

usage: scripts/make-mnist-mini.py [SOURCE_DIR]   (default ../shared/data/mnist)
"""
import gzip
import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/data/mnist")
DEST = ROOT / "crates/experiments/tests/data/mnist-mini"


def write(name, payload):
    # mtime=0 keeps the archive bytes identical from run to run.
    with gzip.GzipFile(DEST / f"{name}.gz", "wb", mtime=0) as f:
        f.write(payload)


def images(name, n):
    data = gzip.open(SOURCE / f"{name}.gz").read()
    magic, _, rows, cols = struct.unpack(">IIII", data[:16])
    write(name, struct.pack(">IIII", magic, n, rows, cols) + data[16 : 16 + n * rows * cols])


def labels(name, n):
    data = gzip.open(SOURCE / f"{name}.gz").read()
    magic, _ = struct.unpack(">II", data[:8])
    write(name, struct.pack(">II", magic, n) + data[8 : 8 + n])


DEST.mkdir(parents=True, exist_ok=True)
images("train-images-idx3-ubyte", 2000)
labels("train-labels-idx1-ubyte", 2000)
images("t10k-images-idx3-ubyte", 500)
labels("t10k-labels-idx1-ubyte", 500)

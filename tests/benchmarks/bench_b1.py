"""B1 throughput: training images/s (forward + straight-through backward + Adam, one BLAS thread)
and golden-model images/s, per preset and weight width.

Run: ``BS4NN_DATA=/work/shared/data python tests/benchmarks/bench_b1.py [--images 3000]``
(prints a Markdown table; not collected by pytest).  The full-epoch figure is ``images/s`` into
55,000; the target is <= 30 s per MNIST epoch on 2 CPU cores (issue 25).  CPU seconds are
printed beside wall seconds: on a shared machine the wall figure counts the others' work too.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from bs4nn.sim.b1 import run_b1
from bs4nn.sim.semantics import encode_images
from bs4nn.train.b1_model import B1Shape, Parameters, b1_network, backward, forward, initial_parameters
from bs4nn.train.datasets import load_split
from bs4nn.train.optimizers import Adam
from bs4nn.train.presets import PRESETS

TRAIN_IMAGES = 55_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["mnist-b1", "fashion-b1"])
    parser.add_argument("--bits", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--images", type=int, default=3000)
    args = parser.parse_args()
    print("| preset | weight bits | train images/s | s per epoch (wall) | s per epoch (CPU) | golden images/s |")
    print("|---|---|---|---|---|---|")
    for name in args.presets:
        preset = PRESETS[name]
        images, labels = load_split(preset.dataset, "train")
        times = encode_images(images[: args.images], preset.tmax, preset.imax)
        labels = labels[: args.images].astype(np.int64)
        for bits in args.bits:
            shape = B1Shape(preset.sizes, preset.tmax, preset.windows, bits)
            params = initial_parameters(shape, 0)
            optimizer = Adam(params.arrays())
            with threadpool_limits(limits=1, user_api="blas"):
                wall, cpu = time.perf_counter(), time.process_time()
                for begin in range(0, args.images, preset.batch_size):
                    rows = slice(begin, begin + preset.batch_size)
                    run = forward(params, times[rows], shape)
                    grads = backward(params, run, labels[rows], shape, preset.activity_penalty)
                    params = Parameters.from_arrays(optimizer.step(params.arrays(), grads.arrays, 1e-3))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                network = b1_network(params.weights, params.scales(), params.biases, shape, preset.imax)
                started = time.perf_counter()
                run_b1(network, times)
                golden = args.images / (time.perf_counter() - started)
            rate = args.images / wall
            print(
                f"| {name} | {bits} | {rate:.0f} | {TRAIN_IMAGES / rate:.1f} | {TRAIN_IMAGES * cpu / args.images:.1f} "
                f"| {golden:.0f} |"
            )


if __name__ == "__main__":
    main()

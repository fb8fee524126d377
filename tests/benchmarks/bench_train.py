"""Trainer throughput: images/s and synaptic events/s of forward + backward, per batch size and threads.

Run: ``BS4NN_DATA=/work/shared/data python tests/benchmarks/bench_train.py [--images 3200]``
(prints a Markdown table; not collected by pytest).  Weights are the preset's initial ones, so
spike counts are those of epoch 1.  The full-epoch figure is ``images_per_s`` into 55,000.
"""

from __future__ import annotations

import argparse
import resource
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bs4nn.sim.semantics import encode_images
from bs4nn.train.datasets import load_split
from bs4nn.train.presets import BACKWARDS, get_preset
from bs4nn.train.rules import Batch, Parameters
from bs4nn.train.trainer import initial_weights, parallel_batch_gradients

TRAIN_IMAGES = 55_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="mnist")
    parser.add_argument("--images", type=int, default=3200)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backward", choices=BACKWARDS, help="default: the preset's")
    args = parser.parse_args()
    preset = get_preset(args.preset).with_overrides(backward=args.backward)
    images, labels = load_split(preset.dataset, "train")
    in_times = encode_images(images[: args.images], preset.tmax, preset.imax)
    labels = labels[: args.images].astype(np.int64)
    weights = initial_weights(preset, 0)
    extras = {name: getattr(preset, name) for name in preset.rule.extra_parameters}
    params = Parameters(weights, list(preset.alphas), preset.thetas, extras=extras)
    rule, options = preset.rule, preset.rule_options()
    events = int((in_times < preset.tmax).sum()) * preset.sizes[1]
    print(
        f"| preset | backward | batch | threads | images/s | s per {TRAIN_IMAGES} images | layer-1 synaptic events/s |"
    )
    print("|---|---|---|---|---|---|---|")
    for threads in args.threads:
        pool = ThreadPoolExecutor(max_workers=2) if threads > 1 else None
        for batch in args.batch_sizes:
            start = time.perf_counter()
            for begin in range(0, args.images, batch):
                rows = slice(begin, begin + batch)
                parallel_batch_gradients(pool, rule, Batch(in_times[rows], labels[rows]), params, options)
            seconds = time.perf_counter() - start
            rate = args.images / seconds
            print(
                f"| {preset.name} | {preset.backward} | {batch} | {threads} | {rate:.0f} | {TRAIN_IMAGES / rate:.0f} | "
                f"{events / seconds:.3g} |"
            )
        if pool is not None:
            pool.shutdown()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\npeak RSS {peak:.2f} GiB")


if __name__ == "__main__":
    main()

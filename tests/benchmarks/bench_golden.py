"""Golden-model throughput: the 10,000 MNIST test images through a random 784-600-10 network.

Run: ``python tests/benchmarks/bench_golden.py`` (BS4NN_DATA must point at the datasets).
Prints a table of images/s per chunk size and thread count; target >= 2,000 images/s.
"""

from __future__ import annotations

import argparse
import time

from bs4nn.sim.golden import random_network, run_golden_images
from bs4nn.train.datasets import load_split

TARGET_IMAGES_PER_SECOND = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs per row")
    args = parser.parse_args()
    images, _ = load_split("mnist", "test")
    network = random_network([784, 600, 10], [20, 5], seed=0)
    print(f"golden model, {len(images)} MNIST test images, random 784-600-10 net (thresholds 20, 5)")
    print(f"{'chunk':>6} {'threads':>7} {'seconds':>8} {'images/s':>9}  target {TARGET_IMAGES_PER_SECOND}")
    for workers in (1, 2):
        for chunk in (128, 256, 512):
            best = min(_timed(network, images, chunk, workers) for _ in range(args.repeats))
            rate = len(images) / best
            verdict = "ok" if rate >= TARGET_IMAGES_PER_SECOND else "BELOW TARGET"
            print(f"{chunk:>6} {workers:>7} {best:>8.2f} {rate:>9.0f}  {verdict}")


def _timed(network, images, chunk: int, workers: int) -> float:
    start = time.perf_counter()
    run_golden_images(network, images, chunk=chunk, workers=workers)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()

"""Cost of the experiments on this machine: prints a table (not collected by pytest).

    OPENBLAS_NUM_THREADS=1 nice -n 10 python tests/benchmarks/bench_experiments.py [--images 2000]

Uses a random 784-600-10 integer network (spike statistics close to a trained one's are not
needed for timing) and the real MNIST test images from ``$BS4NN_DATA``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from bs4nn.train.checkpoint import Checkpoint
from bs4nn.train.datasets import load_split
from bs4nn.train.experiments import baseline, bnn, sweeps
from bs4nn.train.experiments.models import model_from_checkpoint
from bs4nn.train.experiments.report import analyse, write_report

SIZES = [784, 600, 10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="test images per run (default: 2000)")
    parser.add_argument("--bnn-images", type=int, default=10000, help="training images for one BNN epoch")
    args = parser.parse_args()
    images, labels = load_split("mnist", "test", None, download=False)
    images, labels = images[: args.images], labels[: args.images]
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-1, 1, (SIZES[1], SIZES[0])), rng.uniform(-1, 1, (SIZES[2], SIZES[1]))]
    checkpoint = Checkpoint(
        sizes=SIZES, weights=[w.astype(np.float32) for w in weights], alphas=[1.0, 1.0], thetas=[20, 5]
    )
    model = model_from_checkpoint(checkpoint, "random.npz")
    rows = []

    def timed(name: str, points: int, function) -> None:
        start = time.perf_counter()
        function()
        seconds = time.perf_counter() - start
        rows.append((name, points, seconds, points * args.images / seconds))

    with tempfile.TemporaryDirectory() as folder:
        timed("report (analyse + 7 figures)", 1, lambda: write_report(model, analyse(model, images, labels), folder))
    timed("threshold sweep", 5, lambda: sweeps.threshold_sweep(model, images, labels, thetas=[0, 10, 20, 40, 80]))
    timed("noise sweep", 3, lambda: sweeps.noise_sweep(model, images, labels, levels=[0.05, 0.5, 1.0]))
    timed("alpha rounding", 6, lambda: sweeps.alpha_rounding(model, images, labels))
    timed("real weights (golden + float)", 2, lambda: sweeps.real_weights_experiment(model, images, labels))
    print(f"{'experiment':34} {'points':>6} {'seconds':>8} {'images/s':>9}   ({args.images} MNIST test images)")
    for name, points, seconds, rate in rows:
        print(f"{name:34} {points:6d} {seconds:8.2f} {rate:9.0f}")

    train_images, train_labels = load_split("mnist", "train", None, download=False)
    count = args.bnn_images
    config = baseline.BaselineConfig(sizes=SIZES, epochs=1, validation=1000)
    start = time.perf_counter()
    baseline.train_baseline(bnn.BNN, config, train_images[:count], train_labels[:count], images, labels)
    seconds = time.perf_counter() - start
    per_epoch_55k = seconds * 55_000 / (count - config.validation)
    print(f"BNN 784-600-10: 1 epoch on {count - 1000} images {seconds:.1f} s (~{per_epoch_55k:.0f} s per 55,000)")


if __name__ == "__main__":
    main()

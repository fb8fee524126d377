"""Exporter cost: writing a 784-600-10 bit-model folder, per lane count, and evaluating it.

Run: ``nice -n 10 python tests/benchmarks/bench_export.py`` (BS4NN_DATA must point at the
datasets).  Prints, per lane count, the seconds to build and write the folder without
evaluation (memory images, C header, hashes, atomic rename, read-back), its size on disk, then
the seconds of the full-test-set golden evaluation and of ``--check`` (float vs integer model).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np

from bs4nn.export.exporter import check_model, export_model, source_from_checkpoint
from bs4nn.train.checkpoint import Checkpoint, save_checkpoint

SIZES = [784, 600, 10]
ALPHAS = [0.0312, 0.55]
THETAS = [0.7, 2.0]
LANE_COUNTS = (1, 8, 16, 32, 64)


def random_checkpoint(seed: int = 0) -> Checkpoint:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(n_out, n_in)).astype(np.float32) for n_in, n_out in itertools.pairwise(SIZES)]
    return Checkpoint(sizes=SIZES, weights=weights, alphas=ALPHAS, thetas=THETAS)


def best_of(repeats: int, work) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = work()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs per row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = source_from_checkpoint(save_checkpoint(root / "model.npz", random_checkpoint()))
        print(f"export of a random {'-'.join(map(str, SIZES))} checkpoint (best of {args.repeats})")
        print(f"{'lanes':>5} {'seconds':>8} {'folder bytes':>13} {'memory bits':>12}")
        for lanes in LANE_COUNTS:
            seconds, result = best_of(
                args.repeats,
                lambda lanes=lanes: export_model(source, root / "out", lanes=lanes, evaluate_accuracy=False),
            )
            print(
                f"{lanes:>5} {seconds:>8.3f} {result.report['folder_bytes']:>13,} {result.report['memory_bits']:>12,}"
            )
        seconds, result = best_of(1, lambda: export_model(source, root / "out", evaluate_accuracy=True))
        metrics = result.model.manifest["metrics"]
        print(f"with golden evaluation ({metrics['images']} MNIST test images): {seconds:.2f} s")
        seconds, check = best_of(1, lambda: check_model(source))
        print(
            f"--check ({check.images} images, float and integer models): {seconds:.2f} s, "
            f"differing images {check.differing_images}"
        )


if __name__ == "__main__":
    main()

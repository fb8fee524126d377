"""Early decisions by recalibration alone: a shipped BS4NN model's thresholds chosen again on the
validation split for a mean-decision-step budget, and what that costs on the test set.

Why: the early-exit core stops at the first output spike, so a model is only as fast as its
decisions are early.  ``decision_step_budget`` (``train/finish.py``) calibrates the integer
thresholds for the accuracy/latency objective after training; this script shows the trade-off
it buys on the shipped models without any new training (issue 28's table), each row chosen on
the validation split and scored once on the 10,000 test images by the golden model.

Run: ``python tests/benchmarks/bench_decision_budget.py [--model mnist fashion] [--budgets 256 120 100] [--share F]
[--search coordinate|grid]``
(BS4NN_DATA must point at the datasets).  A row's model is what ``bs4nn calibrate --model NAME --budget B
--first-spike-share F --search S -o DIR`` writes (the same ``calibrate_for_budget`` from the shipped file's
counts); ``bs4nn train --resume --out RUN --set decision_step_budget=B`` does the same for a finished run.
"""

from __future__ import annotations

import argparse
import time

from bs4nn.sim.golden import decision_statistics, run_network
from bs4nn.sim.semantics import encode_images
from bs4nn.train.calibration import calibrate_for_budget
from bs4nn.train.checkpoint import PRETRAINED_DIR, load_checkpoint
from bs4nn.train.datasets import load_split
from bs4nn.train.finish import checkpoint_network
from bs4nn.train.network import LabelledImages, binary_weights
from bs4nn.train.presets import CALIBRATION_SEARCHES, PRESETS
from bs4nn.train.run import split_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["mnist", "fashion"], help="shipped BS4NN models")
    parser.add_argument("--budgets", nargs="+", type=int, default=[256, 150, 120, 100], help="256: accuracy alone")
    parser.add_argument(
        "--share", type=float, default=0.0, help="least share of first-spike decisions on validation (0: none)"
    )
    parser.add_argument(
        "--search", choices=CALIBRATION_SEARCHES, default="coordinate", help="the threshold search (calibration_search)"
    )
    args = parser.parse_args()
    print(
        f"{'model':<8} {'budget':>6} {'counts':>9} {'val %':>6} {'val step':>8} {'test %':>7} "
        f"{'first-spike %':>13} {'mean step':>9} {'p95':>4} {'seconds':>7}"
    )
    for name in args.model:
        checkpoint = load_checkpoint(PRETRAINED_DIR / f"{name}.npz")
        network = checkpoint_network(checkpoint)
        validation = LabelledImages(*split_data(PRESETS[name], None)["validation"])
        test_images, test_labels = load_split(PRESETS[name].dataset, "test")
        test_inputs = encode_images(test_images, network.tmax, network.imax)
        signs = [binary_weights(w) for w in network.weights]
        for budget in args.budgets:
            start = time.perf_counter()
            calibration = calibrate_for_budget(network, validation, budget, args.share, args.search)
            result = run_network(test_inputs, signs, calibration.counts, network.tmax)
            figures = decision_statistics(result, network.tmax)
            print(
                f"{name:<8} {budget:>6} {'/'.join(map(str, calibration.counts)):>9} "
                f"{100 * calibration.accuracy:>6.2f} {calibration.mean_decision_time:>8.1f} "
                f"{100 * result.accuracy(test_labels):>7.2f} {100 * figures['first_spike_decisions']:>13.1f} "
                f"{figures['mean_decision_time']:>9.1f} {figures['p95_decision_time']:>4.0f} "
                f"{time.perf_counter() - start:>7.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

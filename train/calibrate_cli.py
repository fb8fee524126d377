"""``bs4nn calibrate``: a trained BS4NN model's thresholds chosen again for a decision budget
(``bs4nn.train.finish.recalibrate_model``), without training."""

from __future__ import annotations

import argparse
from pathlib import Path

from bs4nn import argtypes
from bs4nn.argtypes import add_data_dir
from bs4nn.train.presets import CALIBRATION_SEARCHES


def register(subparsers: argparse._SubParsersAction) -> None:
    calibrate = subparsers.add_parser(
        "calibrate",
        help="choose a trained model's integer thresholds again on validation for a decision-step budget",
        description="Recalibrate a trained binary BS4NN model for early first-spike decisions: its integer "
        "thresholds (counts) are chosen again on the validation split (the last 5,000 training images) by the "
        "golden model, the most accurate counts whose mean decision step is at most --budget and that decide at "
        "least --first-spike-share of the images by a first output spike, searched from half to 1.5 times the "
        "model's own counts. The weights are not touched. Writes OUT/calibrated.npz and OUT/summary.json (the "
        "calibration, and the test split scored once by the golden model), the files of a finished run: "
        "bs4nn-export --to-bits OUT exports it.",
        epilog="example: bs4nn calibrate --model fashion --budget 150 --first-spike-share 0.95 -o runs/fashion-150",
    )
    argtypes.add_model_argument(calibrate, when_absent="its checkpoint, not a bit-model folder")
    calibrate.add_argument(
        "--budget",
        type=argtypes.positive_int,
        required=True,
        metavar="STEPS",
        help="largest mean decision step on validation (256 or more: accuracy alone)",
    )
    calibrate.add_argument(
        "--first-spike-share",
        type=argtypes.probability_below_one,
        default=0.0,
        metavar="F",
        help="least share of validation images decided by a first output spike (default 0: none)",
    )
    calibrate.add_argument(
        "--search",
        choices=CALIBRATION_SEARCHES,
        default="grid",
        help="coordinate ascent one layer at a time, or the grid of the last two layers' counts (default: grid)",
    )
    argtypes.add_output_argument(calibrate, "DIR", "new output folder", required=True)
    add_data_dir(calibrate)
    calibrate.set_defaults(handler=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from bs4nn.train.checkpoint import check_run_folder
    from bs4nn.train.finish import recalibrate_model
    from bs4nn.train.run import trained_model_path

    source = trained_model_path(args.model, "bs4nn calibrate")
    out_dir = Path(args.output)
    check_run_folder(out_dir, resume=False, remedy="")
    recalibrate_model(source, out_dir, args.budget, args.first_spike_share, args.search, args.data_dir, print)
    print(f"written: {out_dir / 'calibrated.npz'}, {out_dir / 'summary.json'}")
    return 0

"""``bs4nn sim ...``: run the golden model (and, from the verification stage, cocotb)."""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np

from bs4nn.export.bitmodel import load_bit_model
from bs4nn.fileio import atomic_write_bytes
from bs4nn.sim.golden import GoldenResult, run_golden_images
from bs4nn.train.cli import add_data_dir
from bs4nn.train.datasets import load_split


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("sim", help="golden model and hardware simulation", description="Simulation tools.")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    golden = sim_sub.add_parser(
        "golden",
        help="accuracy of exactly what the hardware runs (the integer golden model)",
        description="Run the bit-exact golden model of a bit-model folder on a dataset split and report "
        "accuracy (ties broken as the hardware breaks them), mean decision time and spikes per layer "
        "up to the decision.",
    )
    golden.add_argument("--manifest", required=True, metavar="DIR", help="bit-model folder (from bs4nn-export)")
    golden.add_argument("--dataset", default=None, help="mnist or fashion-mnist (default: the manifest's dataset)")
    golden.add_argument("--split", default="test", choices=["train", "test"], help="dataset split (default: test)")
    golden.add_argument("--images", type=int, default=None, metavar="N", help="only the first N images")
    golden.add_argument("--save-decisions", metavar="FILE.npy", help="write the decisions (int32) to this file")
    golden.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_data_dir(golden)
    golden.set_defaults(handler=_golden)


def golden_summary(result: GoldenResult, labels: np.ndarray, tmax: int, seconds: float) -> dict:
    """The figures every report of a golden-model run quotes."""
    return {
        "images": len(labels),
        "accuracy": result.accuracy(labels),
        "mean_decision_time": float(result.decision_time.mean()),
        "no_output_spike": int((result.decision_time >= tmax).sum()),
        "mean_spikes_until_decision": [float(v) for v in result.spikes_until_decision.mean(axis=0)],
        "seconds": seconds,
        "images_per_second": len(labels) / seconds if seconds > 0 else float("inf"),
    }


def _golden(args: argparse.Namespace) -> int:
    model = load_bit_model(args.manifest)
    dataset = args.dataset or model.manifest.get("dataset", "mnist")
    images, labels = load_split(dataset, args.split, args.data_dir)
    if args.images is not None:
        images, labels = images[: args.images], labels[: args.images]
    start = time.perf_counter()
    result = run_golden_images(model.network, images, progress=not args.json)
    summary = golden_summary(result, labels, model.network.tmax, time.perf_counter() - start)
    if args.save_decisions:
        buffer = io.BytesIO()
        np.save(buffer, result.decision)
        atomic_write_bytes(args.save_decisions, buffer.getvalue())
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{dataset} {args.split}: {summary['images']} images, accuracy {100 * summary['accuracy']:.2f} %")
        decided = f"mean decision time {summary['mean_decision_time']:.1f} steps"
        print(f"{decided}, images with no output spike: {summary['no_output_spike']}")
        layers = ", ".join(f"{v:.1f}" for v in summary["mean_spikes_until_decision"])
        print(f"mean spikes per layer up to the decision (input first): {layers}")
        print(f"{summary['images_per_second']:.0f} images/s")
    return 0

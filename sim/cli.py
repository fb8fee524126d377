"""``bs4nn sim ...``: run the golden model, and the generated core under cocotb against it."""

from __future__ import annotations

import argparse
import io
import json
import sys
import time

import numpy as np

from bs4nn import argtypes
from bs4nn.argtypes import add_data_dir
from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import network_inputs
from bs4nn.export.models import named_model
from bs4nn.fileio import atomic_write_bytes, refuse_folder_target, work_directory
from bs4nn.lanes import DEFAULT_LANES
from bs4nn.sim.b1 import B1Result, b1_summary
from bs4nn.sim.golden import decision_line, golden_summary, run_model_images
from bs4nn.sim.semantics import encode_images
from bs4nn.train.datasets import load_split

WORK_WRITER = "bs4nn sim cocotb"  # the owner of its --work-dir (bs4nn.fileio.work_directory)


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("sim", help="golden model and hardware simulation", description="Simulation tools.")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    golden = sim_sub.add_parser(
        "golden",
        help="accuracy of exactly what the hardware runs (the integer golden model)",
        description="Run the bit-exact golden model of a bit-model folder on a dataset split and report "
        "accuracy (ties broken as the hardware breaks them), the share of images decided by a first output "
        "spike (the rest by the largest counter at tmax), the mean and 95th-percentile decision step and "
        "the spikes per layer up to the decision.",
    )
    argtypes.add_model_argument(golden)
    golden.add_argument("--dataset", default=None, help="mnist or fashion-mnist (default: the manifest's dataset)")
    golden.add_argument("--split", default="test", choices=["train", "test"], help="dataset split (default: test)")
    golden.add_argument(
        "--images", type=argtypes.positive_int, default=None, metavar="N", help="only the first N images"
    )
    golden.add_argument("--save-decisions", metavar="FILE.npy", help="write the decisions (int32) to this file")
    golden.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_data_dir(golden)
    golden.set_defaults(handler=_golden)
    _register_cocotb(sim_sub)


def _golden(args: argparse.Namespace) -> int:
    if args.save_decisions:
        refuse_folder_target(args.save_decisions)
    model = named_model(args.model, "bs4nn sim golden")
    dataset = args.dataset or model.manifest.get("dataset", "mnist")
    images, labels = load_split(dataset, args.split, args.data_dir)
    if args.images is not None:
        if args.images > len(images):
            print(
                f"bs4nn sim golden: {dataset} {args.split} has {len(images)} images; using all of them", file=sys.stderr
            )
        images, labels = images[: args.images], labels[: args.images]
    images = network_inputs(model.network, images, f"{dataset} {args.split}")
    start = time.perf_counter()
    result = run_model_images(model.network, images, progress=not args.json)
    if isinstance(result, B1Result):
        summary = b1_summary(result, labels, model.network.latency, time.perf_counter() - start)
    else:
        summary = golden_summary(result, labels, model.network.tmax, time.perf_counter() - start)
    if args.save_decisions:
        buffer = io.BytesIO()
        np.save(buffer, result.decision)
        atomic_write_bytes(args.save_decisions, buffer.getvalue())
    if args.json:
        print(json.dumps(summary, indent=2))
    elif isinstance(result, B1Result):
        print(f"{dataset} {args.split}: {summary['images']} images, accuracy {100 * summary['accuracy']:.2f} % (B1)")
        spikes = ", ".join(f"{v:.3f}" for v in summary["spikes_per_neuron"])
        print(f"spikes per neuron per layer (input first; the output layer never spikes): {spikes}")
        print(f"decision at step {summary['decision_latency']}; {summary['images_per_second']:.0f} images/s")
    else:
        print(f"{dataset} {args.split}: {summary['images']} images, accuracy {100 * summary['accuracy']:.2f} %")
        print(decision_line(summary))
        print(
            f"decided by the tie rule: {summary['tied_decisions']} images; accuracy if ties that include the"
            f" label counted as correct (the authors' scoring, for comparison only): "
            f"{100 * summary['accuracy_ties_lenient']:.2f} %"
        )
        print(f"{summary['images_per_second']:.0f} images/s")
    return 0


def _register_cocotb(sim_sub: argparse._SubParsersAction) -> None:
    from bs4nn.sim.regress import DEFAULT_BUILD_ROOT, SIMULATORS

    cocotb = sim_sub.add_parser(
        "cocotb",
        help="simulate the generated RTL core on real images and compare it spike for spike with the golden model",
        description="Generate the core of a bit-model folder (as 'bs4nn rtl --model' does), build it with Verilator or "
        "Icarus, stream images through it with cocotb and compare, for every image, every spike (layer, neuron, "
        "time), the output spike times and counters, the decision and its time with the golden model. "
        "Exit status 0 only if every image is bit-exact ('N/N bit-exact'). On a mismatch the first differing "
        "event is printed, the image's inputs (.npy) and a waveform are written, and a one-line command "
        "reproduces it.",
    )
    argtypes.add_model_argument(cocotb)
    cocotb.add_argument("--dataset", default=None, help="mnist or fashion-mnist (default: the manifest's dataset)")
    cocotb.add_argument("--split", default="test", choices=["train", "test"], help="dataset split (default: test)")
    cocotb.add_argument(
        "--images", type=argtypes.positive_int, default=100, metavar="N", help="first N images (default: 100)"
    )
    cocotb.add_argument(
        "--first", type=argtypes.non_negative_int, default=0, metavar="I", help="start at image I (default: 0)"
    )
    cocotb.add_argument(
        "--inputs",
        metavar="FILE.npy",
        help="spike times (n, n_in) or (n_in,) to stream instead of dataset images (e.g. a saved failure)",
    )
    cocotb.add_argument("--simulator", choices=SIMULATORS, default="verilator", help="default: verilator")
    cocotb.add_argument(
        "--lanes",
        type=argtypes.core_lanes,
        help=f"core lanes: 1..64 block-RAM counters, or the widest layer's width or more for the wide core "
        f"(default: the manifest's lanes, else {DEFAULT_LANES})",
    )
    cocotb.add_argument("--early-exit", action="store_true", help="stop each image at its first output spike")
    cocotb.add_argument(
        "--backpressure",
        type=float,
        default=0.0,
        metavar="P",
        help="probability of a random gap before each input beat and of a delay before taking each result (default: 0)",
    )
    cocotb.add_argument(
        "--seed", type=argtypes.non_negative_int, default=0, help="seed of the random gaps (default: 0)"
    )
    cocotb.add_argument("--waves", action="store_true", help="record a waveform of the whole run in the work folder")
    cocotb.add_argument(
        "--work-dir", default="sim_build/run", metavar="DIR", help="job, results, failures (default: sim_build/run)"
    )
    cocotb.add_argument(
        "--build-dir",
        default=str(DEFAULT_BUILD_ROOT),
        metavar="DIR",
        help=f"compiled simulators, reused across runs (default: {DEFAULT_BUILD_ROOT})",
    )
    cocotb.add_argument("--json", action="store_true", help="print the summary as JSON")
    cocotb.add_argument(
        "--quiet", action="store_true", help="no progress bar (it is off anyway when stderr is not a terminal)"
    )
    add_data_dir(cocotb)
    cocotb.set_defaults(handler=_cocotb)


def _cocotb(args: argparse.Namespace) -> int:
    from bs4nn.sim.regress import StreamOptions, run_regression

    if not 0.0 <= args.backpressure <= 1.0:
        raise Bs4nnError(f"--backpressure must lie in 0..1, got {args.backpressure}")
    model = named_model(args.model, "bs4nn sim cocotb")  # either family: the core is picked by bs4nn.rtl.family
    manifest = str(model.path)
    network, lane_count = model.network, args.lanes or model.lanes
    images = labels = None
    if args.inputs:
        try:
            input_times = np.load(args.inputs, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise Bs4nnError(f"{args.inputs}: not a readable .npy file ({error})") from error
        input_times = network_inputs(network, input_times, args.inputs, spike_times=True)
        source = args.inputs
    else:
        dataset = args.dataset or model.manifest.get("dataset", "mnist")
        images, labels = load_split(dataset, args.split, args.data_dir)
        images = images[args.first : args.first + args.images]
        labels = labels[args.first : args.first + args.images]
        if len(images) == 0:
            raise Bs4nnError(f"no images from index {args.first} in {dataset} {args.split}")
        input_times = encode_images(network_inputs(network, images, dataset), network.tmax, network.imax)
        source = f"{dataset} {args.split} [{args.first}:{args.first + len(images)}]"
    work_directory(args.work_dir, WORK_WRITER, legacy=lambda folder: [] if (folder / "job.npz").is_file() else None)
    options = StreamOptions(
        seed=args.seed,
        input_gap_probability=args.backpressure,
        result_delay_probability=args.backpressure,
        early_exit=args.early_exit,
    )
    report = run_regression(
        manifest,
        input_times,
        simulator=args.simulator,
        lanes=lane_count,
        options=options,
        work_dir=args.work_dir,
        build_root=args.build_dir,
        images=images,
        waves=args.waves,
        progress=not (args.quiet or args.json),
    )
    summary = {
        "source": source,
        "simulator": args.simulator,
        "lanes": lane_count,
        "early_exit": args.early_exit,
        "images": report.images,
        "bit_exact": report.bit_exact,
        "build_seconds": report.build_seconds,
        "sim_seconds": report.sim_seconds,
        "images_per_second": report.images_per_second,
        "mean_cycles": float(report.cycles.mean()) if len(report.cycles) else None,
        "max_cycles": int(report.cycles.max()) if len(report.cycles) else None,
        "first_failure": report.first_failure,
        "mismatch": report.mismatch.describe() if report.mismatch else None,
        "artefacts": {name: str(path) for name, path in report.artefacts.items()},
        "reproduce": report.reproduce,
    }
    if labels is not None and report.images:
        summary["hardware_accuracy"] = None if not report.ok else float(np.mean(report.decisions == labels))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{source} through {args.simulator} (lanes {lane_count}{', early exit' if args.early_exit else ''})")
        print(f"{report.bit_exact}/{report.images} bit-exact")
        cycles = ""
        if len(report.cycles):
            cycles = f", {summary['mean_cycles']:.0f} cycles/image (max {summary['max_cycles']})"
        print(f"{report.images_per_second:.2f} images/s simulated (build {report.build_seconds:.1f} s){cycles}")
        if summary.get("hardware_accuracy") is not None:
            print(f"accuracy of the hardware's decisions: {100 * summary['hardware_accuracy']:.2f} %")
        if report.mismatch is not None:
            print(f"FIRST MISMATCH image {report.first_failure}: {report.mismatch.describe()}")
            for name, path in report.artefacts.items():
                print(f"  {name}: {path}")
            print(f"reproduce: {report.reproduce}")
    return 0 if report.ok else 1

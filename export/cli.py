"""``bs4nn-export`` (and ``bs4nn export``, the same options): checkpoint -> bit-model folder.

Three actions: ``--to-bits SOURCE -o DIR`` writes a folder, ``--from-bits DIR`` verifies one,
``--check SOURCE`` compares the float model with the integer model on the test set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict

from bs4nn import argtypes
from bs4nn.argparsing import OneLineParser
from bs4nn.argtypes import add_data_dir
from bs4nn.errors import Bs4nnError
from bs4nn.export.exporter import (
    ExportResult,
    ModelSource,
    check_model,
    resolve_source,
    source_from_npy,
    verify_bit_model,
)
from bs4nn.export.models import export_source
from bs4nn.export.naming import SHIPPED_NAMES
from bs4nn.export.nirgraph import deployed_model, network_graph, source_from_nir, write_graph
from bs4nn.fileio import sha256_path
from bs4nn.lanes import DEFAULT_LANES, MAX_LANES
from bs4nn.sim.semantics import IMAX, TMAX

PROG = "bs4nn-export"
EXIT_MISMATCH = 1
DEFAULT_NPY_DATASET = "mnist"
RELU_BITS, RELU_WINDOW = 1, 16
"""--from-relu defaults: 1-bit weights, 16-step hidden windows (the B1 presets')."""
SOURCE_HELP = (
    "a checkpoint .npz, a training run folder (its calibrated.npz, else best.npz, else checkpoint.npz), "
    f"or a shipped model name ({', '.join(sorted(SHIPPED_NAMES))})"
)
DESCRIPTION = (
    "Export a trained BS4NN to a bit-model folder: sign bits (1 = +1 for w >= 0, a weight of exactly 0 "
    "is +1; 0 = -1), alphas rounded to two decimals, integer thresholds ceil(theta / alpha_q), hardware "
    "widths, memory images (.hex/.mem for $readmemh, Xilinx .coe, Intel .mif), the C header "
    "bs4nn_model.h and a manifest.json holding the sha256 of every file and the test accuracy of the "
    "exported model measured by the golden model. The folder is written atomically."
)
HELP_WIDTH = 100
EPILOG = """examples:
  bs4nn-export --to-bits mnist -o models/mnist               shipped model, accuracy on the MNIST test set
  bs4nn-export --to-bits runs/mnist/best.npz -o out --lanes 32
  bs4nn-export --from-npy W0.npy W1.npy --alpha 4.87 1.2 --theta 100 -o out
  bs4nn-export --to-nir mnist -o mnist.nir                    NIR graph of the shipped model
  bs4nn-export --from-nir mnist.nir -o out                   NIR graph -> bit-model folder
  bs4nn-export --from-bits models/mnist                      verify hashes and geometry, print a summary
  bs4nn-export --check runs/mnist                            float model vs integer model, must differ on 0 images
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """All options of the exporter (shared by ``bs4nn-export`` and ``bs4nn export``)."""
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--to-bits", metavar="SOURCE", help=f"export SOURCE to the folder -o DIR; SOURCE is {SOURCE_HELP}"
    )
    action.add_argument(
        "--from-bits", metavar="DIR", help="read a bit-model folder back: verify every sha256 and the geometry"
    )
    action.add_argument(
        "--check",
        metavar="SOURCE",
        nargs="?",
        const="",
        help="evaluate the float model (alpha_q * B, theta) and the integer model on the test set; report both "
        "accuracies and the images whose spike times differ (exit 1 unless 0); SOURCE may be left out with "
        "--from-npy",
    )
    action.add_argument(
        "--to-nir",
        metavar="SOURCE",
        help="write SOURCE (as for --to-bits, or a bit-model folder) as a NIR graph to the new file -o FILE.nir: "
        "Input -> (Linear alpha_q * B -> IF) per layer -> Output, the rest of the contract in its metadata",
    )
    argtypes.add_output_argument(
        parser,
        "DIR",
        "output folder for --to-bits / --from-npy / --from-nir / --from-relu: new, empty, or one bs4nn-export wrote "
        "(its files are replaced, yours kept; any other folder is refused); the new .nir file for --to-nir",
    )
    parser.add_argument(
        "--lanes",
        type=argtypes.lanes,
        metavar="N",
        default=DEFAULT_LANES,
        help=f"neurons updated per memory word = weight-memory word width, 1..{MAX_LANES} (default {DEFAULT_LANES})",
    )
    parser.add_argument(
        "--counter-bits",
        type=argtypes.positive_int,
        metavar="N",
        help="the target's signed counter width: fail if a layer needs more, and declare N in the manifest "
        "(default: each layer gets the width its fan-in and threshold need)",
    )
    parser.add_argument("--no-eval", action="store_true", help="skip the test-set accuracy (dataset not on disk)")
    parser.add_argument(
        "--images",
        type=argtypes.positive_int,
        metavar="N",
        help="evaluate on the first N test images only (default: all)",
    )
    npy = parser.add_argument_group("weights trained elsewhere")
    npy.add_argument(
        "--from-npy",
        nargs="+",
        metavar="W.npy",
        help="one .npy per layer, real or +-1 weights of shape (out, in) or (out, in, 1); exports to -o DIR",
    )
    npy.add_argument("--alpha", nargs="+", type=float, metavar="A", help="per-layer alpha (one per layer)")
    npy.add_argument("--theta", nargs="+", type=float, metavar="T", help="threshold: one value, or one per layer")
    npy.add_argument("--tmax", type=argtypes.positive_int, help=f"time steps (default {TMAX})")
    npy.add_argument("--imax", type=argtypes.positive_int, help=f"largest pixel intensity (default {IMAX})")
    npy.add_argument(
        "--from-nir",
        metavar="FILE.nir",
        help="a NIR graph of Linear/Affine (no bias) + IF layers: signs, one alpha per layer (mean magnitude), "
        "integer thresholds of NIR's v > v_threshold; exports to -o DIR",
    )
    npy.add_argument(
        "--dataset",
        help=f"dataset the weights were trained on (default: the NIR graph's metadata, else {DEFAULT_NPY_DATASET})",
    )
    relu = parser.add_argument_group("float ReLU networks trained elsewhere, deployed as B1 networks")
    relu.add_argument(
        "--from-relu",
        nargs="+",
        metavar="NPY",
        help="W0.npy b0.npy W1.npy b1.npy ...: a ReLU MLP on pixels / imax, weights (out, in); quantised and "
        "mapped exactly to a B1 network (each hidden layer's step set on 2,000 training images); exports to -o DIR",
    )
    relu.add_argument("--weight-bits", type=argtypes.positive_int, metavar="B", help=f"1..8 (default {RELU_BITS})")
    relu.add_argument(
        "--window", type=argtypes.positive_int, metavar="K", help=f"hidden windows in steps (default {RELU_WINDOW})"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_data_dir(parser)
    parser.set_defaults(handler=handle)


def register(subparsers: argparse._SubParsersAction) -> None:
    """``bs4nn export``: the same as ``bs4nn-export``."""
    parser = subparsers.add_parser(
        "export",
        help="checkpoint -> bit-model folder (same as bs4nn-export)",
        description=textwrap.fill(DESCRIPTION, HELP_WIDTH),
        epilog=EPILOG.replace("bs4nn-export", "bs4nn export"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description=textwrap.fill(DESCRIPTION, HELP_WIDTH),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def source_of(args: argparse.Namespace, given: str | None) -> ModelSource:
    """The model named on the command line: SOURCE or --from-npy (exactly one)."""
    npy_only = {"--alpha": args.alpha, "--theta": args.theta, "--tmax": args.tmax, "--imax": args.imax}
    if args.from_nir:
        if given or args.from_npy:
            raise Bs4nnError("give one model: SOURCE, --from-npy or --from-nir")
        return source_from_nir(args.from_nir, args.dataset)
    npy_only["--dataset"] = args.dataset
    if args.from_npy:
        if given:
            raise Bs4nnError(f"give either SOURCE ({given}) or --from-npy, not both")
        return source_from_npy(
            args.from_npy,
            args.alpha,
            args.theta,
            tmax=args.tmax or TMAX,
            imax=args.imax or IMAX,
            dataset=args.dataset or DEFAULT_NPY_DATASET,
        )
    misplaced = [name for name, value in npy_only.items() if value is not None]
    if misplaced:
        raise Bs4nnError(f"{', '.join(misplaced)} only apply to --from-npy (a checkpoint carries its own)")
    if not given:
        raise Bs4nnError("name a model: --to-bits SOURCE, --check SOURCE, or --from-npy W0.npy ...")
    return resolve_source(given)


def relu_source(args: argparse.Namespace) -> ModelSource:
    from bs4nn.export.b1export import source_from_relu

    if args.to_bits or args.from_npy or args.from_nir:
        raise Bs4nnError("give one model: --from-relu, --from-npy, --from-nir or --to-bits SOURCE")
    return source_from_relu(
        args.from_relu,
        args.weight_bits or RELU_BITS,
        args.window or RELU_WINDOW,
        tmax=args.tmax or TMAX,
        imax=args.imax or IMAX,
        dataset=args.dataset or DEFAULT_NPY_DATASET,
        data_dir=args.data_dir,
    )


def handle(args: argparse.Namespace) -> int:
    progress = not (args.quiet or args.json)
    if args.from_bits:
        return show_bit_model(args)
    if args.from_relu:
        if args.check is not None or not args.output:
            raise Bs4nnError("--from-relu exports: give -o DIR (and no --check)")
        return export_and_report(args, relu_source(args), progress)
    if args.check is not None:
        source = source_of(args, args.check)
        if source.model != "bs4nn":
            raise Bs4nnError(
                "--check compares BS4NN's float and integer models; a B1 model trains on its integer network"
            )
        result = check_model(source, args.data_dir, args.images, progress)
        if args.json:
            print(json.dumps(asdict(result), indent=2))
        else:
            print(f"{result.dataset} test: {result.images} images ({result.seconds:.1f} s)")
            print(f"float model (alpha_q * B, theta):      accuracy {100 * result.float_accuracy:.2f} %")
            print(f"integer model (signs, threshold count): accuracy {100 * result.integer_accuracy:.2f} %")
            verdict = "OK" if result.differing_images == 0 else "MISMATCH"
            print(f"images whose spike times differ: {result.differing_images} ({verdict})")
        return 0 if result.differing_images == 0 else EXIT_MISMATCH
    if args.to_nir is not None:
        return write_nir(args)
    if args.weight_bits is not None or args.window is not None:
        raise Bs4nnError("--weight-bits and --window only apply to --from-relu (a checkpoint carries its own)")
    if args.to_bits is None and not args.from_npy and not args.from_nir:
        raise Bs4nnError(
            "nothing to do: give --to-bits SOURCE, --from-npy ..., --from-nir FILE, --from-relu ..., --to-nir SOURCE, "
            "--from-bits DIR or --check SOURCE"
        )
    if not args.output:
        raise Bs4nnError("-o DIR is required to export")
    return export_and_report(args, source_of(args, args.to_bits), progress)


def export_and_report(args: argparse.Namespace, source: ModelSource, progress: bool) -> int:
    """Export ``source`` (either family, :func:`export_source`) to ``-o DIR`` and print what was written."""
    result = export_source(
        source,
        args.output,
        lanes=args.lanes,
        evaluate_accuracy=not args.no_eval,
        data_dir=args.data_dir,
        images=args.images,
        declared_counter_bits=args.counter_bits,
        progress=progress,
    )
    for warning in result.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps({"path": str(result.path), "report": result.report, **result.model.manifest}, indent=2))
    else:
        print(f"source: {source.label} ({source_digest(source)})")
        print_summary(result.model.manifest)
        if source.model == "b1":
            report = result.report
            print(f"weights: {report['weight_bits']:,} bits = {report['bin_bytes']:,} bytes of packed .bin")
        else:
            print_memory_report(result)
        print(f"wrote {result.path} ({len(result.model.manifest['files']) + 1} files, sha256 in manifest.json)")
    return 0


def write_nir(args: argparse.Namespace) -> int:
    """``--to-nir``: the deployed network as a NIR graph in a new file."""
    if not args.output:
        raise Bs4nnError("-o FILE.nir is required with --to-nir")
    network, alphas_q, dataset = deployed_model(args.to_nir)
    path = write_graph(network_graph(network, alphas_q, dataset), args.output)
    sizes = "-".join(map(str, network.sizes))
    counts = "/".join(str(layer.threshold_count) for layer in network.layers)
    print(f"wrote {path}: NIR graph of {sizes} ({dataset}), alpha_q {'/'.join(map(str, alphas_q))}, counts {counts}")
    return 0


def source_digest(source: ModelSource) -> str:
    if "sha256" in source.origin:
        return f"sha256 {source.origin['sha256'][:16]}..."
    return ", ".join(f"{entry['path']} sha256 {entry['sha256'][:16]}..." for entry in source.origin.get("files", []))


def print_summary(manifest: dict) -> None:
    """The lines that describe a bit-model folder (export and --from-bits)."""
    sizes = [manifest["layers"][0]["fan_in"]] + [entry["fan_out"] for entry in manifest["layers"]]
    print(
        f"network {'-'.join(map(str, sizes))}, tmax {manifest['tmax']}, imax {manifest['imax']}, "
        f"dataset {manifest.get('dataset', '?')}, lanes {manifest.get('lanes', '?')}, "
        f"time {manifest.get('time_bits', '?')} bits"
    )
    if manifest.get("model") == "b1":
        print_b1_layers(manifest)
    for entry in manifest["layers"] if manifest.get("model") != "b1" else ():
        alpha = ""
        if "alpha" in entry:
            alpha = f"alpha {entry['alpha']:.6g} -> {entry['alpha_q']}, theta {entry['theta']:.6g}, "
        memory = entry.get("memory")
        geometry = (
            f", memory {memory['depth']} x {memory['width']} ({memory['words_per_row']} words/row, "
            f"{memory['address_bits']} address bits)"
            if memory
            else ""
        )
        print(
            f"layer {entry['index']}: {entry['fan_in']} -> {entry['fan_out']}, {alpha}"
            f"threshold count {entry['threshold_count']}, counter {entry['counter_bits']} bits{geometry}"
        )
    metrics = manifest.get("metrics") or {}
    if metrics.get("test_accuracy") is not None:
        print(
            f"test accuracy (golden model, {metrics['dataset']} {metrics['split']}, {metrics['images']} images): "
            f"{100 * metrics['test_accuracy']:.2f} %"
        )
    else:
        print("test accuracy: not evaluated")


def print_b1_layers(manifest: dict) -> None:
    print(f"B1 network, decision at step {manifest.get('decision_latency', '?')}")
    for entry in manifest["layers"]:
        hidden = f", ramp {entry['ramp']}, window {entry['window']}" if "ramp" in entry else " (output: scores)"
        print(
            f"layer {entry['index']}: {entry['fan_in']} -> {entry['fan_out']}, {entry['weight_bits']}-bit weights"
            f"{hidden}, biases {min(entry['bias'])}..{max(entry['bias'])}, potential {entry['potential_bits']} bits"
        )


def print_memory_report(result: ExportResult) -> None:
    report = result.report
    print(
        f"memory: {report['weight_bits']:,} weight bits = {report['bin_bytes']:,} bytes of packed .bin "
        f"(as float32: {report['float32_bytes']:,} bytes, {report['ratio_to_float32']:.1f}x larger); "
        f"weight memories {report['memory_bits']:,} bits; folder {report['folder_bytes']:,} bytes on disk"
    )


def show_bit_model(args: argparse.Namespace) -> int:
    model = verify_bit_model(args.from_bits)
    files = model.manifest.get("files", {})
    if args.json:
        print(json.dumps(model.manifest, indent=2))
        return 0
    source = model.manifest.get("source", {})
    print(f"{model.path}: {model.manifest['format']} v{model.manifest['version']}, source {source.get('kind', '?')}")
    print_summary(model.manifest)
    print(f"all {len(files)} files match their sha256; manifest sha256 {sha256_path(model.path / 'manifest.json')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``bs4nn-export`` console script."""
    from bs4nn.cli import run

    args = build_parser().parse_args(argv)
    try:
        return run(args.handler, args, PROG)
    except BrokenPipeError:  # output piped into head & co: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

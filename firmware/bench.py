"""``bs4nn bench hw``: throughput and latency of a board's core, from its placed-and-routed build
and a cycle-accurate simulation of the same core.

One run: :func:`~bs4nn.firmware.build.build_bitstream` places and routes the board top (nextpnr's
Fmax and utilisation), :func:`~bs4nn.sim.regress.run_regression` streams test images through the
same core (same generator, network, lanes and mode) in Verilator and scores every image against
the golden model, counting clock cycles per image.  ``bench.json`` keeps what was MEASURED (Fmax,
resources, simulated cycles, bit-exact images, and what follows from them by arithmetic alone) apart
from what is ESTIMATED or predicted by formula (the memory estimate, the cycle formula of
:mod:`bs4nn.rtl.cycles`, the pixel coder's cycles from :func:`~bs4nn.firmware.pixel_coder.sort_cycles`).
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import load_bit_model
from bs4nn.fileio import atomic_write_text, output_directory
from bs4nn.firmware.build import BOARDS, build_bitstream
from bs4nn.firmware.pixel_coder import sort_cycles
from bs4nn.rtl.family import core_params, predicted_cycles_of
from bs4nn.rtl.params import CoreParams
from bs4nn.sim.regress import RegressionReport, StreamOptions, run_regression

WRITER = "bs4nn bench hw"  # the owner of its output folders (bs4nn.fileio.output_directory)
BENCH_FILE = "bench.json"
RESOURCE_BELS = {
    # what nextpnr places, by family: resource name -> nextpnr's bel type
    "ice40": {"logic_cells": "ICESTORM_LC", "block_rams": "ICESTORM_RAM", "sprams": "ICESTORM_SPRAM"},
    "ecp5": {"luts": "TRELLIS_COMB", "flip_flops": "TRELLIS_FF", "block_rams": "DP16KD"},
}


def bench_hardware(
    manifest: str | os.PathLike,
    input_times: np.ndarray,
    out: str | os.PathLike,
    *,
    board: str,
    lanes: int,
    early_exit: bool,
    build_root: str | os.PathLike,
    quick_build: bool = False,
    target_mhz: float | None = None,
    seed: int | None = None,
    notify: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build, place and route, simulate ``input_times`` ``(n, n_in)``; write ``OUT/bench.json``.

    ``OUT`` also holds the board build (``OUT/bitstream``: report.json, tool logs) and the
    simulation's job and results (``OUT/sim``); the Verilator build is cached under ``build_root``
    (``quick_build``: its C++ unoptimised, for small networks).  ``target_mhz``: the clock
    constraint nextpnr works to, ``seed`` its placer's (:func:`~bs4nn.firmware.build.build_bitstream`).
    """
    if board not in BOARDS:
        raise Bs4nnError(f"unknown board {board!r}; choose from {', '.join(sorted(BOARDS))}")
    network = load_bit_model(manifest).network
    with output_directory(out, WRITER) as tmp:
        notify(f"placing and routing the {board} board top ({lanes} lanes) ...")
        build = build_bitstream(
            network,
            tmp / "bitstream",
            board=board,
            lanes=lanes,
            early_exit=early_exit,
            model_info={"source": str(Path(manifest).resolve())},
            notify=notify,
            target_mhz=target_mhz,
            seed=seed,
        )
        notify(f"simulating the core on {len(input_times)} images in Verilator ...")
        regression = run_regression(
            manifest,
            input_times,
            lanes=lanes,
            options=StreamOptions(early_exit=early_exit),
            work_dir=tmp / "sim",
            build_root=build_root,
            failure_waves=False,
            quick_build=quick_build,
        )
        params = core_params(network, lanes)
        predicted = predicted_cycles_of(params, network, np.asarray(input_times), early_exit)
        bench = bench_record(build, regression, params, np.asarray(input_times), predicted)
        atomic_write_text(tmp / BENCH_FILE, json.dumps(bench, indent=2) + "\n")
    return bench


def bench_record(
    build: dict[str, Any],
    regression: RegressionReport,
    params: CoreParams,
    input_times: np.ndarray,
    predicted: np.ndarray,
) -> dict[str, Any]:
    """``bench.json``: the build's and the simulation's measurements, then the formulas' figures
    (``predicted``: the core's own cycles per image, :func:`~bs4nn.rtl.family.predicted_cycles_of`)."""
    fmax = min(clock["achieved"] for clock in build["measured"]["fmax_mhz"].values())
    cycles = [int(c) for c in regression.cycles]
    if not cycles:
        raise Bs4nnError("the simulation reported no cycle counts")
    cycles_mean = statistics.fmean(cycles)
    early_exit = build["early_exit"]
    coder = sort_cycles(input_times, params.tmax)
    coder_per_image = float(coder.mean()) + params.tmax  # sort, then clear the histogram
    return {
        "board": build["board"],
        "device": build["device"],
        "lanes": build["lanes"],
        "mode": "early-exit" if early_exit else "full",
        "target_mhz": build.get("target_mhz"),
        "seed": build.get("seed"),
        "images": regression.images,
        "network": build["network"],
        "model": build["model"],
        "measured": {
            "bit_exact": regression.bit_exact,
            "first_failure": regression.first_failure,
            "fmax_mhz": round(fmax, 2),
            "cycles_mean": round(cycles_mean, 1),
            "cycles_max": max(cycles),
            "images_per_second": round(fmax * 1e6 / cycles_mean),
            "latency_us_mean": round(cycles_mean / fmax, 3),
            "latency_us_max": round(max(cycles) / fmax, 3),
            "resources": resources(build),
            "board_clock_hz": build["clock_hz"],
            "images_per_second_at_board_clock": round(build["clock_hz"] / cycles_mean),
            "how": "Fmax and resources: nextpnr (placed and routed board top); cycles: Verilator simulation of "
            "the core, images back to back, from the testbench's start of an image (the previous result taken) to "
            "its result taken: the core's own cycles (estimated.predicted_cycles_mean), what lies between images "
            "(the narrow cores' counter clear, none in the wide core; after an early exit, the beat on offer and "
            "the end beat: the driver honours the core's skip, as the board's event source does) and a 3-cycle "
            "testbench "
            "hand-over; rates and latencies: Fmax / cycles",
        },
        "estimated": {
            # the core alone, first beat to result, by the cycle-exact formula of bs4nn.rtl.cycles
            "predicted_cycles_mean": round(float(predicted.mean()), 1),
            "pixel_coder": {
                "sort_cycles_mean": round(float(coder.mean()), 1),
                "sort_cycles_max": int(coder.max()),
                "clear_cycles": params.tmax,
                "images_per_second_at_fmax": round(fmax * 1e6 / coder_per_image),
                "how": "cycle-exact formula bs4nn.firmware.pixel_coder.sort_cycles (checked against simulation in "
                "tests/test_firmware_parts.py); the coder runs before the core sees an image",
            },
            "memory": build["estimated"],
        },
        "sim_seconds": round(regression.sim_seconds, 1),
        "build_seconds": build["build_seconds"],
    }


def resources(build: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Used and available, per resource, as nextpnr placed them (iCE40: yosys's LUT and FF counts
    too, each against the logic cells, which hold one LUT4 and one flip-flop each)."""
    family = BOARDS[build["board"]].family
    placed = build["measured"].get("nextpnr_utilization", {})
    found = {
        name: {"used": placed[bel]["used"], "available": placed[bel]["available"]}
        for name, bel in RESOURCE_BELS[family].items()
        if bel in placed
    }
    if family == "ice40" and "logic_cells" in found:
        yosys = build["measured"].get("yosys", {})
        available = found["logic_cells"]["available"]
        found["luts"] = {"used": yosys.get("luts", 0), "available": available}
        found["flip_flops"] = {"used": yosys.get("flip_flops", 0), "available": available}
    return found


def bench_table(bench: dict[str, Any]) -> str:
    """The row(s) ``bs4nn bench hw`` prints: one line of figures, one of resources."""
    measured, coder = bench["measured"], bench["estimated"]["pixel_coder"]
    header = f"{'board':<11} {'lanes':>5} {'mode':<10} {'Fmax MHz':>8} {'cycles':>8} {'max':>6} "
    header += f"{'images/s':>9} {'us mean':>8} {'us max':>7} {'bit-exact':>11}"
    row = f"{bench['board']:<11} {bench['lanes']:>5} {bench['mode']:<10} {measured['fmax_mhz']:>8.1f} "
    row += f"{measured['cycles_mean']:>8.1f} {measured['cycles_max']:>6} {measured['images_per_second']:>9,} "
    row += f"{measured['latency_us_mean']:>8.2f} {measured['latency_us_max']:>7.2f} "
    row += f"{measured['bit_exact']:>5}/{bench['images']:<5}"
    used = ", ".join(f"{name} {r['used']}/{r['available']}" for name, r in measured["resources"].items())
    target, seed = bench.get("target_mhz"), bench.get("seed")
    placed = "nextpnr: " + ("the board clock" if target is None else f"target {target} MHz")
    placed += ", its default seed" if seed is None else f", seed {seed}"
    coder_line = (
        f"pixel coder (formula): {coder['sort_cycles_mean']:.0f} cycles/image + {coder['clear_cycles']} to clear, "
        f"{coder['images_per_second_at_fmax']:,} images/s at Fmax"
    )
    return "\n".join([header, row, f"resources: {used}", placed, coder_line])

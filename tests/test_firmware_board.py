"""Loopback: the simulated board top (UART, frames, pixel coder, RTL core) talking to the REAL
host driver (pyserial on a pseudo-terminal), answers checked against the golden model."""

from __future__ import annotations

import numpy as np
import pytest

from bs4nn.export.layout import signs_from_words, weight_memory_words
from bs4nn.firmware.board import BoardTop
from bs4nn.firmware.host import BoardError, BoardLink, BoardShape
from bs4nn.firmware.loopback import run_with_host
from bs4nn.firmware.protocol import ErrorCode, FrameDecoder, FrameType, encode_frame, image_frame
from bs4nn.sim.golden import IntegerLayer, IntegerNetwork, random_network, run_golden, run_golden_images
from bs4nn.sim.semantics import encode_images

DIVISOR = 4  # clock cycles per UART bit: the fastest the UART allows, for simulation speed
LANES = 8
HOST_TIMEOUT_S = 240.0  # wall clock per reply: the Python simulation is slow on a loaded machine


def shape_of(network: IntegerNetwork) -> BoardShape:
    return BoardShape(network.layers[0].fan_in, network.layers[-1].fan_out, network.tmax, network.imax)


def assert_result_is_golden(result, golden, row: int) -> None:
    assert result.decision == golden.decision[row]
    assert result.decision_time == golden.decision_time[row]
    assert result.spike_times == tuple(golden.spike_times[-1][row])
    assert result.counts == tuple(golden.output_counts[row])


def test_mnist_images_through_uart_match_golden(mnist_test) -> None:
    """Real MNIST test images, as pixel frames (coded on the board) and as event frames."""
    images, _ = mnist_test
    images = images[:3]
    network = random_network([784, 16, 10], [20, 2], seed=3)  # tmax 256, imax 255: the real coding
    golden = run_golden_images(network, images)
    assert (golden.decision_time < network.tmax).any()  # some outputs do fire

    def host(path: str):
        with BoardLink.open(path, shape_of(network), timeout_s=HOST_TIMEOUT_S) as link:
            return [link.classify(images[0]), link.classify(images[1]), link.classify_events(images[2])]

    results, _ = run_with_host(BoardTop(network, divisor=DIVISOR, lanes=LANES), host)
    for row, result in enumerate(results):
        assert_result_is_golden(result, golden, row)


def tiny_network(imax: int = 255) -> IntegerNetwork:
    rng = np.random.default_rng(7)
    layers = (
        IntegerLayer(rng.integers(0, 2, size=(4, 20), dtype=np.uint8), 2),
        IntegerLayer(rng.integers(0, 2, size=(3, 4), dtype=np.uint8), 1),
    )
    return IntegerNetwork(layers, tmax=8, imax=imax)


def test_bad_frames_are_rejected_and_change_nothing() -> None:
    network = tiny_network(imax=200)
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 201, size=(2, 20))
    golden = run_golden_images(network, pixels)
    good = image_frame(pixels[0], network.imax)
    bad_crc = bytearray(good)
    bad_crc[7] ^= 0x40
    too_bright = encode_frame(FrameType.IMAGE, bytes([201] * 20))
    unordered = encode_frame(FrameType.EVENTS, bytes([0, 1, 0, 5, 0, 2, 0, 3]))  # time 5 then 3
    ragged = encode_frame(FrameType.EVENTS, bytes([0, 1, 0, 5, 0]))

    def host(path: str):
        codes = []
        with BoardLink.open(path, shape_of(network), timeout_s=HOST_TIMEOUT_S) as link:
            first = link.classify(pixels[0])
            for frame in (bytes(bad_crc), too_bright, unordered, ragged, encode_frame(0x55, b""), good[:9]):
                with pytest.raises(BoardError) as caught:
                    link.exchange(frame)
                codes.append(caught.value.code)
            return first, codes, link.classify(pixels[1])

    board = BoardTop(network, divisor=DIVISOR, lanes=LANES, timeout_cycles=2000)
    (first, codes, second), _ = run_with_host(board, host)
    assert codes == [
        ErrorCode.BAD_CRC,
        ErrorCode.BAD_VALUE,
        ErrorCode.BAD_VALUE,
        ErrorCode.BAD_LENGTH,
        ErrorCode.BAD_TYPE,
        ErrorCode.TIMEOUT,
    ]
    assert_result_is_golden(first, golden, 0)
    assert_result_is_golden(second, golden, 1)


def test_weight_upload_changes_the_model_without_a_new_bitstream() -> None:
    network = tiny_network()
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, size=(1, 20))
    words = weight_memory_words(network.layers[0].signs, LANES)
    new_words = words.copy()
    new_words[:4] ^= np.uint64(0b1111)  # flip inputs 0..3 towards every hidden neuron
    new_signs = signs_from_words(new_words, 4, 20, LANES)
    changed = IntegerNetwork((IntegerLayer(new_signs, 2), network.layers[1]), tmax=8, imax=255)
    golden = run_golden(changed, encode_images(pixels, 8, 255))

    def host(path: str):
        with BoardLink.open(path, shape_of(network), timeout_s=HOST_TIMEOUT_S) as link:
            for address in range(4):
                link.write_weight(0, address, int(new_words[address]), LANES)
            with pytest.raises(BoardError) as caught:
                link.write_weight(0, 20, 0, LANES)  # past the layer's memory
            return caught.value.code, link.classify(pixels[0])

    (code, result), _ = run_with_host(BoardTop(network, divisor=DIVISOR, lanes=LANES), host)
    assert code == ErrorCode.BAD_VALUE
    assert_result_is_golden(result, golden, 0)


def test_early_exit_board_gives_the_golden_decision() -> None:
    network = tiny_network()
    pixels = np.random.default_rng(3).integers(0, 256, size=(3, 20))
    golden = run_golden_images(network, pixels)

    def host(path: str):
        with BoardLink.open(path, shape_of(network), timeout_s=HOST_TIMEOUT_S) as link:
            return [link.classify(row) for row in pixels]

    results, _ = run_with_host(BoardTop(network, divisor=DIVISOR, lanes=LANES, early_exit=True), host)
    assert [r.decision for r in results] == list(golden.decision)
    assert [r.decision_time for r in results] == list(golden.decision_time)


def test_pixel_coder_cycles_follow_the_counting_sort_formula() -> None:
    """2 cycles a step (prefix sums), 3 per spiking pixel and 2 per black pixel (scatter)."""
    network = tiny_network()
    pixels = np.random.default_rng(4).integers(0, 256, size=(2, 20))
    pixels[1, :7] = 0  # black pixels never spike
    coding_cycles = []

    async def count_coding(ctx) -> None:
        high = 0
        async for _, _, coding in ctx.tick().sample(board.coding):
            if coding:
                high += 1
            elif high:
                coding_cycles.append(high)
                high = 0

    def host(path: str):
        with BoardLink.open(path, shape_of(network), timeout_s=HOST_TIMEOUT_S) as link:
            return [link.classify(row) for row in pixels]

    board = BoardTop(network, divisor=DIVISOR, lanes=LANES)
    run_with_host(board, host, monitors=[count_coding])
    spikes = (encode_images(pixels, network.tmax, network.imax) < network.tmax).sum(axis=1)
    n_in = network.layers[0].fan_in
    assert coding_cycles == [2 * network.tmax + 3 * s + 2 * (n_in - s) for s in spikes]


def test_a_frame_sent_while_the_board_is_busy_is_ignored() -> None:
    network = tiny_network()
    pixels = np.random.default_rng(6).integers(0, 256, size=(3, 20))
    golden = run_golden_images(network, pixels)

    def host(path: str):
        with BoardLink.open(path, shape_of(network), timeout_s=HOST_TIMEOUT_S) as link:
            # the second frame starts while the board still works on (and answers) the first
            link.port.write(image_frame(pixels[0], 255) + image_frame(pixels[1], 255))
            decoder, frames = FrameDecoder(), []
            for _ in range(60):  # ~3 s of wall clock: many times the frames' simulated duration
                frames += decoder.feed(link.port.read(256))
            return frames, link.classify(pixels[2])

    (frames, third), _ = run_with_host(BoardTop(network, divisor=DIVISOR, lanes=LANES), host)
    assert [frame.frame_type for frame in frames] == [FrameType.RESULT]
    assert frames[0].payload[0] == golden.decision[0]
    assert_result_is_golden(third, golden, 2)


@pytest.mark.slow
def test_full_size_784_600_10_board_on_mnist(mnist_test) -> None:
    """The full-size network through the whole simulated board (~10 s an image)."""
    images, _ = mnist_test
    images = images[:6]
    network = random_network([784, 600, 10], [20, 5], seed=1)
    golden = run_golden_images(network, images)

    def host(path: str):
        with BoardLink.open(path, shape_of(network), timeout_s=HOST_TIMEOUT_S) as link:
            send = (link.classify, link.classify_events)  # alternate IMAGE and EVENTS frames
            return [send[index % 2](row) for index, row in enumerate(images)]

    results, _ = run_with_host(BoardTop(network, divisor=DIVISOR, lanes=LANES), host)
    for row, result in enumerate(results):
        assert_result_is_golden(result, golden, row)


def test_board_without_initial_weights_works_after_an_upload() -> None:
    """The SPRAM configuration: the bitstream holds no weights; the host uploads them first."""
    network = tiny_network()
    pixels = np.random.default_rng(9).integers(0, 256, size=(2, 20))
    golden = run_golden_images(network, pixels)

    def host(path: str):
        with BoardLink.open(path, shape_of(network), timeout_s=HOST_TIMEOUT_S) as link:
            before = link.classify(pixels[0])  # all weights 0 (= -1): no hidden neuron can fire
            link.upload_signs(network, LANES)
            return before, [link.classify(row) for row in pixels]

    board = BoardTop(network, divisor=DIVISOR, lanes=LANES, weight_init=False)
    (before, results), _ = run_with_host(board, host)
    assert before.spike_times == (network.tmax,) * 3
    for row, result in enumerate(results):
        assert_result_is_golden(result, golden, row)

"""Host driver: talk to a bs4nn board (or its simulation) over a serial port with pyserial.

One request, one reply: the driver sends a frame and waits for the board's ``RESULT``, ``ACK``
or ``ERROR`` frame before sending the next.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import serial

from bs4nn.errors import Bs4nnError
from bs4nn.export.layout import network_weight_writes
from bs4nn.firmware.board import check_weight_uploads
from bs4nn.firmware.protocol import (
    BENCH_RESULT_FIELDS,
    DEFAULT_BAUD,
    FIELD_BITS,
    BoardResult,
    ErrorCode,
    Frame,
    FrameDecoder,
    FrameType,
    bench_events_crc,
    bench_frame,
    bench_results_crc,
    decode_result,
    events_frame,
    image_frame,
    payload_bytes,
    result_widths,
    unpack_fields,
    weight_frame,
)
from bs4nn.rtl.family import core_params
from bs4nn.sim.b1 import B1Network
from bs4nn.sim.golden import IntegerNetwork
from bs4nn.sim.scoreboard import expected_results
from bs4nn.sim.semantics import encode_images

DEFAULT_TIMEOUT_S = 5.0
READ_CHUNK = 256


class BoardError(Bs4nnError):
    """The board rejected a frame (it answered with an ``ERROR`` frame)."""

    def __init__(self, code: int) -> None:
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"unknown error {code}"
        super().__init__(f"board rejected the frame: {name}")
        self.code = code


@dataclass(frozen=True)
class BoardShape:
    """What the host must know of the network on the board: sizes, coding, and the widths of the
    ``RESULT`` frame's fields (:func:`~bs4nn.firmware.protocol.result_fields`; :meth:`of` takes them
    from the core's params, as the board does)."""

    n_in: int
    n_out: int
    tmax: int
    imax: int
    count_bits: int = FIELD_BITS
    time_bits: int = FIELD_BITS

    @classmethod
    def of(cls, network: IntegerNetwork | B1Network, lanes: int) -> BoardShape:
        """The shape of a board built for ``network`` at ``lanes`` (either family)."""
        widths = result_widths(core_params(network, lanes))
        return cls(network.layers[0].fan_in, network.layers[-1].fan_out, network.tmax, network.imax, **widths)


def expected_board_results(network: IntegerNetwork | B1Network, pixels: np.ndarray) -> list[BoardResult]:
    """The ``RESULT`` frame the golden model expects for each image (rows of pixels), either family:
    BS4NN's decision, first output spikes and counters; B1's decision and scores, every time field
    at the decision latency (:func:`bs4nn.sim.scoreboard.expected_results`)."""
    input_times = encode_images(np.asarray(pixels).reshape(len(pixels), -1), network.tmax, network.imax)
    return [
        BoardResult(
            int(image.decision),
            int(image.decision_time),
            tuple(int(t) for t in image.output_times),
            tuple(int(c) for c in image.output_counts),
        )
        for image in expected_results(network, input_times)
    ]


@dataclass(frozen=True)
class BenchReply:
    """A decoded ``BENCH_RESULT`` frame (:data:`~bs4nn.firmware.protocol.BENCH_RESULT_FIELDS`)."""

    images: int
    cycles: int
    stall_cycles: int
    results_crc: int
    checked_bytes: int
    block_images: int
    events_crc: int


@dataclass(frozen=True)
class BenchCheck:
    """What the golden model says a bench run of some images must report."""

    results_crc: int
    events_crc: int

    @classmethod
    def of(cls, network: IntegerNetwork | B1Network, pixels: np.ndarray, lanes: int, checked_bytes: int) -> BenchCheck:
        """The checksums for images ``pixels`` (rows) baked into a board of ``network`` at ``lanes``
        that folds the first ``checked_bytes`` of each result (the board's ``BenchReply`` says)."""
        times = encode_images(np.asarray(pixels).reshape(len(pixels), -1), network.tmax, network.imax)
        widths = result_widths(core_params(network, lanes))
        results = bench_results_crc(expected_board_results(network, pixels), checked_bytes, **widths)
        return cls(results, bench_events_crc(times, network.tmax)[-1])


class BoardLink:
    """A framed link to a board: ``classify`` images, ``send_events``, ``write_weight``."""

    def __init__(self, port: serial.SerialBase, shape: BoardShape, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.port = port
        self.shape = shape
        self.timeout_s = timeout_s
        self.decoder = FrameDecoder()
        self.pending: list[Frame] = []

    @classmethod
    def open(cls, device: str, shape: BoardShape, baud: int = DEFAULT_BAUD, timeout_s: float = DEFAULT_TIMEOUT_S):
        try:
            port = serial.serial_for_url(device, baudrate=baud, timeout=0.05)
        except (serial.SerialException, ValueError) as error:
            raise Bs4nnError(f"cannot open serial port {device}: {error}") from error
        return cls(port, shape, timeout_s)

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> BoardLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def exchange(self, frame: bytes) -> Frame:
        """Send one frame; return the board's reply (an ``ERROR`` reply raises :class:`BoardError`)."""
        self.port.reset_input_buffer()
        self.pending.clear()
        self.decoder = FrameDecoder()
        self.port.write(frame)
        self.port.flush()
        deadline = time.monotonic() + self.timeout_s
        while not self.pending:
            if time.monotonic() > deadline:
                raise Bs4nnError(f"no reply from the board within {self.timeout_s:g} s (port, baud rate, bitstream?)")
            self.pending += self.decoder.feed(self.port.read(READ_CHUNK))
        reply = self.pending.pop(0)
        if reply.frame_type == FrameType.ERROR:
            raise BoardError(reply.payload[0] if reply.payload else 0)
        return reply

    def _result(self, reply: Frame) -> BoardResult:
        if reply.frame_type != FrameType.RESULT:
            raise Bs4nnError(f"expected a result frame, got type 0x{reply.frame_type:02x}")
        shape = self.shape
        return decode_result(reply.payload, shape.n_out, count_bits=shape.count_bits, time_bits=shape.time_bits)

    def classify(self, pixels: np.ndarray) -> BoardResult:
        """Send one image's pixels (the board codes them) and return its result."""
        pixels = np.asarray(pixels).reshape(-1)
        if pixels.size != self.shape.n_in:
            raise Bs4nnError(f"an image has {pixels.size} pixels, the board's network takes {self.shape.n_in}")
        return self._result(self.exchange(image_frame(pixels, self.shape.imax)))

    def classify_events(self, pixels: np.ndarray) -> BoardResult:
        """Code one image on the host (``encode_images``) and send its spikes as events."""
        times = encode_images(np.asarray(pixels).reshape(1, -1), self.shape.tmax, self.shape.imax)[0]
        return self._result(self.exchange(events_frame(times, self.shape.tmax)))

    def bench(self, images: int) -> BenchReply:
        """Run the first ``images`` images of the board's baked block (a ``BENCH`` frame)."""
        try:
            reply = self.exchange(bench_frame(images))
        except BoardError as error:
            if error.code == ErrorCode.BAD_TYPE:
                raise Bs4nnError(
                    "the board's bitstream has no bench block (build it with 'bs4nn build --bench-images N')"
                ) from None
            if error.code == ErrorCode.BAD_VALUE:
                raise Bs4nnError(f"the board's bench block holds fewer than {images} images") from None
            raise
        if reply.frame_type != FrameType.BENCH_RESULT or len(reply.payload) != payload_bytes(BENCH_RESULT_FIELDS):
            raise Bs4nnError(f"expected a bench result frame, got type 0x{reply.frame_type:02x}")
        return BenchReply(**unpack_fields(BENCH_RESULT_FIELDS, reply.payload))

    def write_weight(self, layer: int, address: int, word: int, lanes: int) -> None:
        reply = self.exchange(weight_frame(layer, address, word, lanes))
        if reply.frame_type != FrameType.ACK:
            raise Bs4nnError(f"expected an ack frame, got type 0x{reply.frame_type:02x}")

    def upload_signs(self, network: IntegerNetwork | B1Network, lanes: int, progress: bool = False) -> int:
        """Write every weight-memory word of ``network`` (the board keeps its thresholds); return the count.

        The board's network must have the same sizes; thresholds (B1: biases, ramps, windows) are
        part of the bitstream.  1-bit weights only (:func:`~bs4nn.firmware.board.check_weight_uploads`).
        """
        from tqdm import tqdm

        check_weight_uploads(network)

        writes = network_weight_writes(network, lanes)
        with tqdm(total=len(writes), desc="weights", unit="word", disable=not progress) as bar:
            for layer, address, word in writes.tolist():
                self.write_weight(layer, address, word, lanes)
                bar.update(1)
        return len(writes)

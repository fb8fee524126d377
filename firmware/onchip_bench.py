"""On-chip benchmark mode of the board top: a block of test images, baked into the bitstream as
address events, run back to back through the core on a ``BENCH`` frame, the clock cycles counted.

Why: over the UART a board classifies at most ~13 (115,200 baud) to ~300 (3 Mbaud) images a second,
whatever its core does; with the images already on the chip the core's own rate is measured on the
board, by the board's clock, and read back in one ``BENCH_RESULT`` frame.

What the count covers: from the ``BENCH`` frame's start to the last image's result taken by the
board (the core, the event source streaming each image from block RAM, the hand-over between
images).  Not the pixel coder: the block holds images already coded to address events at build
time (:func:`bench_block`); the coder's own rate is the formula
:func:`~bs4nn.firmware.pixel_coder.sort_cycles`, reported apart.  Not the link.

Every result is checked without sending it back: the board folds each image's ``RESULT`` payload
(after an early exit: its decision and decision time),
byte by byte through the :class:`~bs4nn.firmware.payloads.ResultSerialiser` the replies use, into a
CRC-16 (:func:`~bs4nn.firmware.protocol.bench_results_crc` on the host, from the golden model).
Those bytes take one cycle each, while the core already runs the next image; a result that arrives
before the previous one is folded waits, and ``stall_cycles`` counts those cycles (0 for an MNIST
network, whose images take hundreds of cycles or more).
"""
# ruff: noqa: SIM117  # nested m.If / m.State blocks are the Amaranth idiom

from __future__ import annotations

import numpy as np
from amaranth import Module, Signal
from amaranth.lib import crc, memory, wiring
from amaranth.lib.wiring import In, Out

from bs4nn.errors import Bs4nnError
from bs4nn.firmware.frames import LENGTH_BITS
from bs4nn.firmware.pixel_coder import sort_cycles
from bs4nn.firmware.protocol import (
    BENCH_RESULT_FIELDS,
    BYTE_BITS,
    CRC_ALGORITHM,
    FIELD_BYTES,
    bench_events_crc,
    decision_bytes,
    result_payload_bytes,
    result_widths,
)
from bs4nn.rtl.params import CoreParams
from bs4nn.sim.semantics import address_events

MAX_BENCH_IMAGES = (1 << (BYTE_BITS * FIELD_BYTES)) - 1  # the frames' image counts are 2 bytes
CYCLE_BITS = dict(BENCH_RESULT_FIELDS)["cycles"] * BYTE_BITS


def bench_block(input_times: np.ndarray, tmax: int) -> tuple[list[tuple[int, int]], list[int]]:
    """The events of a block of images (``(images, n_in)`` spike times), image after image in
    :func:`~bs4nn.sim.semantics.address_events` order (the pixel coder's), and each image's count."""
    events, counts = [], []
    for times in np.asarray(input_times):
        image = address_events(times, tmax).tolist()
        events += [(int(pixel), int(time)) for pixel, time in image]
        counts.append(len(image))
    return events, counts


def check_bench_images(images: int) -> None:
    if not 1 <= images <= MAX_BENCH_IMAGES:
        raise Bs4nnError(f"a bench block holds 1 to {MAX_BENCH_IMAGES} images, not {images}")


class BenchRunner(wiring.Component):
    """Runs the block's images through the event source and folds the results into a CRC.

    ``start`` (one cycle) with ``images``: run images ``0 .. images-1`` (the control checked
    ``1 <= images <= block``).  Drives the event source (``source_*``; the block sits after the
    ``n_in`` entries of a frame's image).  ``result_taken`` pulses when the board took a core
    result into the serialiser; the runner then walks ``serial_index`` over its bytes (reading
    ``serial_byte``) and pulses ``release`` (the board may take the next).  ``result_waiting``: the
    core offers a result the board cannot take yet.  ``done`` pulses when the last result is folded;
    ``reply`` then holds the :data:`~bs4nn.firmware.protocol.BENCH_RESULT_FIELDS` values.
    """

    def __init__(self, params: CoreParams, input_times: np.ndarray, early_exit: bool = False):
        """``early_exit``: the core stops at the first output spike, so only the decision and its
        time are the golden model's: those are folded (``checked_bytes``)."""
        self.params = params
        check_bench_images(len(input_times))
        self.events, self.counts = bench_block(input_times, params.tmax)
        self.events_crc = bench_events_crc(input_times, params.tmax)
        widths = result_widths(params)
        self.checked_bytes = decision_bytes(**widths) if early_exit else result_payload_bytes(params.n_out, **widths)
        depth = params.n_in + len(self.events)
        super().__init__(
            {
                "start": In(1),
                "images": In(range(MAX_BENCH_IMAGES + 1)),
                "source_start": Out(1),
                "source_base": Out(range(depth)),
                "source_count": Out(range(params.n_in + 1)),
                "source_done": In(1),
                "result_taken": In(1),
                "result_waiting": In(1),
                "serial_index": Out(LENGTH_BITS),
                "serial_byte": In(BYTE_BITS),
                "release": Out(1),
                "done": Out(1),
                "reply_images": Out(range(MAX_BENCH_IMAGES + 1)),
                "reply_cycles": Out(CYCLE_BITS),
                "reply_stall_cycles": Out(CYCLE_BITS),
                "reply_results_crc": Out(16),
                "reply_events_crc": Out(16),
            }
        )

    def reply_values(self) -> dict[str, object]:
        """The ``BENCH_RESULT`` fields by name (for :func:`~bs4nn.firmware.payloads.payload_byte`)."""
        return {
            "images": self.reply_images,
            "cycles": self.reply_cycles,
            "stall_cycles": self.reply_stall_cycles,
            "results_crc": self.reply_results_crc,
            "checked_bytes": self.checked_bytes,
            "block_images": len(self.counts),
            "events_crc": self.reply_events_crc,
        }

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.counts = counts = memory.Memory(
            shape=range(self.params.n_in + 1), depth=len(self.counts), init=self.counts
        )
        count = counts.read_port()
        m.submodules.fingerprints = fingerprints = memory.Memory(shape=16, depth=len(self.counts), init=self.events_crc)
        fingerprint = fingerprints.read_port()  # of the images run: read while they run
        m.d.comb += [fingerprint.addr.eq(self.reply_images - 1), self.reply_events_crc.eq(fingerprint.data)]
        image = Signal(range(MAX_BENCH_IMAGES + 1))  # the next image to stream
        base = Signal.like(self.source_base)
        m.d.comb += [count.addr.eq(image), self.source_base.eq(base), self.source_count.eq(count.data)]
        with m.FSM(name="bench_stream"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [image.eq(0), base.eq(self.params.n_in), self.reply_images.eq(self.images)]
                    m.next = "FETCH"
            with m.State("FETCH"):  # the count table reads image 0
                m.next = "LAUNCH"
            with m.State("LAUNCH"):
                m.d.comb += self.source_start.eq(1)
                m.d.sync += [base.eq(base + count.data), image.eq(image + 1)]
                m.next = "STREAM"
            with m.State("STREAM"):  # meanwhile the table reads the next image's count
                with m.If(self.source_done):
                    m.next = "DRAIN"
                    with m.If(image != self.reply_images):
                        m.next = "LAUNCH"
            with m.State("DRAIN"):
                with m.If(self.done):
                    m.next = "IDLE"
        self._count_and_fold(m)
        return m

    def _count_and_fold(self, m: Module) -> None:
        """The cycle counters, and the results folded into the CRC, one registered byte a cycle."""
        m.submodules.crc = checksum = crc.Processor(CRC_ALGORITHM(data_width=BYTE_BITS))
        taken = Signal(range(MAX_BENCH_IMAGES + 1))  # results taken so far
        counting = Signal()  # from start to the last result taken
        byte, byte_valid = Signal(BYTE_BITS), Signal()  # serial_byte registered (a short path to the CRC)
        last_byte = self.serial_index == self.checked_bytes - 1
        m.d.comb += [self.reply_results_crc.eq(checksum.crc), checksum.data.eq(byte), checksum.valid.eq(byte_valid)]
        m.d.comb += checksum.start.eq(self.start)
        m.d.sync += [byte.eq(self.serial_byte), byte_valid.eq(0)]
        with m.If(self.start):
            m.d.sync += [taken.eq(0), counting.eq(1), self.reply_cycles.eq(0), self.reply_stall_cycles.eq(0)]
        with m.If(counting):
            m.d.sync += self.reply_cycles.eq(self.reply_cycles + 1)
            with m.If(self.result_waiting):
                m.d.sync += self.reply_stall_cycles.eq(self.reply_stall_cycles + 1)
        with m.If(self.result_taken):
            m.d.sync += taken.eq(taken + 1)
            with m.If(taken + 1 == self.reply_images):
                m.d.sync += counting.eq(0)
        with m.FSM(name="bench_fold"):
            with m.State("WAIT"):
                with m.If(self.result_taken):
                    m.d.sync += self.serial_index.eq(0)
                    m.next = "FOLD"
            with m.State("FOLD"):
                m.d.sync += [byte_valid.eq(1), self.serial_index.eq(self.serial_index + 1)]
                with m.If(last_byte):
                    m.d.comb += self.release.eq(1)
                    m.next = "LAST"
            with m.State("LAST"):  # the last byte enters the CRC
                with m.If(taken == self.reply_images):
                    m.d.comb += self.done.eq(1)
                m.next = "WAIT"


def bench_summary(reply, check, clock_hz: float, input_times: np.ndarray, tmax: int) -> dict[str, object]:
    """What ``bs4nn run --bench`` prints: the board's counts (``reply``, a
    :class:`~bs4nn.firmware.host.BenchReply`), the rates they give at ``clock_hz``, whether the board
    ran these images (``check``: :class:`~bs4nn.firmware.host.BenchCheck`) and matched the golden
    model, and apart, the pixel coder's formula for the same images (not in the board's count)."""
    per_image = reply.cycles / reply.images
    coder = sort_cycles(input_times, tmax)
    coder_per_image = float(coder.mean()) + tmax  # sort, then clear the histogram
    return {
        "images": reply.images,
        "block_images": reply.block_images,
        "measured": {
            "cycles": reply.cycles,
            "stall_cycles": reply.stall_cycles,
            "cycles_per_image": round(per_image, 1),
            "clock_hz": clock_hz,
            "images_per_second": round(clock_hz / per_image),
            "latency_us_mean": round(per_image / clock_hz * 1e6, 3),
            "results_crc": reply.results_crc,
            "golden_results_crc": check.results_crc,
            "matches_golden": reply.results_crc == check.results_crc,
            "how": "the board's cycle counter, from the BENCH frame's start to the last result taken: the core, "
            "the event source streaming each baked image (already address events), the hand-over between "
            "images; results_crc: CRC-16 of every image's RESULT payload, folded on the board",
        },
        "estimated": {
            "pixel_coder": {
                "cycles_per_image": round(coder_per_image, 1),
                "images_per_second": round(clock_hz / coder_per_image),
                "how": "formula bs4nn.firmware.pixel_coder.sort_cycles + tmax to clear (the coder codes IMAGE "
                "frames; the bench block was coded at build time, so the board's count leaves it out)",
            }
        },
    }

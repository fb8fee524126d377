"""The board top: UART frames in, the RTL core in the middle, result frames out.

::

    rx -> UARTRx -> FrameParser -> decoders / pixel coder --(frame checked)--> EventSource -> core
                                                                                        |
    tx <- UARTTx <- FrameSender <- result / ack / error register  <----- result --------+

* ``IMAGE`` frames: the pixel coder (:mod:`bs4nn.firmware.pixel_coder`) codes each pixel byte as
  it arrives and, once the frame's CRC checked out, sorts the spikes into the event buffer.
* ``EVENTS`` frames: already coded (pixel, time) pairs, decoded and checked (in range, time
  order) into the event buffer by :class:`~bs4nn.firmware.payloads.EventFrameDecoder`.
* Either way :class:`~bs4nn.firmware.event_source.EventSource` then streams the buffer to the core.
* ``WEIGHT`` frames: one weight-memory word (:class:`~bs4nn.firmware.payloads.WeightFrameDecoder`)
  through the core's write port, then an ``ACK``.
* The result goes out through :class:`~bs4nn.firmware.payloads.ResultSerialiser`.
* ``BENCH`` frames (a board built with a block of images, ``bench_inputs``): the
  :class:`~bs4nn.firmware.onchip_bench.BenchRunner` streams the baked images back to back through
  the same event source and core, folds each result into a CRC through the same serialiser, and
  the board answers one ``BENCH_RESULT`` with the cycles it counted.

This module is the glue: it wires those engines and runs the control FSM (which frame, which reply).
The core is the network family's (:func:`bs4nn.rtl.family.core_for`: BS4NN or B1); every engine
takes its widths from that core's params, so a B1 board's ``RESULT`` frame carries the B1 core's
decision and signed scores at their width, and its ``WEIGHT`` frames write the B1 sign rows.

Nothing is applied before its frame's CRC is checked; a bad frame gets an ``ERROR`` frame and
changes nothing.  The host must wait for each reply before sending the next frame; a frame that
arrives (even in part) while the board is busy is ignored, without a reply (the host times out).
"""
# ruff: noqa: SIM117  # nested m.If / m.State blocks are the Amaranth idiom

from dataclasses import dataclass, field

import numpy as np
from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bs4nn.errors import Bs4nnError
from bs4nn.export.layout import DEFAULT_LANES
from bs4nn.firmware.event_source import EventSource, StreamRegister
from bs4nn.firmware.frames import LENGTH_BITS, FrameParser, FrameSender
from bs4nn.firmware.onchip_bench import BenchRunner
from bs4nn.firmware.payloads import (
    BenchFrameDecoder,
    EventFrameDecoder,
    ResultSerialiser,
    WeightFrameDecoder,
    payload_byte,
)
from bs4nn.firmware.pixel_coder import PixelCoder
from bs4nn.firmware.protocol import (
    BENCH_FIELDS,
    BENCH_RESULT_FIELDS,
    BYTE_BITS,
    EVENT_BYTES,
    MAX_CLASSES,
    MAX_INPUTS,
    ErrorCode,
    FrameType,
    payload_bytes,
    result_payload_bytes,
    result_widths,
    weight_fields,
)
from bs4nn.firmware.uart import UARTRx, UARTTx
from bs4nn.rtl.core import Bs4nnCore
from bs4nn.rtl.family import core_for
from bs4nn.sim.b1 import B1Network
from bs4nn.sim.golden import IntegerNetwork

DEFAULT_TIMEOUT_BYTES = 1000  # a frame pausing longer than this many byte times is dropped
UART_FRAME_BITS = 10


def frame_lengths(network: IntegerNetwork | B1Network, lanes: int, bench: bool = False) -> dict[int, tuple[int, int]]:
    """Payload length range of every frame type the board accepts (``BENCH`` only with a block)."""
    n_in = network.layers[0].fan_in
    weight_bytes = payload_bytes(weight_fields(lanes))
    lengths = {
        FrameType.IMAGE: (n_in, n_in),
        FrameType.EVENTS: (0, EVENT_BYTES * n_in),
        FrameType.WEIGHT: (weight_bytes, weight_bytes),
    }
    if bench:
        lengths[FrameType.BENCH] = (payload_bytes(BENCH_FIELDS),) * 2
    return lengths


def check_board_network(network: IntegerNetwork | B1Network) -> None:
    """Refuse, in one line and before any component is made, a network no board can carry: more
    classes or inputs than the protocol's fields."""
    n_in, n_out = network.layers[0].fan_in, network.layers[-1].fan_out
    if n_out > MAX_CLASSES or n_in > MAX_INPUTS:
        raise Bs4nnError(
            f"the UART protocol carries up to {MAX_CLASSES} classes and {MAX_INPUTS} inputs; "
            f"this network has {n_out} and {n_in}"
        )


def check_weight_uploads(network: IntegerNetwork | B1Network) -> None:
    """Refuse run-time weight loading (``WEIGHT`` frames, ``bs4nn run --upload``, weights in SPRAM,
    which a bitstream cannot initialise) for b-bit B1 weights: a frame carries one word of
    ``lanes`` sign bits, so a b-bit board keeps its weights in its bitstream's block RAM."""
    bits = max(layer.weight_bits for layer in network.layers)
    if bits > 1:
        raise Bs4nnError(
            f"WEIGHT frames carry 1-bit weights only; this network has {bits}-bit weights, which the board "
            "takes from its bitstream (block RAM, no SPRAM, no --upload)"
        )


class BoardTop(wiring.Component):
    """UART in/out around the inference core; ``busy`` is 1 while an image runs (an LED).

    ``coding`` (debug) is 1 while the pixel coder sorts an image's spikes (before the first event).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    busy: Out(1)
    coding: Out(1)

    def __init__(
        self,
        network: IntegerNetwork | B1Network,
        *,
        divisor: int,
        lanes: int = DEFAULT_LANES,
        early_exit: bool = False,
        timeout_cycles: int | None = None,
        weight_init: bool = True,
        bench_inputs: np.ndarray | None = None,
    ) -> None:
        """``weight_init=False``: the core's weight memories start empty (iCE40 SPRAM has no
        initial contents); the host loads them with ``WEIGHT`` frames (``bs4nn run --upload``), 1-bit
        weights only (:func:`check_weight_uploads`).  ``bench_inputs``: spike times ``(images, n_in)``
        of the images baked in for ``BENCH`` frames (:mod:`bs4nn.firmware.onchip_bench`)."""
        check_board_network(network)
        if not weight_init:
            check_weight_uploads(network)
        self.core = core_for(network, lanes, weight_init=weight_init)
        self.network = network
        self.weight_init = weight_init
        self.divisor = divisor
        self.lanes = lanes
        self.early_exit = early_exit
        self.bench_inputs = None if bench_inputs is None else np.asarray(bench_inputs)
        self.timeout_cycles = timeout_cycles or DEFAULT_TIMEOUT_BYTES * UART_FRAME_BITS * divisor
        super().__init__()

    def elaborate(self, platform) -> Module:
        m = Module()
        network = self.network
        m.submodules.core = core = self.core
        params = core.params
        m.submodules.uart_rx = uart_rx = UARTRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTx(self.divisor)
        bench = None if self.bench_inputs is None else BenchRunner(params, self.bench_inputs, self.early_exit)
        lengths = frame_lengths(network, params.weight_lanes, bench=bench is not None)
        parts = _Parts(
            core=core,
            parser=FrameParser(lengths, self.timeout_cycles),
            sender=FrameSender(),
            coder=PixelCoder(params, network.imax),
            event_decoder=EventFrameDecoder(params),
            weight_decoder=WeightFrameDecoder(params),
            source=EventSource(params, block=bench.events if bench else ()),
            serialiser=ResultSerialiser(params),
            bench=bench,
            bench_decoder=BenchFrameDecoder(len(bench.counts)) if bench else None,
        )
        if bench:
            m.submodules.bench, m.submodules.bench_decoder = bench, parts.bench_decoder
        m.submodules.parser, m.submodules.sender = parts.parser, parts.sender
        m.submodules.pixel_coder, m.submodules.event_source = parts.coder, parts.source
        m.submodules.event_decoder, m.submodules.weight_decoder = parts.event_decoder, parts.weight_decoder
        m.submodules.result_serialiser = parts.serialiser
        m.d.comb += [
            uart_rx.rx.eq(self.rx),
            self.tx.eq(uart_tx.tx),
            parts.parser.byte.eq(uart_rx.data),
            parts.parser.byte_valid.eq(uart_rx.valid),
            uart_tx.data.eq(parts.sender.tx_data),
            uart_tx.valid.eq(parts.sender.tx_valid),
            parts.sender.tx_ready.eq(uart_tx.ready),
            core.early_exit.eq(int(self.early_exit)),
            core.weights.payload.eq(parts.weight_decoder.write),
            self.coding.eq(parts.coder.coding),
            self.busy.eq(~parts.idle),
        ]
        m.submodules.event_register = event_register = StreamRegister(params.event_layout)
        wiring.connect(m, parts.source.events, event_register.input)
        wiring.connect(m, event_register.output, core.events)
        m.d.comb += parts.source.skip.eq(core.skip)
        _route_payloads(m, parts)
        _control(m, parts)
        return m


@dataclass
class _Parts:
    """The board top's engines, and the ``idle`` flag of its control."""

    core: Bs4nnCore
    parser: FrameParser
    sender: FrameSender
    coder: PixelCoder
    event_decoder: EventFrameDecoder
    weight_decoder: WeightFrameDecoder
    source: EventSource
    serialiser: ResultSerialiser
    bench: BenchRunner | None = None
    bench_decoder: BenchFrameDecoder | None = None
    idle: Signal = field(default_factory=lambda: Signal(name="idle"))


def _route_payloads(m: Module, parts: _Parts) -> None:
    """Payload bytes go to the engine of their frame type (only while idle); the event buffer
    takes the writes of whichever decoder is active (one frame type at a time)."""
    parser, coder, events, weights, source = (
        parts.parser,
        parts.coder,
        parts.event_decoder,
        parts.weight_decoder,
        parts.source,
    )
    receiving = parser.payload_valid & parts.idle
    for decoder, frame_type in ((coder, FrameType.IMAGE), (events, FrameType.EVENTS)):
        m.d.comb += [decoder.byte.eq(parser.payload_byte), decoder.byte_index.eq(parser.payload_index)]
        m.d.comb += decoder.byte_valid.eq(receiving & (parser.frame_type == frame_type))
    m.d.comb += [
        weights.byte.eq(parser.payload_byte),
        weights.byte_valid.eq(receiving & (parser.frame_type == FrameType.WEIGHT)),
        events.clear.eq(parser.done),
        source.write_en.eq(coder.write_en | events.write_en),
        source.write_addr.eq(Mux(coder.write_en, coder.write_addr, events.write_addr)),
        source.write_data.eq(Mux(coder.write_en, coder.write_data, events.write_data)),
    ]
    if parts.bench_decoder is not None:
        m.d.comb += [
            parts.bench_decoder.byte.eq(parser.payload_byte),
            parts.bench_decoder.byte_valid.eq(receiving & (parser.frame_type == FrameType.BENCH)),
        ]


def _control(m: Module, parts: _Parts) -> None:
    """The board's FSM: act on a checked frame, wait for the core, send the one reply."""
    parser, sender, core, coder, source = parts.parser, parts.sender, parts.core, parts.coder, parts.source
    dropped = Signal()  # a payload byte of the current frame arrived while busy: ignore the frame
    with m.If(parser.payload_valid & ~parts.idle):
        m.d.sync += dropped.eq(1)
    with m.If(parser.done & ~parts.idle):
        m.d.sync += dropped.eq(0)
    have_result = Signal()  # the core's result, held for the reply
    m.d.comb += core.result.ready.eq(~have_result & ~parts.idle)
    with m.If(core.result.valid & core.result.ready):
        m.d.sync += [parts.serialiser.result.eq(core.result.payload), have_result.eq(1)]
    reply_type, reply_length, error_code = Signal(BYTE_BITS), Signal(LENGTH_BITS), Signal(BYTE_BITS)
    reply_byte = Mux(reply_type == FrameType.RESULT, parts.serialiser.byte, error_code)
    m.d.comb += [
        parts.serialiser.index.eq(sender.payload_index),
        sender.frame_type.eq(reply_type),
        sender.length.eq(reply_length),
        sender.payload_byte.eq(reply_byte),
    ]
    result_bytes = result_payload_bytes(core.params.n_out, **result_widths(core.params))
    reply_lengths = {FrameType.RESULT: result_bytes, FrameType.ACK: 0, FrameType.ERROR: 1}
    benching = Signal()  # the bench runner drives the event source and reads the serialiser
    if parts.bench is not None:
        _wire_bench(m, parts, benching, have_result, reply_type, reply_byte)
        reply_lengths[FrameType.BENCH_RESULT] = payload_bytes(BENCH_RESULT_FIELDS)

    def reply(frame_type: FrameType, code=0) -> None:
        """Answer with ``frame_type`` (an ``ERROR`` carries ``code``): next state ``REPLY``."""
        m.d.sync += [reply_type.eq(frame_type), reply_length.eq(reply_lengths[frame_type]), error_code.eq(code)]
        m.next = "REPLY"

    value_error = coder.error | parts.event_decoder.error  # a pixel above imax, an event out of range / order
    with m.FSM():
        with m.State("IDLE"):
            m.d.comb += parts.idle.eq(1)
            with m.If(parser.done & dropped):
                m.d.sync += dropped.eq(0)  # partly received while busy: no reply, nothing applied
            with m.Elif(parser.done):
                m.d.sync += have_result.eq(0)
                with m.If(parser.error != 0):
                    reply(FrameType.ERROR, parser.error)
                with m.Elif(value_error):
                    reply(FrameType.ERROR, ErrorCode.BAD_VALUE)
                with m.Elif(parser.frame_type == FrameType.IMAGE):
                    m.d.comb += coder.start.eq(1)
                    m.next = "CODING"
                with m.Elif(parser.frame_type == FrameType.EVENTS):
                    with m.If(~parts.event_decoder.whole):  # not a whole number of events
                        reply(FrameType.ERROR, ErrorCode.BAD_LENGTH)
                    with m.Else():
                        m.d.comb += [source.start.eq(1), source.count.eq(parts.event_decoder.count)]
                        m.next = "STREAM"
                if parts.bench is not None:  # the parser knows BENCH frames only then
                    with m.Elif(parser.frame_type == FrameType.BENCH):
                        with m.If(parts.bench_decoder.ok):
                            m.d.comb += [parts.bench.start.eq(1), parts.bench.images.eq(parts.bench_decoder.images)]
                            m.next = "BENCH"
                        with m.Else():
                            reply(FrameType.ERROR, ErrorCode.BAD_VALUE)
                with m.Else():  # WEIGHT
                    with m.If(parts.weight_decoder.ok & core.idle):
                        m.d.comb += core.weights.valid.eq(1)
                        reply(FrameType.ACK)
                    with m.Else():
                        reply(FrameType.ERROR, ErrorCode.BAD_VALUE)
        with m.State("CODING"):
            with m.If(coder.done):
                m.d.comb += [source.start.eq(1), source.count.eq(coder.count)]
                m.next = "STREAM"
        with m.State("STREAM"):
            with m.If(source.done):
                m.next = "WAIT_RESULT"
        with m.State("WAIT_RESULT"):
            with m.If(have_result):
                reply(FrameType.RESULT)
        with m.State("BENCH"):
            m.d.comb += benching.eq(1)
            if parts.bench is not None:
                with m.If(parts.bench.done):
                    reply(FrameType.BENCH_RESULT)
        with m.State("REPLY"):
            m.d.comb += [sender.start.eq(1), coder.clear.eq(1)]
            m.next = "SENDING"
        with m.State("SENDING"):  # meanwhile the pixel coder clears its histogram
            with m.If(~coder.clearing & ~sender.busy):
                m.next = "IDLE"


def _wire_bench(m: Module, parts: _Parts, benching: Signal, have_result: Signal, reply_type, reply_byte) -> None:
    """While ``benching``, the bench runner starts the event source on each baked image and reads
    each result through the serialiser (then releases it); its reply is the ``BENCH_RESULT``."""
    bench, source, core, sender = parts.bench, parts.source, parts.core, parts.sender
    m.d.comb += [
        bench.source_done.eq(source.done),
        bench.result_taken.eq(benching & core.result.valid & core.result.ready),
        bench.result_waiting.eq(core.result.valid & ~core.result.ready),
        bench.serial_byte.eq(parts.serialiser.byte),
    ]
    with m.If(benching):
        m.d.comb += [
            source.start.eq(bench.source_start),
            source.base.eq(bench.source_base),
            source.count.eq(bench.source_count),
            parts.serialiser.index.eq(bench.serial_index),
        ]
    with m.If(bench.release):
        m.d.sync += have_result.eq(0)
    bench_byte = payload_byte(m, BENCH_RESULT_FIELDS, bench.reply_values(), sender.payload_index)
    m.d.comb += sender.payload_byte.eq(Mux(reply_type == FrameType.BENCH_RESULT, bench_byte, reply_byte))

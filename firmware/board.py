"""The board top: UART frames in, the RTL core in the middle, result frames out.

::

    rx -> UARTRx -> FrameParser -> frame buffers --(frame checked)--> event source -> Bs4nnCore
                                                                                        |
    tx <- UARTTx <- FrameSender <- result / ack / error register  <----- result --------+

* ``IMAGE`` frames: each pixel byte goes through a 256-entry ROM holding the ``encode_images``
  time of every byte value (computed from :mod:`bs4nn.sim.semantics`, never re-derived), into a
  time buffer (one word per pixel), and a histogram of spikes per step is counted as the bytes
  arrive.  Once the frame's CRC checked out, the pixel coder sorts the spikes by time (counting
  sort: prefix sums of the histogram, 2 cycles a step, then a scatter of the pixels into the
  event buffer, 3 cycles a pixel) and streams them like an ``EVENTS`` frame.
* ``EVENTS`` frames: already coded (pixel, time) pairs, buffered and checked (in range, time
  order), then streamed as they are.
* ``WEIGHT`` frames: one weight-memory word through the core's write port, then an ``ACK``.

Nothing is applied before its frame's CRC is checked; a bad frame gets an ``ERROR`` frame and
changes nothing.  The host must wait for each reply before sending the next frame; a frame that
arrives (even in part) while the board is busy is ignored, without a reply (the host times out).
"""
# ruff: noqa: SIM117  # nested m.If / m.State blocks are the Amaranth idiom

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from bs4nn.errors import Bs4nnError
from bs4nn.export.layout import DEFAULT_LANES
from bs4nn.firmware.frames import LENGTH_BITS, FrameParser, FrameSender
from bs4nn.firmware.protocol import (
    BYTE_BITS,
    BYTE_VALUES,
    EVENT_BYTES,
    FIELD_BYTES,
    MAX_CLASSES,
    MAX_INPUTS,
    ErrorCode,
    FrameType,
    fields_layout,
    payload_bytes,
    result_payload_bytes,
    weight_fields,
)
from bs4nn.firmware.uart import UARTRx, UARTTx
from bs4nn.rtl.core import Bs4nnCore
from bs4nn.sim.golden import IntegerNetwork
from bs4nn.sim.semantics import encode_images

DEFAULT_TIMEOUT_BYTES = 1000  # a frame pausing longer than this many byte times is dropped
UART_FRAME_BITS = 10


def pixel_time_table(tmax: int, imax: int) -> list[int]:
    """ROM contents: the spike time of every byte value; bit ``time_bits`` set = above imax (bad)."""
    values = np.arange(BYTE_VALUES)
    times = encode_images(np.minimum(values, imax)[None, :], tmax, imax)[0]
    bad = values > imax
    return [int(t) | (int(b) << tmax.bit_length()) for t, b in zip(times, bad, strict=True)]


def frame_lengths(network: IntegerNetwork, lanes: int) -> dict[int, tuple[int, int]]:
    """Payload length range of every frame type the board accepts."""
    n_in = network.layers[0].fan_in
    weight_bytes = payload_bytes(weight_fields(lanes))
    return {
        FrameType.IMAGE: (n_in, n_in),
        FrameType.EVENTS: (0, EVENT_BYTES * n_in),
        FrameType.WEIGHT: (weight_bytes, weight_bytes),
    }


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
        network: IntegerNetwork,
        *,
        divisor: int,
        lanes: int = DEFAULT_LANES,
        early_exit: bool = False,
        timeout_cycles: int | None = None,
        weight_init: bool = True,
    ) -> None:
        """``weight_init=False``: the core's weight memories start empty (iCE40 SPRAM has no
        initial contents); the host loads them with ``WEIGHT`` frames (``bs4nn run --upload``)."""
        n_in, n_out = network.layers[0].fan_in, network.layers[-1].fan_out
        if n_out > MAX_CLASSES or n_in > MAX_INPUTS:
            raise Bs4nnError(
                f"the UART protocol carries up to {MAX_CLASSES} classes and {MAX_INPUTS} inputs; "
                f"this network has {n_out} and {n_in}"
            )
        self.network = network
        self.weight_init = weight_init
        self.divisor = divisor
        self.lanes = lanes
        self.early_exit = early_exit
        self.timeout_cycles = timeout_cycles or DEFAULT_TIMEOUT_BYTES * UART_FRAME_BITS * divisor
        super().__init__()

    def elaborate(self, platform) -> Module:
        m = Module()
        network = self.network
        m.submodules.core = core = Bs4nnCore(network, self.lanes, weight_init=self.weight_init)
        params = core.params
        n_in, n_out, tmax = params.n_in, params.n_out, network.tmax
        time_bits, pixel_bits = params.time_bits, params.pixel_bits
        m.submodules.uart_rx = uart_rx = UARTRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTx(self.divisor)
        m.submodules.parser = parser = FrameParser(frame_lengths(network, self.lanes), self.timeout_cycles)
        m.submodules.sender = sender = FrameSender()
        m.d.comb += [
            uart_rx.rx.eq(self.rx),
            self.tx.eq(uart_tx.tx),
            parser.byte.eq(uart_rx.data),
            parser.byte_valid.eq(uart_rx.valid),
            uart_tx.data.eq(sender.tx_data),
            uart_tx.valid.eq(sender.tx_valid),
            sender.tx_ready.eq(uart_tx.ready),
            core.early_exit.eq(int(self.early_exit)),
        ]

        # --- buffers, written while a frame arrives (only while idle) ---
        m.submodules.pixel_times = pixel_times = memory.Memory(shape=time_bits, depth=n_in, init=[])
        m.submodules.code_rom = code_rom = memory.Memory(
            shape=time_bits + 1, depth=BYTE_VALUES, init=pixel_time_table(tmax, network.imax)
        )
        m.submodules.events = events_mem = memory.Memory(shape=pixel_bits + time_bits, depth=n_in, init=[])
        # spikes per step while receiving; start index of each step after the prefix pass
        m.submodules.histogram = histogram = memory.Memory(shape=range(n_in + 1), depth=tmax, init=[])
        hist_write, hist_read = histogram.write_port(), histogram.read_port()
        times_write, times_read = pixel_times.write_port(), pixel_times.read_port()
        code_read = code_rom.read_port()
        events_write, events_read = events_mem.write_port(), events_mem.read_port()

        idle = Signal()
        value_error = Signal()  # a pixel above imax, or an event out of range / out of order
        pending_pixel = Signal()  # the ROM is reading the time of the pixel received last cycle
        pending_index = Signal(LENGTH_BITS)
        pending_count = Signal()  # the histogram is reading the count of `pending_time`
        pending_time = Signal(time_bits)
        dropped = Signal()  # a payload byte of the current frame arrived while busy: ignore the frame
        event_word = Signal(EVENT_BYTES * BYTE_BITS)  # the event being assembled, big-endian
        last_time = Signal(time_bits)  # time of the previous event of the frame (order check)
        weight_word = Signal(fields_layout(weight_fields(self.lanes)))
        receiving = parser.payload_valid & idle

        m.d.comb += code_read.addr.eq(parser.payload_byte)
        m.d.sync += pending_pixel.eq(receiving & (parser.frame_type == FrameType.IMAGE))
        with m.If(receiving):
            m.d.sync += pending_index.eq(parser.payload_index)
            with m.If(parser.frame_type == FrameType.EVENTS):
                new_word = Cat(parser.payload_byte, event_word[:-BYTE_BITS])
                m.d.sync += event_word.eq(new_word)
                event_pixel = new_word[FIELD_BYTES * BYTE_BITS :]
                event_time = new_word[: FIELD_BYTES * BYTE_BITS]
                with m.If(parser.payload_index[:2] == EVENT_BYTES - 1):
                    m.d.comb += [
                        events_write.en.eq(1),
                        events_write.addr.eq(parser.payload_index >> 2),
                        events_write.data.eq(Cat(event_pixel[:pixel_bits], event_time[:time_bits])),
                    ]
                    m.d.sync += last_time.eq(event_time)
                    out_of_order = (event_time < last_time) & (parser.payload_index > EVENT_BYTES)
                    with m.If((event_pixel >= n_in) | (event_time >= tmax) | out_of_order):
                        m.d.sync += value_error.eq(1)
            with m.If(parser.frame_type == FrameType.WEIGHT):
                m.d.sync += weight_word.eq(Cat(parser.payload_byte, weight_word.as_value()[:-BYTE_BITS]))
        with m.If(parser.payload_valid & ~idle):
            m.d.sync += dropped.eq(1)
        pixel_time = code_read.data[:time_bits]
        m.d.sync += [pending_count.eq(0), pending_time.eq(pixel_time)]
        with m.If(pending_pixel):
            m.d.comb += [times_write.en.eq(1), times_write.addr.eq(pending_index), times_write.data.eq(pixel_time)]
            with m.If(code_read.data[time_bits]):
                m.d.sync += value_error.eq(1)
            with m.Elif(pixel_time < tmax):
                m.d.sync += pending_count.eq(1)

        # --- weight frame fields ---
        weight_layer, weight_address, weight_data = weight_word.layer, weight_word.address, weight_word.data
        depths = [layer.layout.depth for layer in params.layers]
        weight_ok = Const(0)
        for index, depth in enumerate(depths):
            weight_ok = weight_ok | ((weight_layer == index) & (weight_address < depth))
        m.d.comb += [
            core.weights.payload.layer.eq(weight_layer),
            core.weights.payload.address.eq(weight_address),
            core.weights.payload.data.eq(weight_data),
        ]

        # --- the reply ---
        reply_type = Signal(BYTE_BITS)
        reply_length = Signal(LENGTH_BITS)
        error_code = Signal(BYTE_BITS)
        result = Signal(params.result_layout)
        payload_bytes = [result.decision.as_unsigned()]

        def big_endian(value, signed: bool) -> list:
            width = FIELD_BYTES * BYTE_BITS
            wide = value.as_signed() if signed else value.as_unsigned()
            extended = Signal(width)
            m.d.comb += extended.eq(wide)
            return [extended[(FIELD_BYTES - 1 - k) * BYTE_BITS :][:BYTE_BITS] for k in range(FIELD_BYTES)]

        payload_bytes += big_endian(result.decision_time, signed=False)
        for j in range(n_out):
            payload_bytes += big_endian(result.spike_times[j], signed=False)
        for j in range(n_out):
            payload_bytes += big_endian(result.counts[j], signed=True)
        assert len(payload_bytes) == result_payload_bytes(n_out)
        result_byte = Array(payload_bytes)[sender.payload_index[: max(1, (len(payload_bytes) - 1).bit_length())]]
        m.d.comb += [
            sender.frame_type.eq(reply_type),
            sender.length.eq(reply_length),
            sender.payload_byte.eq(Mux(reply_type == FrameType.RESULT, result_byte, error_code)),
        ]

        # --- event source and control ---
        step = Signal(time_bits)
        pixel = Signal(range(n_in + 1))
        n_events = Signal(range(n_in + 1))
        have_result = Signal()
        frame_bytes = Signal(LENGTH_BITS)  # payload bytes of the frame just checked
        m.d.comb += frame_bytes.eq(parser.payload_index + 1)
        m.d.comb += [times_read.addr.eq(pixel), events_read.addr.eq(pixel)]
        m.d.comb += core.result.ready.eq(~have_result & ~idle)
        with m.If(core.result.valid & core.result.ready):
            m.d.sync += [result.eq(core.result.payload), have_result.eq(1)]

        def reply(frame_type: int, length: int, code: int = 0) -> list:
            return [reply_type.eq(frame_type), reply_length.eq(length), error_code.eq(code)]

        running = Signal(range(n_in + 1))  # prefix sum of the histogram
        scatter_time = Signal(time_bits)
        clear_step = Signal(range(tmax + 1))

        with m.If(parser.done & ~idle):
            m.d.sync += dropped.eq(0)

        def next_pixel() -> None:
            """Scatter the next pixel, or after the last one stream the sorted events."""
            m.d.sync += pixel.eq(pixel + 1)
            with m.If(pixel == n_in - 1):
                m.d.sync += [pixel.eq(0), n_events.eq(running)]
                m.next = "EVENT_READ"
            with m.Else():
                m.next = "SCATTER_READ"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                # histogram update of the pixel received two cycles ago (bytes are >= 40 cycles apart)
                m.d.comb += hist_read.addr.eq(pixel_time)
                with m.If(pending_count):
                    m.d.comb += [hist_write.en.eq(1), hist_write.addr.eq(pending_time)]
                    m.d.comb += hist_write.data.eq(hist_read.data + 1)
                with m.If(parser.done & dropped):
                    m.d.sync += dropped.eq(0)  # partly received while busy: no reply, nothing applied
                with m.Elif(parser.done):
                    m.d.sync += [step.eq(0), pixel.eq(0), have_result.eq(0), running.eq(0)]
                    with m.If(parser.error != 0):
                        m.d.sync += reply(FrameType.ERROR, 1, parser.error)
                        m.next = "REPLY"
                    with m.Elif(value_error):
                        m.d.sync += reply(FrameType.ERROR, 1, ErrorCode.BAD_VALUE)
                        m.next = "REPLY"
                    with m.Elif(parser.frame_type == FrameType.IMAGE):
                        m.next = "PREFIX_READ"
                    with m.Elif(parser.frame_type == FrameType.EVENTS):
                        with m.If(frame_bytes[:2] != 0):  # not a whole number of events
                            m.d.sync += reply(FrameType.ERROR, 1, ErrorCode.BAD_LENGTH)
                            m.next = "REPLY"
                        with m.Else():
                            m.d.sync += n_events.eq(frame_bytes >> 2)
                            m.next = "EVENT_READ"
                    with m.Else():  # WEIGHT
                        with m.If(weight_ok & core.idle):
                            m.d.comb += core.weights.valid.eq(1)
                            m.d.sync += reply(FrameType.ACK, 0)
                        with m.Else():
                            m.d.sync += reply(FrameType.ERROR, 1, ErrorCode.BAD_VALUE)
                        m.next = "REPLY"
            # pixel coder, a counting sort: start index of every step, then pixels scattered by time
            with m.State("PREFIX_READ"):  # the histogram reads `step`
                m.d.comb += self.coding.eq(1)
                m.d.comb += hist_read.addr.eq(step)
                m.next = "PREFIX_ADD"
            with m.State("PREFIX_ADD"):
                m.d.comb += self.coding.eq(1)
                m.d.comb += [hist_write.en.eq(1), hist_write.addr.eq(step), hist_write.data.eq(running)]
                m.d.sync += [running.eq(running + hist_read.data), step.eq(step + 1)]
                with m.If(step == tmax - 1):
                    m.next = "SCATTER_READ"
                with m.Else():
                    m.next = "PREFIX_READ"
            with m.State("SCATTER_READ"):  # the time buffer reads `pixel`
                m.d.comb += self.coding.eq(1)
                m.next = "SCATTER_TIME"
            with m.State("SCATTER_TIME"):  # the histogram reads the next free slot of the pixel's step
                m.d.comb += self.coding.eq(1)
                m.d.comb += hist_read.addr.eq(times_read.data)
                m.d.sync += scatter_time.eq(times_read.data)
                with m.If(times_read.data < tmax):
                    m.next = "SCATTER_WRITE"
                with m.Else():  # a black pixel: no spike
                    next_pixel()
            with m.State("SCATTER_WRITE"):
                m.d.comb += self.coding.eq(1)
                slot = hist_read.data
                m.d.comb += [
                    events_write.en.eq(1),
                    events_write.addr.eq(slot),
                    events_write.data.eq(Cat(pixel[:pixel_bits], scatter_time)),
                    hist_write.en.eq(1),
                    hist_write.addr.eq(scatter_time),
                    hist_write.data.eq(slot + 1),
                ]
                next_pixel()
            # already coded events
            with m.State("EVENT_READ"):
                with m.If(pixel == n_events):
                    m.next = "END"
                with m.Else():
                    m.next = "EVENT_SEND"
            with m.State("EVENT_SEND"):
                m.d.comb += [core.events.valid.eq(1), core.events.payload.as_value().eq(events_read.data)]
                with m.If(core.events.ready):
                    m.d.sync += pixel.eq(pixel + 1)
                    m.next = "EVENT_READ"
            with m.State("END"):
                m.d.comb += [core.events.valid.eq(1), core.events.payload.time.eq(tmax)]
                with m.If(core.events.ready):
                    m.next = "WAIT_RESULT"
            with m.State("WAIT_RESULT"):
                with m.If(have_result):
                    m.d.sync += reply(FrameType.RESULT, result_payload_bytes(n_out))
                    m.next = "REPLY"
            with m.State("REPLY"):
                m.d.comb += sender.start.eq(1)
                m.d.sync += [value_error.eq(0), last_time.eq(0), clear_step.eq(0)]
                m.next = "SENDING"
            with m.State("SENDING"):  # meanwhile: clear the histogram for the next frame
                with m.If(clear_step != tmax):
                    m.d.comb += [hist_write.en.eq(1), hist_write.addr.eq(clear_step), hist_write.data.eq(0)]
                    m.d.sync += clear_step.eq(clear_step + 1)
                with m.Elif(~sender.busy):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~idle)
        return m

"""Hardware side of the framed protocol (see :mod:`bs4nn.firmware.protocol`): parser and sender.

The parser checks start byte, type, length and CRC and streams the payload bytes out as they
arrive; its user buffers them and acts only on ``done`` with ``error == 0``, so a bad frame is
never half-applied.  The sender serialises a frame whose payload bytes its user provides by index.
"""
# ruff: noqa: SIM117  # (nested m.If / m.State blocks are the Amaranth idiom; merging them changes Elif scoping)

from collections.abc import Mapping

from amaranth import Module, Mux, Signal
from amaranth.lib import crc, wiring
from amaranth.lib.wiring import In, Out

from bs4nn.firmware.protocol import (
    BYTE_BITS,
    CRC_ALGORITHM,
    CRC_BYTES,
    LENGTH_BYTES,
    START,
    ErrorCode,
)

LENGTH_BITS = BYTE_BITS * LENGTH_BYTES
ERROR_BITS = 3


class FrameParser(wiring.Component):
    """Bytes in (from :class:`~bs4nn.firmware.uart.UARTRx`), checked frames out.

    ``lengths`` maps every accepted frame type to its allowed payload length range
    ``(min, max)``.  For each payload byte ``payload_valid`` pulses with ``payload_byte`` and
    ``payload_index``; ``frame_type`` is valid from the first payload byte to ``done``.  ``done``
    pulses once per frame with ``error`` = 0 (frame good: act on it now) or an
    :class:`~bs4nn.firmware.protocol.ErrorCode`.  A frame of unknown type or bad length is
    skipped to its end (when its length is plausible) and then reported; a frame that stops
    arriving for ``timeout`` cycles is dropped and reported as ``TIMEOUT``.
    """

    byte: In(BYTE_BITS)
    byte_valid: In(1)
    payload_byte: Out(BYTE_BITS)
    payload_index: Out(LENGTH_BITS)
    payload_valid: Out(1)
    frame_type: Out(BYTE_BITS)
    done: Out(1)
    error: Out(ERROR_BITS)

    def __init__(self, lengths: Mapping[int, tuple[int, int]], timeout: int) -> None:
        if not lengths:
            raise ValueError("the parser needs at least one frame type")
        self.lengths = dict(lengths)
        self.timeout = timeout
        self.max_length = max(high for _, high in self.lengths.values())
        super().__init__()

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.crc = checker = crc.Processor(CRC_ALGORITHM(data_width=BYTE_BITS))
        length = Signal(LENGTH_BITS)
        count = Signal(LENGTH_BITS + 1)  # bytes still to come in this state
        header_error = Signal(ERROR_BITS)
        idle_cycles = Signal(range(self.timeout + 1))
        in_frame = Signal()

        m.d.comb += checker.data.eq(self.byte)
        m.d.sync += [self.payload_valid.eq(0), self.done.eq(0)]

        with m.If(self.byte_valid | ~in_frame):
            m.d.sync += idle_cycles.eq(0)
        with m.Elif(idle_cycles == self.timeout):
            m.d.sync += [self.done.eq(1), self.error.eq(ErrorCode.TIMEOUT), idle_cycles.eq(0)]
        with m.Else():
            m.d.sync += idle_cycles.eq(idle_cycles + 1)
        timed_out = in_frame & ~self.byte_valid & (idle_cycles == self.timeout)

        def length_ok(value) -> Signal:
            checks = [
                (self.frame_type == frame_type) & (value >= low) & (value <= high)
                for frame_type, (low, high) in self.lengths.items()
            ]
            ok = checks[0]
            for check in checks[1:]:
                ok = ok | check
            return ok

        def known_type(value) -> Signal:
            known = value == next(iter(self.lengths))
            for frame_type in list(self.lengths)[1:]:
                known = known | (value == frame_type)
            return known

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += in_frame.eq(0)
                with m.If(self.byte_valid & (self.byte == START)):
                    m.next = "TYPE"
            with m.State("TYPE"):
                m.d.comb += [in_frame.eq(1), checker.start.eq(self.byte_valid), checker.valid.eq(self.byte_valid)]
                with m.If(timed_out):
                    m.next = "HUNT"
                with m.Elif(self.byte_valid):
                    m.d.sync += [self.frame_type.eq(self.byte), count.eq(LENGTH_BYTES)]
                    with m.If(~known_type(self.byte)):
                        m.d.sync += header_error.eq(ErrorCode.BAD_TYPE)
                    with m.Else():
                        m.d.sync += header_error.eq(0)
                    m.next = "LENGTH"
            with m.State("LENGTH"):
                m.d.comb += [in_frame.eq(1), checker.valid.eq(self.byte_valid)]
                with m.If(timed_out):
                    m.next = "HUNT"
                with m.Elif(self.byte_valid):
                    new_length = (length << BYTE_BITS | self.byte)[:LENGTH_BITS]
                    m.d.sync += [length.eq(new_length), count.eq(count - 1)]
                    with m.If(count == 1):
                        with m.If((header_error == 0) & ~length_ok(new_length)):
                            m.d.sync += header_error.eq(ErrorCode.BAD_LENGTH)
                        with m.If(new_length > self.max_length):
                            # implausible: do not wait for it; report now, hunt for the next frame
                            first_error = Mux(header_error != 0, header_error, ErrorCode.BAD_LENGTH)
                            m.d.sync += [self.done.eq(1), self.error.eq(first_error)]
                            m.next = "HUNT"
                        with m.Else():
                            m.d.sync += count.eq(new_length + CRC_BYTES)
                            m.d.sync += self.payload_index.eq(2**LENGTH_BITS - 1)  # +1 -> 0 on first byte
                            m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += [in_frame.eq(1), checker.valid.eq(self.byte_valid)]
                with m.If(timed_out):
                    m.next = "HUNT"
                with m.Elif(self.byte_valid):
                    m.d.sync += count.eq(count - 1)
                    with m.If((count > CRC_BYTES) & (header_error == 0)):
                        m.d.sync += [
                            self.payload_valid.eq(1),
                            self.payload_byte.eq(self.byte),
                            self.payload_index.eq(self.payload_index + 1),
                        ]
                    with m.If(count == 1):
                        m.next = "CHECK"
            with m.State("CHECK"):  # the CRC register has taken the last byte
                m.d.comb += in_frame.eq(0)
                m.d.sync += self.done.eq(1)
                with m.If(header_error != 0):
                    m.d.sync += self.error.eq(header_error)
                with m.Elif(~checker.match_detected):
                    m.d.sync += self.error.eq(ErrorCode.BAD_CRC)
                with m.Else():
                    m.d.sync += self.error.eq(0)
                m.next = "HUNT"
        return m


class FrameSender(wiring.Component):
    """Serialises one frame: start byte, type, length, payload (asked for by index), CRC.

    Pulse ``start`` with ``frame_type`` and ``length`` (held by the sender); it asks for payload
    byte ``payload_index`` and registers ``payload_byte`` a cycle before sending it (one cycle a
    payload byte, nothing beside a UART byte's time): a payload's byte multiplexer (the board's
    ``ResultSerialiser``) ends at that register instead of running on into the CRC and the
    transmitter, the board top's critical path on the iCEBreaker.
    ``busy`` is 1 from ``start`` until the last CRC byte was handed to the transmitter.
    """

    start: In(1)
    frame_type: In(BYTE_BITS)
    length: In(LENGTH_BITS)
    payload_index: Out(LENGTH_BITS)
    payload_byte: In(BYTE_BITS)
    busy: Out(1)
    tx_data: Out(BYTE_BITS)
    tx_valid: Out(1)
    tx_ready: In(1)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.crc = generator = crc.Processor(CRC_ALGORITHM(data_width=BYTE_BITS))
        frame_type = Signal(BYTE_BITS)
        length = Signal(LENGTH_BITS)
        index = Signal(LENGTH_BITS)
        byte = Signal(BYTE_BITS)  # payload byte ``index``, fetched in ``FETCH``
        m.d.comb += [self.payload_index.eq(index), generator.data.eq(self.tx_data)]
        sent = self.tx_valid & self.tx_ready

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [frame_type.eq(self.frame_type), length.eq(self.length), index.eq(0)]
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [self.busy.eq(1), self.tx_valid.eq(1), self.tx_data.eq(START)]
                with m.If(sent):
                    m.next = "TYPE"
            with m.State("TYPE"):
                m.d.comb += [self.busy.eq(1), self.tx_valid.eq(1), self.tx_data.eq(frame_type)]
                m.d.comb += [generator.start.eq(sent), generator.valid.eq(sent)]
                with m.If(sent):
                    m.next = "LENGTH_HIGH"
            with m.State("LENGTH_HIGH"):
                m.d.comb += [self.busy.eq(1), self.tx_valid.eq(1), self.tx_data.eq(length[BYTE_BITS:])]
                m.d.comb += generator.valid.eq(sent)
                with m.If(sent):
                    m.next = "LENGTH_LOW"
            with m.State("LENGTH_LOW"):
                m.d.comb += [self.busy.eq(1), self.tx_valid.eq(1), self.tx_data.eq(length[:BYTE_BITS])]
                m.d.comb += generator.valid.eq(sent)
                with m.If(sent):
                    with m.If(length == 0):
                        m.next = "CRC_HIGH"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += byte.eq(self.payload_byte)
                m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [self.busy.eq(1), self.tx_valid.eq(1), self.tx_data.eq(byte)]
                m.d.comb += generator.valid.eq(sent)
                with m.If(sent):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == length - 1):
                        m.next = "CRC_HIGH"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("CRC_HIGH"):
                m.d.comb += [self.busy.eq(1), self.tx_valid.eq(1), self.tx_data.eq(generator.crc[BYTE_BITS:])]
                with m.If(sent):
                    m.next = "CRC_LOW"
            with m.State("CRC_LOW"):
                m.d.comb += [self.busy.eq(1), self.tx_valid.eq(1), self.tx_data.eq(generator.crc[:BYTE_BITS])]
                with m.If(sent):
                    m.next = "IDLE"
        return m

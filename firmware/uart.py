"""A minimal 8N1 UART (receiver and transmitter) as Amaranth 0.5 components.

``divisor`` is clock cycles per bit (``clock_hz // baud``); the receiver samples in the middle
of each bit after a two-flop synchroniser, and flags a missing stop bit as a framing error.
"""
# ruff: noqa: SIM117  # (nested m.If / m.State blocks are the Amaranth idiom; merging them changes Elif scoping)

from dataclasses import dataclass

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from bs4nn.errors import Bs4nnError

DATA_BITS = 8
MIN_DIVISOR = 4  # the receiver needs a few cycles per bit to find the middle


MAX_RATE_ERROR = 0.02
"""Largest mismatch between the asked baud rate and ``clock / divisor``: an 8N1 receiver that
samples mid-bit tolerates about 4.5 % in total by its stop bit, shared by both ends of the link,
so each end keeps to half of it (the receiver here is checked at this bound in simulation)."""


@dataclass(frozen=True)
class UartRate:
    """The rate a UART of this module makes at a clock: its divisor and how far it is off."""

    clock_hz: float
    baud: int
    divisor: int

    @property
    def actual_baud(self) -> float:
        return self.clock_hz / self.divisor

    @property
    def error(self) -> float:
        """Relative error of the actual rate (positive: faster than asked)."""
        return self.actual_baud / self.baud - 1


def uart_rate(clock_hz: float, baud: int, where: str = "the board") -> UartRate:
    """The divisor for ``baud`` at ``clock_hz``; a rate the clock cannot make is a :class:`Bs4nnError`."""
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR:
        raise Bs4nnError(
            f"--baud {baud} is too fast for {where}'s {clock_hz / 1e6:g} MHz clock "
            f"(at most {int(clock_hz // MIN_DIVISOR):,} baud: {MIN_DIVISOR} clock cycles per bit)"
        )
    rate = UartRate(clock_hz, baud, divisor)
    if abs(rate.error) > MAX_RATE_ERROR:
        raise Bs4nnError(
            f"--baud {baud} is {100 * abs(rate.error):.1f} % off at {where}'s {clock_hz / 1e6:g} MHz clock "
            f"({clock_hz / 1e6:g} MHz / {divisor} = {rate.actual_baud:,.0f} baud; at most "
            f"{100 * MAX_RATE_ERROR:g} %): choose a rate that divides the clock, such as {_exact_rates(clock_hz)}"
        )
    return rate


def _exact_rates(clock_hz: float) -> str:
    """A few standard rates that the clock divides exactly, fastest first, for the error message."""
    standard = (3_000_000, 2_000_000, 1_000_000, 500_000, 250_000, 115_200)
    exact = [b for b in standard if clock_hz / b >= MIN_DIVISOR and abs(clock_hz / round(clock_hz / b) / b - 1) < 1e-3]
    return ", ".join(f"{b:,}" for b in exact[:3]) or "115,200"


def _check_divisor(divisor: int) -> int:
    if divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor (clock cycles per bit) must be >= {MIN_DIVISOR}, got {divisor}")
    return divisor


class UARTRx(wiring.Component):
    """Serial line in, one byte out per frame.

    ``valid`` pulses for one cycle with ``data``; there is no backpressure (the consumer must take
    a byte within one byte time).  ``frame_error`` pulses instead of ``valid`` when the stop bit is 0.
    """

    rx: In(1, init=1)
    data: Out(DATA_BITS)
    valid: Out(1)
    frame_error: Out(1)

    def __init__(self, divisor: int) -> None:
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform) -> Module:
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(self.divisor))
        bit_index = Signal(range(DATA_BITS))
        shift = Signal(DATA_BITS)
        m.d.sync += [self.valid.eq(0), self.frame_error.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):  # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bit_index.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq((shift >> 1) | (line << (DATA_BITS - 1))), timer.eq(self.divisor - 1)]
                    m.d.sync += bit_index.eq(bit_index + 1)
                    with m.If(bit_index == DATA_BITS - 1):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [self.data.eq(shift), self.valid.eq(line), self.frame_error.eq(~line)]
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """One byte in (``valid``/``ready`` handshake), serial line out (LSB first, one stop bit)."""

    tx: Out(1, init=1)
    data: In(DATA_BITS)
    valid: In(1)
    ready: Out(1)

    def __init__(self, divisor: int) -> None:
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform) -> Module:
        m = Module()
        frame_bits = 1 + DATA_BITS + 1
        timer = Signal(range(self.divisor))
        bits_left = Signal(range(frame_bits + 1))
        shift = Signal(frame_bits, init=(1 << frame_bits) - 1)
        m.d.comb += [self.ready.eq(bits_left == 0), self.tx.eq(shift[0])]
        with m.If(bits_left == 0):
            with m.If(self.valid):
                # stop bit (1), data LSB first, start bit (0) in bit 0
                m.d.sync += [shift.eq((1 << (frame_bits - 1)) | (self.data << 1)), bits_left.eq(frame_bits)]
                m.d.sync += timer.eq(self.divisor - 1)
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shift.eq((shift >> 1) | (1 << (frame_bits - 1))), bits_left.eq(bits_left - 1)]
            m.d.sync += timer.eq(self.divisor - 1)
        return m

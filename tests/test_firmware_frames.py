"""UART and frame parser/sender in Amaranth's simulator, against the Python protocol reference."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.errors import Bs4nnError
from bs4nn.firmware.frames import FrameParser, FrameSender
from bs4nn.firmware.protocol import (
    EVENT_BYTES,
    EVENT_FIELDS,
    START,
    BoardResult,
    ErrorCode,
    FrameDecoder,
    FrameType,
    crc16,
    decode_result,
    encode_frame,
    encode_result,
    events_frame,
    fields_layout,
    weight_fields,
    weight_frame,
)
from bs4nn.firmware.uart import MAX_RATE_ERROR, UARTRx, UARTTx, uart_rate
from bs4nn.sim.semantics import address_events

DIVISOR = 4
CLOCK_PERIOD = 1e-6
LENGTHS = {FrameType.IMAGE: (4, 4), FrameType.EVENTS: (0, 8)}
TIMEOUT = 50


def test_crc_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1  # the catalogue check value


def test_frame_reference_round_trip_and_corruption() -> None:
    result = BoardResult(3, 17, (256, 17, 40), (-5, 12, 0))
    frame = encode_result(result)
    decoder = FrameDecoder()
    (received,) = decoder.feed(b"\x00\x13" + frame[:5]) + decoder.feed(frame[5:])
    assert received.frame_type == FrameType.RESULT
    assert decode_result(received.payload, 3) == result
    corrupt = bytearray(frame)
    corrupt[6] ^= 0x10
    with pytest.raises(Bs4nnError, match="bad CRC"):
        FrameDecoder().feed(bytes(corrupt))


def test_events_frame_carries_the_address_event_order() -> None:
    times = np.array([5, 300, 0, 5, 2, 256, 0])
    (frame,) = FrameDecoder().feed(events_frame(times, 256))
    layout = fields_layout(EVENT_FIELDS)
    payload = frame.payload
    events = [
        layout.from_bits(int.from_bytes(payload[k : k + EVENT_BYTES], "big"))
        for k in range(0, len(payload), EVENT_BYTES)
    ]
    assert (
        [(e.pixel, e.time) for e in events]
        == [tuple(e) for e in address_events(times, 256).tolist()]
        == [(2, 0), (6, 0), (4, 2), (0, 5), (3, 5)]
    )


@pytest.mark.parametrize("lanes", [1, 8, 9, 64])
def test_weight_frame_fields_as_the_board_reads_them(lanes: int) -> None:
    word = (1 << lanes) - 2
    (frame,) = FrameDecoder().feed(weight_frame(1, 0x1234, word, lanes))
    assert len(frame.payload) == 3 + -(-lanes // 8) == sum(size for _, size in weight_fields(lanes))
    fields = fields_layout(weight_fields(lanes)).from_bits(int.from_bytes(frame.payload, "big"))
    assert (fields.layer, fields.address, fields.data) == (1, 0x1234, word)


@settings(max_examples=5, deadline=None)
@given(data=st.binary(min_size=1, max_size=12))
def test_uart_tx_to_rx_loopback(data: bytes) -> None:
    m = Module()
    m.submodules.tx = tx = UARTTx(DIVISOR)
    m.submodules.rx = rx = UARTRx(DIVISOR)
    m.d.comb += rx.rx.eq(tx.tx)
    received = []

    async def bench(ctx) -> None:
        for value in data:
            ctx.set(tx.data, value)
            ctx.set(tx.valid, 1)
            await ctx.tick().until(tx.ready)
            ctx.set(tx.valid, 0)
            await ctx.tick()
        for _ in range(12 * DIVISOR + 4):  # let the last byte arrive
            await ctx.tick()

    async def monitor(ctx) -> None:
        async for _, _, valid, value, frame_error in ctx.tick().sample(rx.valid, rx.data, rx.frame_error):
            assert not frame_error
            if valid:
                received.append(value)

    sim = Simulator(m)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(bench)
    sim.add_process(monitor)
    sim.run()
    assert bytes(received) == data


def run_parser(stream: bytes, gap_after: int | None = None) -> list[tuple[int, bytes, int]]:
    """Feed bytes (every 3rd cycle) to a parser; return (frame_type, payload, error) per ``done``."""
    parser = FrameParser(LENGTHS, TIMEOUT)
    events: list[tuple[int, bytes, int]] = []
    payload = bytearray()

    async def bench(ctx) -> None:
        for position, value in enumerate(stream):
            ctx.set(parser.byte, value)
            ctx.set(parser.byte_valid, 1)
            await ctx.tick()
            ctx.set(parser.byte_valid, 0)
            await ctx.tick().repeat(2)
            if gap_after is not None and position == gap_after:
                await ctx.tick().repeat(2 * TIMEOUT)
        await ctx.tick().repeat(2 * TIMEOUT)

    async def monitor(ctx) -> None:
        watched = (parser.payload_valid, parser.payload_byte, parser.payload_index, parser.done, parser.error)
        samples = ctx.tick().sample(*watched, parser.frame_type)
        async for _, _, valid, value, index, done, error, frame_type in samples:
            if valid:
                assert index == len(payload)
                payload.append(value)
            if done:
                events.append((frame_type, bytes(payload), error))
                payload.clear()

    sim = Simulator(parser)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(bench)
    sim.add_process(monitor)
    sim.run()
    return events


def test_parser_accepts_good_frames_and_rejects_bad_ones() -> None:
    good = encode_frame(FrameType.IMAGE, bytes([1, START, 3, 255]))  # a start byte inside the payload
    events_frame = encode_frame(FrameType.EVENTS, b"")
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 1
    bad_type = encode_frame(0x42, bytes(4))
    bad_length = encode_frame(FrameType.IMAGE, bytes(3))
    stream = b"\x00\x11" + good + events_frame + bytes(bad_crc) + bad_type + bad_length + good
    events = run_parser(stream)
    assert events == [
        (FrameType.IMAGE, bytes([1, START, 3, 255]), 0),
        (FrameType.EVENTS, b"", 0),
        (FrameType.IMAGE, bytes([1, START, 3, 255]), ErrorCode.BAD_CRC),
        (0x42, b"", ErrorCode.BAD_TYPE),
        (FrameType.IMAGE, b"", ErrorCode.BAD_LENGTH),
        (FrameType.IMAGE, bytes([1, START, 3, 255]), 0),
    ]


def test_parser_times_out_on_a_truncated_frame_then_recovers() -> None:
    good = encode_frame(FrameType.IMAGE, bytes([9, 8, 7, 6]))
    events = run_parser(good[:6] + good, gap_after=5)
    assert [error for _, _, error in events] == [ErrorCode.TIMEOUT, 0]
    assert events[1][1] == bytes([9, 8, 7, 6])


def test_parser_reports_an_implausible_length_at_once() -> None:
    events = run_parser(bytes([START, FrameType.EVENTS, 0xFF, 0xFF]) + encode_frame(FrameType.EVENTS, bytes(8)))
    assert [error for _, _, error in events] == [ErrorCode.BAD_LENGTH, 0]


@settings(max_examples=4, deadline=None)
@given(payload=st.binary(max_size=10), frame_type=st.sampled_from([FrameType.RESULT, FrameType.ERROR]))
def test_sender_through_uart_matches_reference(payload: bytes, frame_type: int) -> None:
    m = Module()
    m.submodules.sender = sender = FrameSender()
    m.submodules.tx = tx = UARTTx(DIVISOR)
    m.submodules.rx = rx = UARTRx(DIVISOR)
    m.d.comb += [tx.data.eq(sender.tx_data), tx.valid.eq(sender.tx_valid), sender.tx_ready.eq(tx.ready)]
    m.d.comb += rx.rx.eq(tx.tx)
    received = bytearray()

    async def bench(ctx) -> None:
        ctx.set(sender.frame_type, frame_type)
        ctx.set(sender.length, len(payload))
        ctx.set(sender.start, 1)
        await ctx.tick()
        ctx.set(sender.start, 0)
        while ctx.get(sender.busy):
            index = ctx.get(sender.payload_index)
            ctx.set(sender.payload_byte, payload[index] if index < len(payload) else 0)
            await ctx.tick()
        await ctx.tick().repeat(12 * DIVISOR + 4)

    async def monitor(ctx) -> None:
        async for _, _, valid, value in ctx.tick().sample(rx.valid, rx.data):
            if valid:
                received.append(value)

    sim = Simulator(m)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(bench)
    sim.add_process(monitor)
    sim.run()
    assert bytes(received) == encode_frame(frame_type, payload)


def receive_from_host(divisor: int, bit_cycles: float, data: bytes, phase: float) -> tuple[bytes, int]:
    """Drive UARTRx with a host whose bit lasts ``bit_cycles`` board clocks (back-to-back 8N1
    frames, edges at the nearest cycle); return the bytes received and the framing errors."""
    bits = [bit for value in data for bit in (0, *((value >> i) & 1 for i in range(8)), 1)]
    edges = [round(phase + k * bit_cycles) for k in range(len(bits) + 1)]
    rx = UARTRx(divisor)
    received, errors = [], []

    async def bench(ctx) -> None:
        await ctx.tick().repeat(3)
        for bit, start, end in zip(bits, edges, edges[1:], strict=False):
            ctx.set(rx.rx, bit)
            await ctx.tick().repeat(end - start)
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(4 * divisor)

    async def monitor(ctx) -> None:
        async for _, _, valid, value, frame_error in ctx.tick().sample(rx.valid, rx.data, rx.frame_error):
            if valid:
                received.append(value)
            errors.append(frame_error)

    sim = Simulator(rx)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(bench)
    sim.add_process(monitor)
    sim.run()
    return bytes(received), sum(errors)


@pytest.mark.parametrize("divisor", [4, 6, 25])  # 3 and 2 Mbaud at 12 MHz, 1 Mbaud at 25 MHz
@pytest.mark.parametrize("sign", [-1, 1])
def test_uart_rx_takes_a_host_off_by_the_allowed_rate_error(divisor: int, sign: int) -> None:
    """``uart_rate`` lets the board's rate be up to MAX_RATE_ERROR off the host's: the receiver
    still reads back-to-back bytes from such a host, whatever the phase of its first edge."""
    data = bytes([0x00, 0xFF, 0x55, 0xAA, 0x0F, 0xF0, 0x01, 0x80])
    for phase in (0.0, 0.25, 0.5, 0.75):
        assert receive_from_host(divisor, divisor * (1 + sign * MAX_RATE_ERROR), data, phase) == (data, 0)


def test_uart_rx_fails_beyond_the_tolerance() -> None:
    """The bound is not vacuous: a host 12 % off loses bytes at 4 clock cycles per bit."""
    data = bytes([0x00, 0xFF, 0x55, 0xAA, 0x0F, 0xF0, 0x01, 0x80])
    outcomes = [receive_from_host(4, 4 * (1 + sign * 0.12), data, 0.0) for sign in (-1, 1)]
    assert any(outcome != (data, 0) for outcome in outcomes)


@pytest.mark.parametrize(
    ("clock_hz", "baud", "divisor"),
    [(12e6, 3_000_000, 4), (12e6, 2_000_000, 6), (12e6, 115_200, 104), (25e6, 1_000_000, 25), (25e6, 115_200, 217)],
)
def test_uart_rate_divisors_at_the_board_clocks(clock_hz: float, baud: int, divisor: int) -> None:
    rate = uart_rate(clock_hz, baud)
    assert rate.divisor == divisor and abs(rate.error) <= MAX_RATE_ERROR
    assert rate.actual_baud == pytest.approx(clock_hz / divisor)


@pytest.mark.parametrize(("clock_hz", "baud", "why"), [(25e6, 3_000_000, "4.2 % off"), (12e6, 4_000_000, "too fast")])
def test_uart_rate_refuses_what_the_clock_cannot_make(clock_hz: float, baud: int, why: str) -> None:
    with pytest.raises(Bs4nnError, match=why):
        uart_rate(clock_hz, baud)

"""The board top's engines one at a time, in Amaranth's simulator, against the protocol reference
(:mod:`bs4nn.firmware.protocol`) and the golden coding (:mod:`bs4nn.sim.semantics`)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from bs4nn.firmware.event_source import EventSource, StreamRegister
from bs4nn.firmware.payloads import EventFrameDecoder, ResultSerialiser, WeightFrameDecoder
from bs4nn.firmware.pixel_coder import PixelCoder, sort_cycles
from bs4nn.firmware.protocol import BoardResult, FrameDecoder, encode_result, events_frame, weight_frame
from bs4nn.rtl.params import CoreParams
from bs4nn.sim.golden import random_network
from bs4nn.sim.semantics import address_events, encode_images

TMAX, IMAX, N_IN = 12, 200, 20
PARAMS = CoreParams.from_network(random_network([N_IN, 6, 3], [2, 2], seed=0, tmax=TMAX), 4)


def run_clocked(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def payload_of(frame: bytes) -> bytes:
    (decoded,) = FrameDecoder().feed(frame)
    return decoded.payload


async def feed_bytes(ctx, dut, payload: bytes, gap: int = 3) -> list[tuple[int, int, int]]:
    """Payload bytes a few cycles apart, as the parser gives them; returns the writes seen."""
    writes = []
    for index, byte in enumerate(payload):
        ctx.set(dut.byte, byte)
        if hasattr(dut, "byte_index"):
            ctx.set(dut.byte_index, index)
        ctx.set(dut.byte_valid, 1)
        for _ in range(gap):
            if hasattr(dut, "write_en") and ctx.get(dut.write_en):
                data = ctx.get(dut.write_data)
                writes.append((ctx.get(dut.write_addr), data.pixel, data.time))
            await ctx.tick()
            ctx.set(dut.byte_valid, 0)
    for _ in range(gap):
        await ctx.tick()
    return writes


@pytest.mark.parametrize(
    ("times", "error"),
    [([5, 0, 13, 0, 7, 11], 0), ([], 0)],
)
def test_event_decoder_writes_the_frame_events_in_order(times, error) -> None:
    times = np.asarray(times, np.int64)
    expected = address_events(times, TMAX).tolist()
    dut = EventFrameDecoder(PARAMS)

    async def bench(ctx) -> None:
        for _ in range(2):  # twice: the second frame starts from scratch after `clear`
            writes = await feed_bytes(ctx, dut, payload_of(events_frame(times, TMAX)))
            assert [(a, p, t) for a, p, t in writes] == [(k, p, t) for k, (p, t) in enumerate(expected)]
            assert (ctx.get(dut.count), ctx.get(dut.whole), ctx.get(dut.error)) == (len(expected), 1, error)
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)

    run_clocked(dut, bench)


@pytest.mark.parametrize(
    "payload",
    [
        bytes([0, 1, 0, 5, 0, 2, 0, 4]),  # time goes back
        bytes([0, 20, 0, 5]),  # pixel >= n_in
        bytes([0, 1, 0, TMAX]),  # time >= tmax
    ],
)
def test_event_decoder_flags_bad_events(payload: bytes) -> None:
    dut = EventFrameDecoder(PARAMS)

    async def bench(ctx) -> None:
        await feed_bytes(ctx, dut, payload)
        assert ctx.get(dut.error) == 1 and ctx.get(dut.whole) == 1

    run_clocked(dut, bench)


def test_event_decoder_counts_a_partial_event() -> None:
    dut = EventFrameDecoder(PARAMS)

    async def bench(ctx) -> None:
        await feed_bytes(ctx, dut, bytes([0, 1, 0, 5, 0, 2]))
        assert (ctx.get(dut.count), ctx.get(dut.whole), ctx.get(dut.error)) == (1, 0, 0)

    run_clocked(dut, bench)


@pytest.mark.parametrize(
    ("layer", "address", "ok"), [(0, 0, 1), (1, 5, 1), (1, 6, 0), (0, 39, 1), (0, 40, 0), (2, 0, 0)]
)
def test_weight_decoder_fields_and_range(layer: int, address: int, ok: int) -> None:
    dut = WeightFrameDecoder(PARAMS)
    depths = [p.layout.depth for p in PARAMS.layers]
    assert depths == [40, 6]
    word = 0b1011

    async def bench(ctx) -> None:
        await feed_bytes(ctx, dut, payload_of(weight_frame(layer, address, word, PARAMS.lanes)))
        write = ctx.get(dut.write)
        assert (write.layer & 1, write.address, write.data) == (layer & 1, address, word)
        assert ctx.get(dut.ok) == ok == int(layer < len(depths) and address < depths[layer])

    run_clocked(dut, bench)


def test_result_serialiser_matches_the_reference_encoding() -> None:
    dut = ResultSerialiser(PARAMS)
    result = BoardResult(2, 7, (12, 7, 9), (-5, 3, -1))
    expected = payload_of(encode_result(result))

    async def bench(ctx) -> None:
        ctx.set(
            dut.result,
            {
                "decision": result.decision,
                "decision_time": result.decision_time,
                "spike_times": list(result.spike_times),
                "counts": list(result.counts),
            },
        )
        got = []
        for index in range(len(expected)):
            ctx.set(dut.index, index)
            await ctx.delay(1e-9)
            got.append(ctx.get(dut.byte))
        assert bytes(got) == expected

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def test_pixel_coder_sorts_an_image_into_address_events() -> None:
    rng = np.random.default_rng(5)
    dut = PixelCoder(PARAMS, IMAX)

    async def bench(ctx) -> None:
        for _ in range(3):
            pixels = rng.integers(0, IMAX + 1, size=N_IN)
            pixels[:4] = 0  # black pixels never spike
            expected = address_events(encode_images(pixels[None, :], TMAX, IMAX)[0], TMAX).tolist()
            await feed_bytes(ctx, dut, bytes(pixels.astype(np.uint8)))
            assert ctx.get(dut.error) == 0
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            writes, cycles = {}, 0
            while True:
                if ctx.get(dut.write_en):
                    data = ctx.get(dut.write_data)
                    writes[ctx.get(dut.write_addr)] = (data.pixel, data.time)
                cycles += ctx.get(dut.coding)
                done = ctx.get(dut.done)
                await ctx.tick()
                if done:
                    break
            assert [writes[k] for k in range(len(writes))] == [tuple(e) for e in expected]
            assert ctx.get(dut.count) == len(expected)
            assert cycles == 2 * TMAX + 3 * len(expected) + 2 * (N_IN - len(expected))
            assert cycles == sort_cycles(encode_images(pixels[None, :], TMAX, IMAX), TMAX)[0]
            ctx.set(dut.clear, 1)  # the histogram is zeroed for the next image
            await ctx.tick()
            ctx.set(dut.clear, 0)
            await ctx.tick()
            while ctx.get(dut.clearing):
                await ctx.tick()

    run_clocked(dut, bench)


def test_pixel_coder_flags_a_pixel_above_imax() -> None:
    dut = PixelCoder(PARAMS, IMAX)

    async def bench(ctx) -> None:
        await feed_bytes(ctx, dut, bytes([0, IMAX, IMAX + 1] + [0] * (N_IN - 3)))
        assert ctx.get(dut.error) == 1

    run_clocked(dut, bench)


async def fill_and_start(ctx, dut: EventSource, events: list[tuple[int, int]]) -> None:
    """Write ``events`` into the source's buffer, then pulse ``start`` (the board does this per image)."""
    for address, (pixel, time) in enumerate(events):
        ctx.set(dut.write_en, 1)
        ctx.set(dut.write_addr, address)
        ctx.set(dut.write_data, {"pixel": pixel, "time": time})
        await ctx.tick()
    ctx.set(dut.write_en, 0)
    ctx.set(dut.count, len(events))
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)


def test_event_source_streams_the_buffer_then_the_end_beat_under_backpressure() -> None:
    rng = np.random.default_rng(6)
    dut = EventSource(PARAMS)
    events = [
        (int(p), int(t)) for p, t in zip(rng.permutation(N_IN)[:9], np.sort(rng.integers(0, TMAX, 9)), strict=True)
    ]

    async def bench(ctx) -> None:
        await fill_and_start(ctx, dut, events)
        beats = []
        while True:
            ready = int(rng.random() < 0.5)
            ctx.set(dut.events.ready, ready)
            await ctx.delay(1e-9)
            moved, done = ctx.get(dut.events.valid) and ready, ctx.get(dut.done)
            if moved:
                payload = ctx.get(dut.events.payload)
                beats.append((payload.pixel, payload.time))
            await ctx.tick()
            if done:
                break
        assert beats[:-1] == events and beats[-1][1] == TMAX

    run_clocked(dut, bench)


@pytest.mark.parametrize("skip_after", [None, 0, 4, 8])
def test_event_source_sends_a_beat_every_cycle_and_skips_to_the_end_beat(skip_after) -> None:
    # always ready: one beat a cycle from the first SEND cycle; ``skip`` from the cycle beat
    # ``skip_after`` moves: the beat after it is the end beat (the core's early exit)
    events = [(pixel, pixel // 2) for pixel in range(9)]

    async def bench(ctx) -> None:
        await fill_and_start(ctx, dut, events)
        ctx.set(dut.events.ready, 1)
        beats, cycles = [], []
        for cycle in range(3 * len(events)):
            ctx.set(dut.skip, int(skip_after is not None and len(beats) >= skip_after))
            _, _, valid, payload, done = await ctx.tick().sample(dut.events.valid, dut.events.payload, dut.done)
            if valid:
                beats.append((payload.pixel, payload.time))
                cycles.append(cycle)
            if done:
                break
        kept = events if skip_after is None else events[: skip_after + 1]
        assert beats[:-1] == kept and beats[-1][1] == TMAX
        assert cycles == list(range(cycles[0], cycles[0] + len(beats))), "one beat a cycle"

    dut = EventSource(PARAMS)
    run_clocked(dut, bench)


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_stream_register_passes_every_beat_in_order_one_a_cycle(stall: float) -> None:
    dut = StreamRegister(PARAMS.event_layout)
    beats = [PARAMS.encode_event(pixel % PARAMS.n_in, pixel % PARAMS.tmax) for pixel in range(40)]
    rng = np.random.default_rng(int(stall * 10))
    received: list[int] = []
    cycles = 0

    async def bench(ctx) -> None:
        nonlocal cycles
        sent = 0
        while len(received) < len(beats):
            ready = int(rng.random() >= stall)
            ctx.set(dut.output.ready, ready)
            ctx.set(dut.input.valid, int(sent < len(beats)))
            ctx.set(dut.input.payload.as_value(), beats[min(sent, len(beats) - 1)])
            _, _, taken, valid, payload = await ctx.tick().sample(
                dut.input.ready, dut.output.valid, dut.output.payload.as_value()
            )
            sent += int(taken and sent < len(beats))
            if valid and ready:
                received.append(int(payload))
            cycles += 1
            assert cycles < 10 * len(beats), "the register lost a beat"

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert received == beats
    if not stall:
        assert cycles == len(beats) + 1  # one beat a cycle, one cycle later

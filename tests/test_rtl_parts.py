"""The core's Components one at a time, in Amaranth's simulator, against Python references:
the neuron model (integrate, threshold test), the lowest-lane encoder, the argmax and the readout."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from bs4nn.rtl.core import LowestLane
from bs4nn.rtl.memories import LayerMemories
from bs4nn.rtl.neuron import CounterIntegrate, ThresholdTest
from bs4nn.rtl.params import CoreParams, LayerParams
from bs4nn.rtl.readout import OutputReadout, SequentialArgmax
from bs4nn.sim.golden import random_network

LAYER = LayerParams(fan_in=9, fan_out=10, threshold_count=3, lanes=4)  # 3 words, the last with 2 neurons


def run_comb(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def run_clocked(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def random_words(rng, params: LayerParams, n: int) -> list[list[dict]]:
    bits = params.counter_bits
    counts = rng.integers(-(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1, size=(n, params.lanes))
    fired = rng.integers(0, 2, size=(n, params.lanes))
    return [
        [{"count": int(c), "fired": int(f)} for c, f in zip(cs, fs, strict=True)]
        for cs, fs in zip(counts, fired, strict=True)
    ]


def test_counter_integrate_adds_plus_or_minus_one_and_keeps_fired() -> None:
    rng = np.random.default_rng(0)
    dut = CounterIntegrate(LAYER)

    async def bench(ctx) -> None:
        for word in random_words(rng, LAYER, 50):
            signs = int(rng.integers(0, 1 << LAYER.lanes))
            ctx.set(dut.state, word)
            ctx.set(dut.signs, signs)
            update = ctx.get(dut.update)
            for lane, old in enumerate(word):
                step = 1 if signs >> lane & 1 else -1
                assert (update[lane].count, update[lane].fired) == (old["count"] + step, old["fired"])

    run_comb(dut, bench)


def test_counter_integrate_reaches_marks_unfired_lanes_whose_new_count_meets_the_threshold() -> None:
    rng = np.random.default_rng(1)
    dut = CounterIntegrate(LAYER)
    threshold = LAYER.threshold_count
    seen = set()

    async def bench(ctx) -> None:
        for _ in range(60):
            counts = rng.integers(threshold - 2, threshold + 3, size=LAYER.lanes)  # around the threshold
            fired = rng.integers(0, 2, size=LAYER.lanes)
            word = [{"count": int(c), "fired": int(f)} for c, f in zip(counts, fired, strict=True)]
            signs = int(rng.integers(0, 1 << LAYER.lanes))
            ctx.set(dut.state, word)
            ctx.set(dut.signs, signs)
            reaches = ctx.get(dut.reaches)
            for lane, old in enumerate(word):
                new = old["count"] + (1 if signs >> lane & 1 else -1)
                expected = int(not old["fired"] and new >= threshold)
                assert reaches >> lane & 1 == expected, (old, signs >> lane & 1)
                seen.add((old["count"] - threshold, signs >> lane & 1, expected))

    run_comb(dut, bench)
    # both signs at threshold - 1 and threshold + 1, reaching and not: every case of the compare met
    assert {(-1, 1, 1), (-1, 0, 0), (1, 0, 1), (0, 0, 0), (0, 1, 1)} <= seen


@pytest.mark.parametrize("last_word", [0, 1])
def test_threshold_test_fires_unfired_lanes_at_threshold_masked_to_the_layer(last_word: int) -> None:
    rng = np.random.default_rng(1)
    dut = ThresholdTest(LAYER)
    valid_lanes = LAYER.fan_out - (LAYER.words - 1) * LAYER.lanes if last_word else LAYER.lanes

    async def bench(ctx) -> None:
        ctx.set(dut.last_word, last_word)
        for word in random_words(rng, LAYER, 80):
            for lane in word:  # counts around the threshold
                lane["count"] = lane["count"] % 7 - 1
            ctx.set(dut.state, word)
            fires, update = ctx.get(dut.fires), ctx.get(dut.update)
            for lane, old in enumerate(word):
                expected = lane < valid_lanes and not old["fired"] and old["count"] >= LAYER.threshold_count
                assert (fires >> lane & 1) == expected
                assert (update[lane].count, update[lane].fired) == (old["count"], old["fired"] | expected)

    run_comb(dut, bench)


def test_lowest_lane_is_a_priority_encoder() -> None:
    dut = LowestLane(8)

    async def bench(ctx) -> None:
        for pending in range(1, 256):
            ctx.set(dut.pending, pending)
            assert ctx.get(dut.lowest) == (pending & -pending).bit_length() - 1

    run_comb(dut, bench)


def test_sequential_argmax_takes_the_first_largest_one_value_a_cycle() -> None:
    rng = np.random.default_rng(2)
    n, bits = 7, 6
    dut = SequentialArgmax(n, bits)

    async def bench(ctx) -> None:
        for _ in range(20):
            values = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=n)
            values[rng.integers(0, n)] = values.max()  # ties happen
            ctx.set(dut.values, [int(v) for v in values])
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.step, 1)
            lasts = []
            for _ in range(n):
                lasts.append(ctx.get(dut.last))
                await ctx.tick()
            ctx.set(dut.step, 0)
            assert lasts == [0] * (n - 1) + [1]
            assert ctx.get(dut.index) == int(np.argmax(values))

    run_clocked(dut, bench)


def test_output_readout_reads_a_counter_memory_then_argmax_in_2w_plus_n_cycles() -> None:
    params = CoreParams.from_network(random_network([3, 10], [2], seed=0), 4)
    out = params.layers[-1]
    rng = np.random.default_rng(3)
    m = Module()
    m.submodules.mem = mem = LayerMemories(out, [])
    m.submodules.readout = readout = OutputReadout(params)
    m.d.comb += [mem.state_read_addr.eq(readout.read_addr), readout.read_data.eq(mem.state_read_data)]

    async def bench(ctx) -> None:
        for _ in range(3):
            words = random_words(rng, out, out.words)
            for address, word in enumerate(words):
                ctx.set(mem.state_write_en, 1)
                ctx.set(mem.state_write_addr, address)
                ctx.set(mem.state_write_data, word)
                await ctx.tick()
            ctx.set(mem.state_write_en, 0)
            ctx.set(readout.start, 1)
            await ctx.tick()
            ctx.set(readout.start, 0)
            cycles = 1
            while not ctx.get(readout.done):
                await ctx.tick()
                cycles += 1
            await ctx.tick()
            counts = [lane["count"] for word in words for lane in word][: params.n_out]
            assert cycles == 2 * out.words + params.n_out
            assert list(ctx.get(readout.counts)) == counts
            assert ctx.get(readout.argmax) == int(np.argmax(counts))

    run_clocked(m, bench)

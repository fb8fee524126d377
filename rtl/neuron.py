"""The BS4NN neuron model in hardware: what one presynaptic spike does to a word of counters, and
which counters of a word fire.  The piece a network family swaps: the controller
(:mod:`bs4nn.rtl.core`) only sequences memory words through these two combinational Components.

Both work on one counter-memory word, ``lanes`` (signed counter, fired flag) pairs
(:attr:`~bs4nn.rtl.params.LayerParams.state_layout`), as :class:`~bs4nn.rtl.memories.LayerMemories`
reads and writes it.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux
from amaranth.hdl import Assert
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bs4nn.rtl.params import LayerParams


class CounterIntegrate(wiring.Component):
    """One spike integrated into one counter word: +1 where the sign bit is 1, -1 where it is 0.

    ``state``: the word as read; ``signs``: the presynaptic row's weight word; ``update``: the word
    to write back (fired flags kept); ``reaches``: lanes not fired yet whose updated counter is at or
    above the threshold, so the controller scans only words that may fire (decided from the counter
    as read, beside the adder rather than after it: ``+1`` from ``threshold - 1`` on, ``-1`` from
    ``threshold + 1`` on).  ``formal=True``: while ``active``, assert that no counter
    wraps (the counter width of :func:`~bs4nn.export.layout.counter_bits` must suffice).
    """

    def __init__(self, params: LayerParams, *, formal: bool = False):
        self.params = params
        self.formal = formal
        super().__init__(
            {
                "state": In(params.state_layout),
                "signs": In(params.lanes),
                "active": In(1),
                "update": Out(params.state_layout),
                "reaches": Out(params.lanes),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        bits, threshold = self.params.counter_bits, self.params.threshold_count
        largest, smallest = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
        for lane in range(self.params.lanes):
            old, sign = self.state[lane], self.signs[lane]
            m.d.comb += [
                # one adder of +1 or -1 (two adders and a multiplexer cost twice the carry cells)
                self.update[lane].count.eq(old.count + Mux(sign, 1, -1)),
                self.update[lane].fired.eq(old.fired),
                self.reaches[lane].eq(~old.fired & Mux(sign, old.count >= threshold - 1, old.count >= threshold + 1)),
            ]
            if self.formal:
                with m.If(self.active):
                    m.d.comb += Assert(~(sign & (old.count == largest)) & ~(~sign & (old.count == smallest)))
        return m


class ThresholdTest(wiring.Component):
    """The threshold test of one counter word after a step: ``fires`` = lanes whose counter reached
    the threshold and that have not fired yet (lanes past the layer's last neuron masked off in the
    ``last_word``); ``update`` is the word with those fired flags set, counters unchanged."""

    def __init__(self, params: LayerParams):
        self.params = params
        super().__init__(
            {
                "state": In(params.state_layout),
                "last_word": In(1),
                "fires": Out(params.lanes),
                "update": Out(params.state_layout),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        last_word_lanes = params.fan_out - (params.words - 1) * params.lanes
        lane_mask = Mux(
            self.last_word,
            Const((1 << last_word_lanes) - 1, params.lanes),
            Const((1 << params.lanes) - 1, params.lanes),
        )
        word = self.state
        crossed = Cat(~word[lane].fired & (word[lane].count >= params.threshold_count) for lane in range(params.lanes))
        m.d.comb += self.fires.eq(crossed & lane_mask)
        for lane in range(params.lanes):
            m.d.comb += [
                self.update[lane].count.eq(word[lane].count),
                self.update[lane].fired.eq(word[lane].fired | self.fires[lane]),
            ]
        return m

"""The BS4NN neuron model in hardware: what one presynaptic spike does to a word of counters, and
which counters of a word fire.  The piece a network family swaps: the controller
(:mod:`bs4nn.rtl.core`) only sequences memory words through these two combinational Components.

Both work on one counter-memory word, ``lanes`` (signed counter, fired flag) pairs
(:attr:`~bs4nn.rtl.params.LayerParams.state_layout`), as :class:`~bs4nn.rtl.memories.LayerMemories`
reads and writes it.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
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
    ``threshold + 1`` on).  A paired layer (:attr:`~bs4nn.rtl.params.LayerParams.paired`) takes a
    second event's row, ``signs2``, while ``pair``: one adder of -2..+2, and ``reaches`` holds
    after either event (the golden model fires a neuron that reached the threshold after any event
    of the step, even if the next one takes it back below).  ``formal=True``: while ``active``, assert that no counter
    wraps (the counter width of :func:`~bs4nn.export.layout.counter_bits` must suffice).
    """

    def __init__(self, params: LayerParams, *, formal: bool = False):
        self.params = params
        self.formal = formal
        pair_ports = {"signs2": In(params.lanes), "pair": In(1)} if params.paired else {}
        super().__init__(
            {
                **pair_ports,
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
            if self.params.paired:
                # the second event: -1 or +1 while pairing; ``up2``: it raises the counter further
                second, up2 = Mux(self.pair, Mux(self.signs2[lane], 1, -1), 0), self.pair & self.signs2[lane]
                delta = Signal(signed(3), name=f"delta{lane}")
                m.d.comb += delta.eq(Mux(sign, 1, -1) + second)
                # the higher of the two counts after the first event and after both
                up = Mux(up2, old.count >= threshold - 2, old.count >= threshold - 1)
                down = Mux(up2, old.count >= threshold, old.count >= threshold + 1)
            else:
                delta = Mux(sign, 1, -1)
                up, down = old.count >= threshold - 1, old.count >= threshold + 1
            total = Signal(signed(bits + 2), name=f"total{lane}")
            m.d.comb += [
                # one adder of the event's (or pair's) step, not an adder per event and a multiplexer
                total.eq(old.count + delta),
                self.update[lane].count.eq(total),
                self.update[lane].fired.eq(old.fired),
                self.reaches[lane].eq(~old.fired & Mux(sign, up, down)),
            ]
            if self.formal:
                with m.If(self.active):
                    m.d.comb += Assert((total <= largest) & (total >= smallest))
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

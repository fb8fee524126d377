"""One layer's memories: weight rows (block RAM or SPRAM) and counter words."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bs4nn.rtl.params import LayerParams, index_bits


class LayerMemories(wiring.Component):
    """One layer's weight memory (sign rows, ``lanes`` bits a word) and counter memory.

    Weight memory: one read port (the integrating event's row) and one write port (run-time
    model loading, only between images) sharing one address, so it maps to single-port RAM.
    Counter memory: ``words`` words of ``lanes`` (counter, fired) pairs, one synchronous read
    port and one write port; the controller never reads a word in the cycle it writes it, so
    no transparency is needed.
    """

    def __init__(self, params: LayerParams, weight_words: Sequence[int]):
        self.params = params
        self._weight_words = [int(word) for word in weight_words]
        layout = params.layout
        state = params.state_layout
        address = unsigned(layout.address_bits)
        word_address = unsigned(index_bits(params.words))
        super().__init__(
            {
                "weight_read_addr": In(address),
                "weight_read_data": Out(params.lanes),
                "weight_write_en": In(1),
                "weight_write_addr": In(address),
                "weight_write_data": In(params.lanes),
                "state_read_addr": In(word_address),
                "state_read_data": Out(state),
                "state_write_en": In(1),
                "state_write_addr": In(word_address),
                "state_write_data": In(state),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        m.submodules.weights = weights = Memory(
            shape=unsigned(params.lanes), depth=params.layout.depth, init=self._weight_words
        )
        weight_write = weights.write_port()
        weight_read = weights.read_port()
        # one shared address: a single-port RAM (iCE40 UltraPlus SPRAM) can hold the weights
        weight_addr = Signal.like(self.weight_read_addr)
        m.d.comb += [
            weight_addr.eq(Mux(self.weight_write_en, self.weight_write_addr, self.weight_read_addr)),
            weight_read.addr.eq(weight_addr),
            # a read port disabled while writing is what Yosys maps to single-port SPRAM
            weight_read.en.eq(~self.weight_write_en),
            self.weight_read_data.eq(weight_read.data),
            weight_write.en.eq(self.weight_write_en),
            weight_write.addr.eq(weight_addr),
            weight_write.data.eq(self.weight_write_data),
        ]
        m.submodules.state = state = Memory(shape=params.state_layout, depth=params.words, init=[])
        state_write = state.write_port()
        state_read = state.read_port()
        m.d.comb += [
            state_read.addr.eq(self.state_read_addr),
            self.state_read_data.eq(state_read.data),
            state_write.en.eq(self.state_write_en),
            state_write.addr.eq(self.state_write_addr),
            state_write.data.eq(self.state_write_data),
        ]
        return m

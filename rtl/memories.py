"""One layer's memories: weight rows (block RAM or SPRAM) and counter words."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bs4nn.rtl.params import LayerParams, index_bits


class WeightMemory(wiring.Component):
    """Weight words (sign bits or b-bit weight fields): one synchronous read port and one write port (run-time model
    loading, only between images) sharing one address, so it maps to single-port RAM (iCE40
    UltraPlus SPRAM) as well as to block RAM."""

    def __init__(self, width: int, depth: int, words: Sequence[int]):
        self.width, self.depth = width, depth
        self._words = [int(word) for word in words]
        address = unsigned(index_bits(depth))
        super().__init__(
            {
                "read_addr": In(address),
                "read_data": Out(width),
                "write_en": In(1),
                "write_addr": In(address),
                "write_data": In(width),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.memory = memory = Memory(shape=unsigned(self.width), depth=self.depth, init=self._words)
        write = memory.write_port()
        read = memory.read_port()
        address = Signal.like(self.read_addr)
        m.d.comb += [
            address.eq(Mux(self.write_en, self.write_addr, self.read_addr)),
            read.addr.eq(address),
            # a read port disabled while writing is what Yosys maps to single-port SPRAM
            read.en.eq(~self.write_en),
            self.read_data.eq(read.data),
            write.en.eq(self.write_en),
            write.addr.eq(address),
            write.data.eq(self.write_data),
        ]
        return m


class LayerMemories(wiring.Component):
    """One layer's weight memory (rows of weight fields, ``layout.width`` bits a word) and counter memory.

    Weight memory: one read port (the integrating event's row) and one write port (run-time
    model loading, only between images) sharing one address, so it maps to single-port RAM.
    A paired layer (:attr:`~bs4nn.rtl.params.LayerParams.paired`) has a second copy of the weights
    with its own read port (``weight_read_addr2``), so two events' rows are read in one cycle; a
    write goes to both copies.
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
        pair_ports = {"weight_read_addr2": In(address), "weight_read_data2": Out(layout.width)} if params.paired else {}
        super().__init__(
            {
                **pair_ports,
                "weight_read_addr": In(address),
                "weight_read_data": Out(layout.width),
                "weight_write_en": In(1),
                "weight_write_addr": In(address),
                "weight_write_data": In(layout.width),
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
        m.submodules.weights = weights = WeightMemory(params.layout.width, params.layout.depth, self._weight_words)
        copies = [(weights, self.weight_read_addr, self.weight_read_data)]
        if params.paired:
            weights2 = WeightMemory(params.layout.width, params.layout.depth, self._weight_words)
            m.submodules.weights2 = weights2
            copies.append((weights2, self.weight_read_addr2, self.weight_read_data2))
        for memory, read_addr, read_data in copies:
            m.d.comb += [
                memory.read_addr.eq(read_addr),
                read_data.eq(memory.read_data),
                memory.write_en.eq(self.weight_write_en),
                memory.write_addr.eq(self.weight_write_addr),
                memory.write_data.eq(self.weight_write_data),
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

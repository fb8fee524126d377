"""The end of an image: the output layer's counters read out, then the argmax when no output fired.

Generic over the network family: :class:`OutputReadout` copies one signed value per output neuron
out of the output layer's counter memory, :class:`SequentialArgmax` picks the largest.
"""
# ruff: noqa: SIM117  # nested m.If / m.State blocks are the Amaranth idiom

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bs4nn.rtl.params import CoreParams, index_bits


class SequentialArgmax(wiring.Component):
    """Index of the largest of ``n`` signed values, ties to the lowest index (strict ``>``), one
    value a cycle: ``start`` (one cycle) resets it, then each cycle with ``step`` compares the next
    value; ``last`` is 1 in the cycle that compares the ``n``-th.  ``index`` holds the winner."""

    def __init__(self, n: int, value_bits: int):
        self.n, self.value_bits = n, value_bits
        super().__init__(
            {
                "values": In(data.ArrayLayout(signed(value_bits), n)),
                "start": In(1),
                "step": In(1),
                "last": Out(1),
                "index": Out(index_bits(n)),
            }
        )

    def elaborate(self, platform) -> Module:
        """The values to come wait in a shift register, loaded by the first step (``values`` may
        still change in the ``start`` cycle): each step compares its head, so no ``n``-way
        multiplexer indexed by the position lies before the compare (it was the core's critical
        path at 16 lanes on the UP5K)."""
        m = Module()
        position = Signal(range(self.n + 1))
        best = Signal(signed(self.value_bits))
        first = Signal()  # the next step is the first: it compares values[0] and loads the rest
        waiting = Signal(data.ArrayLayout(signed(self.value_bits), max(1, self.n - 1)))  # values[position + 1 ..]
        candidate = Signal(signed(self.value_bits))
        m.d.comb += [
            candidate.eq(Mux(first, self.values[0], waiting[0])),
            self.last.eq(position == self.n - 1),
        ]
        with m.If(self.start):
            m.d.sync += [position.eq(0), self.index.eq(0), best.eq(-(1 << (self.value_bits - 1))), first.eq(1)]
        with m.Elif(self.step):
            with m.If(candidate > best):
                m.d.sync += [best.eq(candidate), self.index.eq(position)]
            m.d.sync += [position.eq(position + 1), first.eq(0)]
            for k in range(self.n - 1):
                after = waiting[k + 1] if k + 1 < self.n - 1 else 0
                m.d.sync += waiting[k].eq(Mux(first, self.values[k + 1], after))
        return m


class OutputReadout(wiring.Component):
    """Reads the output layer's counter words (2 cycles a word) into ``counts``, then runs the
    argmax (``n_out`` cycles).  ``start`` (one cycle) begins it; the memory's read port follows
    ``read_addr`` while the controller lets it; ``done`` is 1 in the last argmax cycle, from which
    on ``counts`` and ``argmax`` hold the image's values."""

    def __init__(self, params: CoreParams):
        self.params = params
        out = params.layers[-1]
        super().__init__(
            {
                "start": In(1),
                "read_addr": Out(unsigned(index_bits(out.words))),
                "read_data": In(out.state_layout),
                "counts": Out(data.ArrayLayout(signed(params.count_bits), params.n_out)),
                "argmax": Out(params.class_bits),
                "done": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        out = params.layers[-1]
        m.submodules.argmax = argmax = SequentialArgmax(params.n_out, params.count_bits)
        m.d.comb += [argmax.values.eq(self.counts), self.argmax.eq(argmax.index)]
        word = Signal(range(out.words + 1))
        m.d.comb += self.read_addr.eq(word)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += word.eq(0)
                    m.next = "READ"
            with m.State("READ"):
                m.next = "LATCH"
            with m.State("LATCH"):  # copy the counters of the word read last cycle
                for neuron in range(params.n_out):
                    with m.If(word == neuron // out.lanes):
                        m.d.sync += self.counts[neuron].eq(self.read_data[neuron % out.lanes].count)
                m.d.sync += word.eq(word + 1)
                with m.If(word == out.words - 1):
                    m.d.comb += argmax.start.eq(1)
                    m.next = "ARGMAX"
                with m.Else():
                    m.next = "READ"
            with m.State("ARGMAX"):
                m.d.comb += argmax.step.eq(1)
                with m.If(argmax.last):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m


class RegisterReadout(wiring.Component):
    """The wide core's readout (its output counters are registers): ``start`` copies them into
    ``counts`` in its own cycle and starts the argmax, which compares one value a cycle over the
    next ``n_out`` cycles; ``done`` is 1 in the last.  Ports as :class:`OutputReadout`'s, less the
    memory address.  Why: the block-RAM readout's read and latch cycles are a fixed cost on every
    image, and a core that knows its decision (an output neuron fired) needs no argmax, only the
    counts: it takes the result the cycle after ``start`` (``bs4nn.rtl.wide``).  The counters hold
    still from ``start`` on: no row lands in the output layer after its step's test.

    ``counts`` follow ``read_data`` every cycle until ``start`` freezes them, and ``clear`` (the
    next image's counters are cleared now; the result has been taken) thaws them.  Why: ``start``
    is decided by the controller from the spike queue in the decision's cycle; as the enable of
    every count register (and their reset) it ran from the queue through the FSM across the chip
    (issue 27: the ECP5 critical path once the output spike times took a one-hot head).  Now the
    enable is two flip-flops and ``start`` ends at one register."""

    def __init__(self, params: CoreParams):
        self.params = params
        super().__init__(
            {
                "start": In(1),
                "clear": In(1),
                "read_data": In(params.layers[-1].state_layout),
                "counts": Out(data.ArrayLayout(signed(params.count_bits), params.n_out)),
                "argmax": Out(params.class_bits),
                "done": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        m.submodules.argmax = argmax = SequentialArgmax(params.n_out, params.count_bits)
        running = Signal()  # the argmax steps (from the cycle after start)
        frozen = Signal()  # start has been: the counts hold the image's values until the clear
        taking = Signal()  # the counts copy the counters (and the argmax waits at its start)
        m.d.comb += [
            taking.eq(~frozen | self.clear),
            argmax.values.eq(self.counts),
            argmax.start.eq(taking),
            argmax.step.eq(running),
            self.argmax.eq(argmax.index),
            self.done.eq(running & argmax.last),
        ]
        with m.If(taking):
            m.d.sync += [self.counts[j].eq(self.read_data[j].count) for j in range(params.n_out)]
        with m.If(self.start):
            m.d.sync += frozen.eq(1)
        with m.Elif(self.clear):
            m.d.sync += frozen.eq(0)
        with m.If(self.start):
            m.d.sync += running.eq(1)
        with m.Elif(argmax.last):
            m.d.sync += running.eq(0)
        return m

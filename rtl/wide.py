"""The wide BS4NN core: every counter in registers, a whole layer updated per cycle.

Lanes beyond 64 (:func:`bs4nn.lanes.is_wide`; at least the widest layer) select it wherever a core
is built (:func:`bs4nn.rtl.family.core_for`): same ports, same golden model, same early exit as the
narrow block-RAM core of :mod:`bs4nn.rtl.core`, whose controller it reuses with its own phases.
Why: the narrow core spends ``ceil(fan_out / lanes) + 2`` cycles on every event; here an event
costs one cycle, the physical limit of an event-driven core (issue 27).

Per layer (:class:`WideLayer`) the presynaptic row is read whole in one cycle from ``banks``
parallel weight memories (the exported 64-lane words of a row side by side, one memory each,
which Yosys maps to block RAMs) and added into the counter registers the next cycle, so rows
stream in one per cycle.  The threshold test covers every counter of the layer at once; the new
spikes leave one per cycle, lowest neuron first, through :class:`SpikeQueue` (the layer's spikes
in groups of 32, each group's lowest one kept in a register, so no path crosses all 600 neurons),
each streaming its row into the next layer.

Phases of a time step ``t`` (cycle counts: :func:`bs4nn.rtl.cycles.predicted_cycles`):

* ``WAIT``: each input event of step ``t`` is accepted in one cycle (its row read; it lands in
  the counters the cycle after); the first beat of a later step, or the end beat, closes the
  step (one cycle, not accepted, while the last row lands).
* ``TEST_l``: one cycle: every counter of layer ``l`` tested, the new spikes flagged fired and
  loaded into the :class:`SpikeQueue`.
* ``EMIT_l``: one spike a cycle, onto the debug port and into layer ``l+1`` (or the result);
  once the queue is empty, one more cycle (the last row lands), then ``TEST_{l+1}``, or ``WAIT``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from amaranth import Array, Cat, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bs4nn.export.layout import DEFAULT_LANES
from bs4nn.rtl.core import Bs4nnCore, _Controller, lowest_set_bit
from bs4nn.rtl.memories import WeightMemory
from bs4nn.rtl.neuron import CounterIntegrate, ThresholdTest
from bs4nn.rtl.params import LayerParams, index_bits
from bs4nn.rtl.readout import OutputReadout
from bs4nn.sim.golden import IntegerNetwork


class WideLayer(wiring.Component):
    """One layer of the wide core: its counters in registers, its weight rows in ``banks`` parallel
    memories.  ``integrate`` (with ``row``): add presynaptic ``row``'s signs to every counter, one
    cycle later (the memories' read latency); ``mark``: set the fired flags of ``fires`` (the
    counters that reached the threshold and have not fired); ``clear``: zero every counter and
    flag.  ``weight_write_*``: run-time loading of one bank word, address ``row << bank_bits | bank``."""

    def __init__(self, params: LayerParams, weight_words: Sequence[int], bank_bits: int):
        self.params, self.bank_bits = params, bank_bits
        self._weight_words = np.asarray(weight_words, dtype=object)
        row = unsigned(index_bits(params.fan_in))
        super().__init__(
            {
                "row": In(row),
                "integrate": In(1),
                "mark": In(1),
                "clear": In(1),
                "fires": Out(params.fan_out),
                "counters": Out(params.state_layout),
                "weight_write_en": In(1),
                "weight_write_address": In(row.width + bank_bits),
                "weight_write_data": In(params.layout.width),
            }
        )

    def _bank_words(self, bank: int) -> list[int]:
        """Initial words of one bank: word ``bank`` of every row of the exported layout."""
        if not len(self._weight_words):
            return []
        return [int(word) for word in self._weight_words.reshape(self.params.fan_in, self.params.banks)[:, bank]]

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        write_bank = self.weight_write_address[: self.bank_bits]
        write_row = self.weight_write_address[self.bank_bits :]
        signs = []
        for bank in range(params.banks):
            memory = m.submodules[f"bank{bank}"] = WeightMemory(
                params.layout.width, params.fan_in, self._bank_words(bank)
            )
            m.d.comb += [
                memory.read_addr.eq(self.row),
                memory.write_en.eq(self.weight_write_en & (write_bank == bank)),
                memory.write_addr.eq(write_row),
                memory.write_data.eq(self.weight_write_data),
            ]
            signs.append(memory.read_data)
        m.submodules.integrate = integrate = CounterIntegrate(params)
        m.submodules.threshold = threshold = ThresholdTest(params)
        landing = Signal()  # the row read last cycle is integrated now
        m.d.sync += landing.eq(self.integrate & ~self.clear)
        m.d.comb += [
            integrate.state.eq(self.counters),
            integrate.signs.eq(Cat(*signs)[: params.fan_out]),
            threshold.state.eq(self.counters),
            threshold.last_word.eq(1),
            self.fires.eq(threshold.fires),
        ]
        with m.If(self.clear):
            m.d.sync += self.counters.eq(0)
        with m.Elif(landing):
            m.d.sync += self.counters.eq(integrate.update)
        with m.Elif(self.mark):
            m.d.sync += self.counters.eq(threshold.update)
        return m


class SpikeQueue(wiring.Component):
    """A layer's new spikes, handed out lowest neuron first, one per cycle: ``load`` takes ``bits``
    (replacing what is left); ``head`` is the lowest neuron still queued while ``valid``; ``pop``
    removes it.  Why not one priority encoder over all the bits: its path (any of 512 bits, then
    ten multiplexer levels, then the row address) bounds the clock.  Here the bits sit in groups
    of :attr:`GROUP`, each with its lowest set bit and an any flag in registers, updated from the
    group's own registers; ``head`` only picks the first non-empty group."""

    GROUP = 32

    def __init__(self, width: int):
        self.width = width
        super().__init__({"load": In(1), "bits": In(width), "pop": In(1), "valid": Out(1), "head": Out(range(width))})

    def elaborate(self, platform) -> Module:
        m = Module()
        sizes = [min(self.GROUP, self.width - start) for start in range(0, self.width, self.GROUP)]
        group_any = Signal(len(sizes))  # group g holds a spike
        lows = Array(Signal(range(self.GROUP), name=f"low{g}") for g in range(len(sizes)))  # its lowest
        first_any, first = lowest_set_bit(group_any)
        m.d.comb += [self.valid.eq(first_any), self.head.eq(Cat(lows[first], first))]
        for g, size in enumerate(sizes):
            queued = Signal(size, name=f"queued{g}")
            remaining = queued & Cat(lows[g] != lane for lane in range(size))  # without its lowest
            popped = self.pop & group_any[g] & ~group_any[:g].any() if g else self.pop & group_any[g]
            with m.If(self.load):
                self._take(m, self.bits[g * self.GROUP : g * self.GROUP + size], queued, group_any[g], lows[g])
            with m.Elif(popped):
                self._take(m, remaining, queued, group_any[g], lows[g])
        return m

    @staticmethod
    def _take(m: Module, bits, queued: Signal, any_flag, low: Signal) -> None:
        any_set, lowest = lowest_set_bit(bits)
        m.d.sync += [queued.eq(bits), any_flag.eq(any_set), low.eq(lowest)]


class Bs4nnWideCore(Bs4nnCore):
    """The wide inference core (see the module doc); ports as :class:`~bs4nn.rtl.core.Bs4nnCore`.
    ``lanes`` must exceed 64 and cover the widest layer; ``formal`` is for the narrow core only."""

    wide = True

    def __init__(self, network: IntegerNetwork, lanes: int = DEFAULT_LANES, *, weight_init: bool = True):
        super().__init__(network, lanes, weight_init=weight_init)

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        images = self._weight_images() if self.weight_init else [[]] * len(params.layers)
        payload = self.weights.payload
        layers = []
        for index, (layer, words) in enumerate(zip(params.layers, images, strict=True)):
            unit = m.submodules[f"layer{index}"] = WideLayer(layer, words, params.bank_bits)
            m.d.comb += [
                unit.weight_write_en.eq(self.weights.valid & (payload.layer == index)),
                unit.weight_write_address.eq(payload.address),
                unit.weight_write_data.eq(payload.data),
            ]
            layers.append(_WideLayerUnit(index, layer, unit))
        m.submodules.readout = readout = OutputReadout(params)
        m.submodules.spike_queue = queue = SpikeQueue(max(layer.fan_out for layer in params.layers))
        m.d.comb += readout.read_data.eq(layers[-1].unit.counters)
        control = _WideController(self, m, layers, readout, queue)
        control.build()
        self._connect_result(m, control, readout)
        return m


@dataclass(frozen=True)
class _WideLayerUnit:
    """One layer of the wide core, as the controller addresses it."""

    index: int
    params: LayerParams
    unit: WideLayer


class _WideController(_Controller):
    """The narrow controller's input, emit, output and result logic, with the wide phases
    (``TEST_l``, ``EMIT_l``; see the module doc) in place of the word sweeps."""

    def __init__(self, core, m, layers, readout, queue: SpikeQueue):
        super().__init__(core, m, layers, readout, queue)
        self.queue = queue  # the tested layer's spikes not yet emitted (the narrow core's pending)

    def build(self) -> None:
        m, core = self.m, self.core
        m.d.comb += [
            # every layer reads the row its next event would name, whatever the state: only
            # ``integrate`` depends on the controller, so no FSM decision lies on a memory address path
            self.layers[0].unit.row.eq(core.events.payload.pixel),
            *[layer.unit.row.eq(self.queue.head) for layer in self.layers[1:]],
            self.emitted_neuron.eq(self.queue.head),
            core.spikes.payload.time.eq(self.step),
            core.spikes.payload.neuron.eq(self.emitted_neuron),
        ]
        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):
                m.d.comb += [layer.unit.clear.eq(1) for layer in self.layers]
                m.d.sync += self._image_resets()
                m.next = "WAIT"
            with m.State("WAIT"):
                self._wait()
            for layer in self.layers:
                self._test_states(layer)
            self._finish_states()

    def _test_states(self, layer: _WideLayerUnit) -> None:
        m, index, unit = self.m, layer.index, layer.unit
        with m.State(f"TEST_{index}"):
            m.d.comb += [unit.mark.eq(1), self.queue.load.eq(1), self.queue.bits.eq(unit.fires)]
            with m.If(unit.fires.any()):
                m.next = f"EMIT_{index}"
            with m.Else():
                self._goto_scan(index + 1)
        with m.State(f"EMIT_{index}"):
            with m.If(self.queue.valid):
                self._emit(layer)
            with m.Else():  # the last spike's row lands in the next layer now
                self._goto_scan(index + 1)

    def _start_integration(self, index: int, presynaptic) -> None:
        unit = self.layers[index].unit
        self.m.d.comb += unit.integrate.eq(1)  # the row address is driven always (build)
        self.m.d.sync += self.touched[index].eq(1)

    def _integration_state(self, index: int) -> str:
        return "WAIT" if index == 0 else f"EMIT_{index - 1}"  # rows stream: stay where the event came from

    def _enter_scan(self, index: int) -> str:
        return f"TEST_{index}"

    def _clear_emitted(self) -> None:
        self.m.d.comb += self.queue.pop.eq(1)

    def _after_output_spike(self, index: int) -> str:
        return f"EMIT_{index}"

    def _readout_read(self) -> None:
        """The readout takes the output counters straight from their registers."""

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
  the counters the cycle after); the first beat of a later step closes the step and is accepted
  in the same cycle as that step's first event (its row lands during ``TEST_0``); the end beat
  closes the step without being accepted (one cycle, while the last row lands).
* ``TEST_l``: one cycle: the queue takes every new spike of layer ``l`` (each lane's test is a
  register, computed as its count was written) and they are flagged fired (``mark``, with a row
  landing in the same cycle if one does); always followed by ``EMIT_l``.
* ``EMIT_l``: one spike a cycle, onto the debug port and into layer ``l+1`` (or the result);
  once the queue is empty, one more cycle (the last row lands), then ``TEST_{l+1}``, or ``WAIT``;
  if nothing fired, ``EMIT_l``'s first cycle is already ``WAIT``'s.
* The result: the output counters are registers, copied by :class:`~bs4nn.rtl.readout.RegisterReadout`
  in the decision's (or the end beat's) cycle; the result beat follows at once when an output
  neuron fired (the argmax's ``n_out`` cycles only when none did), and the next image's clear is
  folded into the result beat (or, after an early exit, into the end beat's discard).

Clock (issue 27, ECP5 at 600 lanes): no path crosses the whole layer and then the controller.  The
row's sign bits only select between values formed from registers (``count +- 1`` and its
threshold test), the queue picks its head by a one-hot AND-OR, run-time weight writes are
registered before the banks, and the controller's transitions never wait on an OR of 600 tests.
The output spike times' enables take the queue's registered one-hot head (no compare after the
head), and the readout's counts are frozen by a flip-flop rather than enabled by ``start``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np
from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.hdl import Assert
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bs4nn.rtl.core import Bs4nnCore, _Controller, lowest_set_bit
from bs4nn.rtl.memories import WeightMemory
from bs4nn.rtl.params import LayerParams, index_bits
from bs4nn.rtl.readout import RegisterReadout


class WideLayer(wiring.Component):
    """One layer of the wide core: its counters in registers, its weight rows in ``banks`` parallel
    memories.  ``integrate`` (with ``row``): add presynaptic ``row``'s signs to every counter, one
    cycle later (the memories' read latency); ``mark``: set the fired flags of ``fires`` (in a cycle
    where a row lands too: the next step's first event lands in its step's test); ``clear``:
    zero every counter and flag.  ``weight_write_*``: run-time loading of one bank word, address
    ``row << bank_bits | bank``, registered: it reaches the memory the cycle after (``write_landing``),
    when the memories' shared address is the write's (the core reads no row in that cycle).

    Why registers everywhere: at 600 lanes every path fans out across the chip, so each lane's
    next state is a single choice made by the memory's sign bit.  Both ``count + 1`` and
    ``count - 1`` are formed from the counter register ahead of the row (the sign only selects),
    and ``fires`` is itself a register per lane: the threshold test of the value being written
    (``count + 1 >= threshold`` is ``count >= threshold - 1``, from the old count), so the test
    phase and the spike queue start from flip-flops, not from an adder and a comparator.
    ``formal=True``: assert that no landing row wraps a counter (:mod:`bs4nn.rtl.formal`)."""

    def __init__(self, params: LayerParams, weight_words: Sequence[int], bank_bits: int, *, formal: bool = False):
        self.params, self.bank_bits, self.formal = params, bank_bits, formal
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
        signs = self._banks(m)
        landing = Signal()  # the row read last cycle is integrated now
        m.d.sync += landing.eq(self.integrate)
        threshold = params.threshold_count
        landed = Signal(params.state_layout)  # every counter after the row, fired flags kept
        landed_fires = Signal(params.fan_out)  # and its threshold test
        marked = Signal(params.state_layout)  # every counter with its new spike flagged fired
        for lane in range(params.fan_out):
            counter, sign = self.counters[lane], signs[lane]
            up, down = Signal(name=f"up{lane}"), Signal(name=f"down{lane}")
            blocked = Signal(name=f"blocked{lane}")  # fired, or fires now (a mark may land with a row)
            m.d.comb += [
                up.eq(counter.count >= threshold - 1),
                down.eq(counter.count >= threshold + 1),
                blocked.eq(counter.fired | (self.fires[lane] & self.mark)),
                landed[lane].count.eq(Mux(sign, counter.count + 1, counter.count - 1)),
                landed[lane].fired.eq(blocked),
                landed_fires[lane].eq(~blocked & Mux(sign, up, down)),
                marked[lane].count.eq(counter.count),
                marked[lane].fired.eq(blocked),
            ]
            if self.formal:  # the counter width of export.layout.counter_bits must suffice
                largest, smallest = (1 << (params.counter_bits - 1)) - 1, -(1 << (params.counter_bits - 1))
                with m.If(landing):
                    m.d.comb += Assert(Mux(sign, counter.count < largest, counter.count > smallest))
        with m.If(self.clear):
            m.d.sync += [self.counters.eq(0), self.fires.eq(-int(threshold <= 0))]
        with m.Elif(landing):
            m.d.sync += [self.counters.eq(landed), self.fires.eq(landed_fires)]
        with m.Elif(self.mark):
            m.d.sync += [self.counters.eq(marked), self.fires.eq(0)]
        return m

    def _banks(self, m: Module):
        """The weight banks, their registered write port; the row's sign bits, neuron 0 lowest."""
        params = self.params
        write_row = Signal(len(self.weight_write_address) - self.bank_bits)
        write_data = Signal(params.layout.width)
        write_banks = Signal(params.banks)  # one-hot: the bank the registered write lands in
        m.d.sync += [
            write_row.eq(self.weight_write_address[self.bank_bits :]),
            write_data.eq(self.weight_write_data),
            write_banks.eq(
                Cat(
                    self.weight_write_en & (self.weight_write_address[: self.bank_bits] == bank)
                    for bank in range(params.banks)
                )
            ),
        ]
        signs = []
        for bank in range(params.banks):
            memory = m.submodules[f"bank{bank}"] = WeightMemory(
                params.layout.width, params.fan_in, self._bank_words(bank)
            )
            m.d.comb += [
                memory.read_addr.eq(self.row),
                memory.write_en.eq(write_banks[bank]),
                memory.write_addr.eq(write_row),
                memory.write_data.eq(write_data),
            ]
            signs.append(memory.read_data)
        return Cat(*signs)[: params.fan_out]


class SpikeQueue(wiring.Component):
    """A layer's new spikes, handed out lowest neuron first, one per cycle: ``load`` takes ``bits``
    (replacing what is left); ``head`` is the lowest neuron still queued while ``valid``; ``pop``
    removes it.  Why not one priority encoder over all the bits: its path (any of 512 bits, then
    ten multiplexer levels, then the row address) bounds the clock.  Here the bits sit in groups
    of :attr:`GROUP`, each with its lowest set bit, the rest and an any flag in registers, updated
    from the group's own registers; ``head`` only picks the first non-empty group.

    ``head_hot`` is the head one-hot over the first ``hot_width`` neurons (0 where the head lies
    beyond): each group there keeps its lowest spike one-hot in a register too, so whoever decodes
    the head (the output layer's spike times, a compare per output neuron) takes a flip-flop and
    the first-group flag instead of the head's AND-OR and then a compare (issue 27: the ECP5
    critical path ran queue register -> head -> ``== j`` -> the output spike times' enables)."""

    GROUP = 32

    def __init__(self, width: int, hot_width: int = 1):
        self.width, self.hot_width = width, min(max(1, hot_width), width)
        super().__init__(
            {
                "load": In(1),
                "bits": In(width),
                "pop": In(1),
                "valid": Out(1),
                "head": Out(range(width)),
                "head_hot": Out(self.hot_width),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        sizes = [min(self.GROUP, self.width - start) for start in range(0, self.width, self.GROUP)]
        group_any = Signal(len(sizes))  # group g holds a spike
        lows = [Signal(range(self.GROUP), name=f"low{g}") for g in range(len(sizes))]  # its lowest
        # the first non-empty group, one-hot (a prefix OR), selects the head by an AND-OR: no binary
        # group index is encoded and then decoded again on the way to the next layer's row address
        first = Signal(len(sizes))
        m.d.comb += first.eq(group_any & ~Cat(group_any[:g].any() if g else 0 for g in range(len(sizes))))
        choices = [Mux(first[g], low | (g * self.GROUP), 0) for g, low in enumerate(lows)]
        m.d.comb += [self.valid.eq(group_any.any()), self.head.eq(reduce(operator.or_, choices))]
        hots = []
        for g, size in enumerate(sizes):
            rest = Signal(size, name=f"rest{g}")  # the group's spikes after its lowest
            hot = Signal(max(0, min(size, self.hot_width - g * self.GROUP)), name=f"hot{g}")  # it, one-hot
            if len(hot):
                hots.append(Mux(first[g], hot, 0))
            with m.If(self.load):
                self._take(m, self.bits[g * self.GROUP : g * self.GROUP + size], rest, group_any[g], lows[g], hot)
            with m.Elif(self.pop & first[g]):
                self._take(m, rest, rest, group_any[g], lows[g], hot)
        m.d.comb += self.head_hot.eq(Cat(*hots))
        return m

    @staticmethod
    def _take(m: Module, bits, rest: Signal, any_flag, low: Signal, hot: Signal) -> None:
        """The group becomes ``bits``: its lowest in ``low`` (and one-hot in ``hot``, its first
        ``len(hot)`` lanes), the others in ``rest`` (the lowest cleared by ``bits & (bits - 1)``,
        a carry chain, not a compare per lane)."""
        any_set, lowest = lowest_set_bit(bits)
        cleared = bits & (bits - 1)
        m.d.sync += [rest.eq(cleared), any_flag.eq(any_set), low.eq(lowest)]
        if len(hot):
            m.d.sync += hot.eq((bits ^ cleared)[: len(hot)])


class Bs4nnWideCore(Bs4nnCore):
    """The wide inference core (see the module doc); ports and arguments as
    :class:`~bs4nn.rtl.core.Bs4nnCore`.  ``lanes`` must exceed 64 and cover the widest layer;
    ``formal`` adds the same assertions (every lane's no-wrap check sits in its :class:`WideLayer`);
    ``paired`` changes nothing (every event already takes one cycle)."""

    wide = True

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        images = self._weight_images() if self.weight_init else [[]] * len(params.layers)
        payload = self.weights.payload
        layers = []
        for index, (layer, words) in enumerate(zip(params.layers, images, strict=True)):
            unit = m.submodules[f"layer{index}"] = WideLayer(layer, words, params.bank_bits, formal=self.formal)
            m.d.comb += [
                unit.weight_write_en.eq(self.weights.valid & (payload.layer == index)),
                unit.weight_write_address.eq(payload.address),
                unit.weight_write_data.eq(payload.data),
            ]
            layers.append(_WideLayerUnit(index, layer, unit))
        m.submodules.readout = readout = RegisterReadout(params)
        widest = max(layer.fan_out for layer in params.layers)
        m.submodules.spike_queue = queue = SpikeQueue(widest, hot_width=params.n_out)
        write_landing = Signal()  # a weight write reaches its bank now: no row may be read
        m.d.sync += write_landing.eq(self.weights.valid)
        control = _WideController(self, m, layers, readout, queue, write_landing)
        control.build()
        # the output counters as they are after this cycle's clear: an image whose first beat is
        # its end beat (no events) is read out in the cycle its counters are cleared
        m.d.comb += [
            readout.read_data.eq(Mux(control.clearing, 0, layers[-1].unit.counters.as_value())),
            readout.clear.eq(control.clearing),
        ]
        self._connect_result(m, control, readout)
        return m


@dataclass(frozen=True)
class _WideLayerUnit:
    """One layer of the wide core, as the controller addresses it."""

    index: int
    params: LayerParams
    unit: WideLayer


class _WideController(_Controller):
    """The narrow controller's emit, output and result logic, with the wide phases (``TEST_l``,
    ``EMIT_l``; see the module doc) in place of the word sweeps.

    ``TEST_l`` always goes on to ``EMIT_l``: whether any neuron fired (an OR over the whole layer)
    is decided by no state transition.  ``EMIT_l`` with an empty queue then does what would have
    followed: after emitted spikes, the next layer's test (the last row lands); after none, it is
    ``WAIT`` itself (no later layer received anything in this step), so no cycle is added.

    The beat that closes a step is accepted as the next step's first event in the same cycle: its
    row lands in ``TEST_0``, together with the mark of the closed step's spikes, after the queue
    took them.  So ``step`` (the step being tested and emitted) and ``event_step`` (the step of the
    last accepted event) differ from the close until the step's last layer is done."""

    def __init__(self, core, m, layers, readout: RegisterReadout, queue: SpikeQueue, write_landing: Signal):
        super().__init__(core, m, layers, readout, queue)
        self.queue = queue  # the tested layer's spikes not yet emitted (the narrow core's pending)
        self.write_landing = write_landing
        self.event_step = Signal.like(self.step)
        self.emitted = Signal()  # the current EMIT phase has emitted a spike
        # the layers' clear and mark and the queue's load, set on the way into CLEAR's successor or
        # TEST_l: flip-flops, so no state decoding precedes their nets (each reaches every lane's
        # registers, thousands of loads; the queue's group registers)
        self.clearing = Signal()
        self.marking = Signal(len(layers))
        self.loading = Signal(len(layers))

    def build(self) -> None:
        m, core = self.m, self.core
        bits = [Mux(self.loading[layer.index], layer.unit.fires, 0) for layer in self.layers]
        m.d.comb += [
            # every layer reads the row its next event would name, whatever the state: only
            # ``integrate`` depends on the controller, so no FSM decision lies on a memory address path
            self.layers[0].unit.row.eq(core.events.payload.pixel),
            *[layer.unit.row.eq(self.queue.head) for layer in self.layers[1:]],
            self.emitted_neuron.eq(self.queue.head),
            core.spikes.payload.time.eq(self.step),
            core.spikes.payload.neuron.eq(self.emitted_neuron),
            *[layer.unit.clear.eq(self.clearing) for layer in self.layers],
            *[layer.unit.mark.eq(self.marking[layer.index]) for layer in self.layers],
            self.queue.load.eq(self.loading.any()),
            self.queue.bits.eq(reduce(operator.or_, bits)),
            # the queue pops every cycle: outside EMIT it is empty or about to be reloaded, so no
            # state decoding lies on the path into its group registers
            self.queue.pop.eq(1),
        ]
        m.d.sync += [self.clearing.eq(0), self.marking.eq(0), self.loading.eq(0)]
        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):
                self._next_image()
            with m.State("WAIT"):
                self._wait()
            for layer in self.layers:
                self._test_states(layer)
            self._finish_states()

    def _image_resets(self) -> list:
        return [*super()._image_resets(), self.event_step.eq(0)]

    def _next_image(self) -> None:
        """Reset the per-image registers and clear the counters (the cycle after): the next image's
        first event may be accepted meanwhile, its row lands after the clear."""
        self.m.d.sync += [*self._image_resets(), self.clearing.eq(1)]
        self.m.next = "WAIT"

    def _wait(self) -> None:
        """Accept the input events of a step; a later step's beat closes the step and is accepted
        as that step's first event (the end beat closes it without being accepted).  Nothing is
        accepted in the cycle a weight write lands (the banks' address is the write's)."""
        m, core, params = self.m, self.core, self.params
        event = core.events.payload
        end_of_image = event.time >= params.tmax
        m.d.comb += core.idle.eq(~self.started)
        with m.If(core.events.valid & ~self.write_landing):
            with m.If(self.touched[0] & (end_of_image | (event.time != self.event_step))):
                m.d.sync += self.step.eq(self.event_step)
                self._goto_scan(0)
                with m.If(end_of_image):
                    m.d.sync += self.touched[0].eq(0)
                with m.Else():
                    self._accept()
            with m.Elif(end_of_image):
                m.d.comb += [core.events.ready.eq(1), self.readout.start.eq(1)]
                m.d.sync += self.started.eq(1)
                m.next = "FINISH"
                with m.If(self.decided):  # the decision is the first output spike: no argmax
                    m.next = "DONE"
            with m.Else():
                self._accept()
                m.next = "WAIT"

    def _accept(self) -> None:
        """Take the event on offer: its row is read now and lands in layer 0 the next cycle."""
        event = self.core.events.payload
        self.m.d.comb += self.core.events.ready.eq(1)
        self.m.d.sync += [self.event_step.eq(event.time), self.started.eq(1)]
        self._assume_valid_pixel(event.pixel)
        self._start_integration(0, event.pixel)

    def _test_states(self, layer: _WideLayerUnit) -> None:
        m, index = self.m, layer.index
        with m.State(f"TEST_{index}"):  # the queue takes the layer's spikes; they are marked fired
            if index:  # layer 0 may already hold the next step's first event
                m.d.sync += self.touched[index].eq(0)
            m.d.sync += self.emitted.eq(0)
            m.next = f"EMIT_{index}"
            self._overlap()
        with m.State(f"EMIT_{index}"):
            with m.If(self.queue.valid):
                m.d.sync += self.emitted.eq(1)
                self._emit(layer)
                self._overlap()
            with m.Elif(self.emitted):  # the last spike's row lands in the next layer now
                self._goto_scan(index + 1)
                self._overlap()
            with m.Else():  # nothing fired: no later layer was touched in this step
                self._wait()

    def _overlap(self) -> None:
        """While a step's spikes are tested and emitted, accept the events of the step its close
        opened (``touched[0]``: the close took its first event): layer 0 is done with the tested
        step once its spikes are queued and marked (``TEST_0``), so its rows land meanwhile.  A beat
        of a later step (or the end beat) waits for ``WAIT``, which closes the opened step."""
        event = self.core.events.payload
        with self.m.If(self.core.events.valid & self.touched[0] & (event.time == self.event_step)):
            self._accept()

    def _goto_scan(self, index: int) -> None:
        if index == len(self.layers):  # every touched layer was tested (and cleared its flag)
            self.m.next = "WAIT"
            return
        super()._goto_scan(index)

    def _start_integration(self, index: int, presynaptic) -> None:
        unit = self.layers[index].unit
        self.m.d.comb += unit.integrate.eq(1)  # the row address is driven always (build)
        self.m.d.sync += self.touched[index].eq(1)

    def _integration_state(self, index: int) -> str:
        return "WAIT" if index == 0 else f"EMIT_{index - 1}"  # rows stream: stay where the event came from

    def _enter_scan(self, index: int) -> str:
        self.m.d.sync += [self.marking[index].eq(1), self.loading[index].eq(1)]
        return f"TEST_{index}"

    def _clear_emitted(self) -> None:
        """Nothing: the queue pops every cycle (``build``)."""

    def _after_output_spike(self, index: int) -> str:
        return f"EMIT_{index}"

    def _emits_output(self, neuron: int):
        """The queue's registered one-hot head: no compare of the head lies before the spike times'
        enables (in ``EMIT`` of the output layer the queue holds only output neurons)."""
        return self.queue.head_hot[neuron]

    def _exit_state(self) -> str:
        return "DONE"  # the readout copied the counters in the decision's cycle

    def _readout_read(self) -> None:
        """The readout takes the output counters straight from their registers."""

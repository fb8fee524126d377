"""The BS4NN inference core: time-multiplexed, event-driven, counters in block RAM.

Per time step ``t`` the core integrates every input event of step ``t`` into layer 0 (one
presynaptic row of sign bits per event, ``lanes`` counters per cycle), then scans each layer
that received events in this step for new threshold crossings, lowest neuron first.  A neuron
found firing is flagged (it fires once), reported on the debug spike port and integrated at
once into the next layer as an event of the same step, so the next layer's scan sees every
spike of step ``t``: exactly the golden model's rule (:mod:`bs4nn.sim.semantics`).  A layer that
received no event in a step keeps its counters, so its scan is skipped, and steps without
input events cost nothing.

Pieces: :mod:`bs4nn.rtl.params` (widths and payload layouts), :mod:`bs4nn.rtl.memories` (a layer's
weight and counter memories), :mod:`bs4nn.rtl.neuron` (what a spike does to a counter word and
which counters fire: the part a network family swaps), :mod:`bs4nn.rtl.readout` (output counters
and argmax); this module is the controller that sequences them and the glue.
Interface and cycle formula: ``rtl/README.md`` and :mod:`bs4nn.rtl.cycles`.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Const, Module, Mux, Signal
from amaranth.hdl import Assert, Assume
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from bs4nn.export.layout import DEFAULT_LANES, network_weight_words
from bs4nn.rtl.memories import LayerMemories
from bs4nn.rtl.neuron import CounterIntegrate, ThresholdTest
from bs4nn.rtl.params import CoreParams, LayerParams, strobe
from bs4nn.rtl.readout import OutputReadout
from bs4nn.sim.golden import IntegerNetwork


class LowestLane(wiring.Component):
    """The lowest set bit of ``pending`` (a priority encoder): a word's spikes leave lowest neuron first."""

    def __init__(self, lanes: int):
        self.lanes = lanes
        super().__init__({"pending": In(lanes), "lowest": Out(range(lanes))})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.lowest.eq(lowest_set_bit(self.pending)[1])
        return m


def lowest_set_bit(bits) -> tuple:
    """``(any, index of the lowest set bit)`` of ``bits``, as a balanced tree of two-way choices:
    ``log2(width)`` multiplexer levels where a chain of ``width`` Ifs is as deep as it is wide (64
    levels at 64 lanes, on the path from the scanned word to the next row's address)."""
    if len(bits) == 1:
        return bits[0], Const(0, 1)
    half = 1 << ((len(bits) - 1).bit_length() - 1)  # the low part: the largest power of two below
    low_any, low_index = lowest_set_bit(bits[:half])
    high_any, high_index = lowest_set_bit(bits[half:])
    return low_any | high_any, Mux(low_any, low_index, half + high_index)


class Bs4nnCore(wiring.Component):
    """The inference core; ports as documented in ``rtl/README.md``.  The narrow core (lanes
    1..64, counters in block RAM); :class:`bs4nn.rtl.wide.Bs4nnWideCore` is the wide one
    (:func:`bs4nn.rtl.family.core_for` picks by lanes)."""

    wide = False  # whether this class builds the wide core (lanes beyond 64)

    def __init__(
        self,
        network: IntegerNetwork,
        lanes: int = DEFAULT_LANES,
        *,
        weight_init: bool = True,
        formal: bool = False,
        assume_valid_input: bool = True,
        paired: bool | None = None,
    ):
        """``weight_init=False``: empty weight memories, to be loaded through ``weights`` before
        the first image.  ``formal=True`` adds the assertions of :mod:`bs4nn.rtl.formal` (a
        neuron fires at most once per image, no counter wraps) and the input assumptions they
        need (each pixel at most once per image, pixel indices in range; ``assume_valid_input=False``
        drops them, to show the proof fails without them).  ``paired``: the input layer takes the
        events of a step two at a time (:meth:`~bs4nn.rtl.params.CoreParams.from_network`)."""
        self.network = network
        self.weight_init = weight_init
        self.formal = formal
        self.assume_valid_input = assume_valid_input
        self.paired = paired
        self.params = params = self._core_params(network, lanes)
        if params.wide != self.wide:
            kind = "the wide core (bs4nn.rtl.family.core_for)" if params.wide else "a narrow core (lanes 1..64)"
            raise ValueError(f"lanes {lanes} ask for {kind}; {type(self).__name__} cannot build it")
        super().__init__(
            {
                "events": In(stream.Signature(params.event_layout)),
                "result": Out(stream.Signature(params.result_layout)),
                "spikes": Out(strobe(params.spike_layout)),
                "weights": In(strobe(params.weight_write_layout)),
                "early_exit": In(1),
                "idle": Out(1),
                "skip": Out(1),
            }
        )

    # --- what a network family swaps (bs4nn.rtl.b1core overrides these) ---

    def _core_params(self, network, lanes: int) -> CoreParams:
        return CoreParams.from_network(network, lanes, self.paired)

    def _weight_images(self) -> list:
        return network_weight_words(self.network, self.params.weight_lanes)

    def _neuron(self, index: int, layer: LayerParams) -> tuple[wiring.Component, wiring.Component]:
        """The layer's two neuron-model parts: the integrator (ports of :class:`CounterIntegrate`)
        and the scan test (ports of :class:`ThresholdTest`)."""
        return CounterIntegrate(layer, formal=self.formal), ThresholdTest(layer)

    def _controller(self, m: Module, layers: list, readout: OutputReadout, lowest: LowestLane) -> _Controller:
        return _Bs4nnController(self, m, layers, readout, lowest)

    def _weight_input(self, integrate: wiring.Component):
        """The integrator's port that the layer's weight-memory word drives (BS4NN: its sign bits)."""
        return integrate.signs

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        images = self._weight_images() if self.weight_init else [[]] * len(params.layers)
        # run-time weight loading, registered: the board's frame decoding and FSM end at these
        # registers instead of running on into a memory's address and enable (its critical path)
        write = Signal(params.weight_write_layout)
        write_layers = Signal(len(params.layers))
        m.d.sync += write.eq(self.weights.payload)
        for index in range(len(params.layers)):
            m.d.sync += write_layers[index].eq(self.weights.valid & (self.weights.payload.layer == index))
        layers = []
        for index, (layer, words) in enumerate(zip(params.layers, images, strict=True)):
            mem = m.submodules[f"layer{index}"] = LayerMemories(layer, words)
            integrate, threshold = self._neuron(index, layer)
            m.submodules[f"integrate{index}"] = integrate
            m.submodules[f"threshold{index}"] = threshold
            m.d.comb += [
                mem.weight_write_en.eq(write_layers[index]),
                mem.weight_write_addr.eq(write.address),
                mem.weight_write_data.eq(write.data),
                integrate.state.eq(mem.state_read_data),
                self._weight_input(integrate).eq(mem.weight_read_data),
                threshold.state.eq(mem.state_read_data),
            ]
            if layer.paired:
                m.d.comb += integrate.signs2.eq(mem.weight_read_data2)
            layers.append(_Layer(index, layer, mem, integrate, threshold))
        m.submodules.readout = readout = OutputReadout(params)
        m.submodules.lowest = lowest = LowestLane(params.lanes)
        m.d.comb += readout.read_data.eq(layers[-1].mem.state_read_data)
        control = self._controller(m, layers, readout, lowest)
        control.build()
        self._connect_result(m, control, readout)
        return m

    def _connect_result(self, m: Module, control: _Controller, readout: OutputReadout) -> None:
        """The result payload: the first output spike's class, else the argmax of the counters."""
        m.d.comb += [
            self.result.payload.decision.eq(Mux(control.decided, control.decision, readout.argmax)),
            self.result.payload.decision_time.eq(control.decision_time),
            *[self.result.payload.spike_times[j].eq(time) for j, time in enumerate(control.out_times)],
            self.result.payload.counts.eq(readout.counts),
        ]


@dataclass(frozen=True)
class _Layer:
    """One layer's submodules, as the controller addresses them."""

    index: int
    params: LayerParams
    mem: LayerMemories
    integrate: CounterIntegrate
    threshold: ThresholdTest


class _Controller:
    """The core's FSM, one method per phase: clear, accept events, integrate one event into a
    layer (pipelined read-modify-write sweep), scan a layer for threshold crossings and emit the
    spikes, read out the result.  States are generated per layer."""

    def __init__(self, core: Bs4nnCore, m: Module, layers: list[_Layer], readout: OutputReadout, lowest: LowestLane):
        self.core, self.m, self.layers, self.readout, self.lowest = core, m, layers, readout, lowest
        params = self.params = core.params
        n_layers, tmax = len(layers), params.tmax
        self.max_words = max(layer.params.words for layer in layers)
        self.step = Signal(params.time_bits)  # current time step t
        self.touched = Signal(n_layers)  # layer l received at least one event in step t
        self.started = Signal()  # the current image's first beat has been accepted
        self.decided = Signal()  # an output neuron has fired
        self.exited = Signal()  # stopped early: the rest of the image is still to be drained
        self.decision = Signal(params.class_bits)
        self.decision_time = Signal(params.time_bits, init=tmax)
        self.out_times = [Signal(params.time_bits, init=tmax, name=f"out_time{j}") for j in range(params.n_out)]
        words = range(self.max_words + 1)
        self.int_word = Signal(words)  # word of the integration sweep
        self.int_row_base = Signal(params.address_bits)  # presynaptic index * words of the target layer
        self.pair = Signal()  # a paired input layer integrates a second event (row at int_row_base2)
        self.int_row_base2 = Signal(params.address_bits)
        self.writeback_pair = Signal()  # ``pair`` of the word being written back
        self.next_valid = Signal()  # the next sweep's first event is taken (row at next_row_base)
        self.next_row_base = Signal(params.address_bits)
        self.look = Signal()  # INTEGRATE_0 in its next-to-last word (registered: _drive_look)
        self.writeback = Signal(n_layers)  # per layer: the word read last cycle is written back now
        self.writeback_word = Signal(words)
        self.scan_word = Signal(words)
        self.scan_neuron_base = Signal(params.neuron_bits + 1)  # scan_word * lanes
        self.pending = Signal(params.lanes)  # lanes of the scanned word that fired, not yet emitted
        self.emitted_neuron = Signal(params.neuron_bits + 1)
        self.clear_word = Signal(words)
        # formal: which neurons fired / pixels arrived in this image (cleared with the counters)
        self.fired_seen = [Signal(layer.params.fan_out, name=f"formal_fired{layer.index}") for layer in layers]
        self.pixel_seen = Signal(params.n_in, name="formal_pixels")

    def build(self) -> None:
        m, core = self.m, self.core
        m.d.comb += [
            self.lowest.pending.eq(self.pending),
            core.spikes.payload.time.eq(self.step),
            core.spikes.payload.neuron.eq(self.emitted_neuron),
        ]
        self._drive_emitted_neuron()
        for layer in self.layers:
            self._writeback(layer)
        with m.FSM(init="CLEAR") as self.fsm:
            with m.State("CLEAR"):
                self._clear()
            with m.State("WAIT"):
                self._wait()
            if self.layers[0].params.paired:
                with m.State("PAIR"):
                    self._pair()
            for layer in self.layers:
                self._integrate_states(layer)
            for layer in self.scanned_layers:
                self._scan_states(layer)
            self._finish_states()
        if self._pipelined():
            self._drive_look()

    def _pipelined(self) -> bool:
        """Whether the input layer's sweeps run back to back (paired, two words or more)."""
        first = self.layers[0].params
        return first.paired and first.words >= 2

    def _drive_look(self) -> None:
        """``look``, a cycle ahead: the next cycle is ``INTEGRATE_0``'s word ``W_0 - 2``, so the
        look-ahead's accept decides on a flip-flop, not on a compare of the word counter."""
        fsm, words = self.fsm, self.layers[0].params.words
        if words >= 3:
            ahead = fsm.ongoing("INTEGRATE_0") & (self.int_word == words - 3)
        else:  # two words: word 0 of a sweep, after PAIR or a back-to-back restart
            ahead = fsm.ongoing("PAIR") | (fsm.ongoing("INTEGRATE_0") & self.next_valid)
        self.m.d.sync += self.look.eq(ahead)

    def _drive_emitted_neuron(self) -> None:
        """The neuron ``SCAN_EMIT`` emits: the scanned word's base plus its lowest pending lane."""
        self.m.d.comb += self.emitted_neuron.eq(self.scan_neuron_base + self.lowest.lowest)

    @property
    def scanned_layers(self) -> list[_Layer]:
        """Layers whose counters are scanned for spikes (BS4NN: all; B1: the hidden ones)."""
        return self.layers

    def _scan_latch(self, layer: _Layer) -> list:
        """Extra registers a family latches from the word under its scan test (BS4NN: none)."""
        return []

    def _writeback(self, layer: _Layer) -> None:
        """Integration writeback, outside the FSM: it follows the read by one cycle."""
        mem = layer.mem
        if layer.params.paired:
            self.m.d.comb += layer.integrate.pair.eq(self.writeback_pair)
        with self.m.If(self.writeback[layer.index]):
            self.m.d.comb += [
                layer.integrate.active.eq(1),
                mem.state_write_en.eq(1),
                mem.state_write_addr.eq(self.writeback_word),
                mem.state_write_data.eq(layer.integrate.update),
            ]

    def _start_integration(self, index: int, presynaptic) -> None:
        """Launch the sweep of ``presynaptic``'s row into layer ``index`` (next: :meth:`_integration_state`)."""
        self.m.d.sync += [
            self.int_word.eq(0),
            self.int_row_base.eq(presynaptic * self.layers[index].params.words),
            self.touched[index].eq(1),
        ]

    def _integration_state(self, index: int) -> str:
        """The state that integrates a row into layer ``index`` (the wide core: none, it is pipelined)."""
        return f"INTEGRATE_{index}"

    def _image_resets(self) -> list:
        """The per-image registers' values at the start of an image (formal: nothing seen yet)."""
        tmax = self.params.tmax
        seen = [self.pixel_seen, *self.fired_seen] if self.core.formal else []
        return [
            *[register.eq(0) for register in seen],
            self.step.eq(0),
            self.touched.eq(0),
            self.started.eq(0),
            self.decided.eq(0),
            self.exited.eq(0),
            self.decision.eq(0),
            self.decision_time.eq(tmax),
            *[out_time.eq(tmax) for out_time in self.out_times],
        ]

    def _clear(self) -> None:
        """Zero every counter and fired flag; reset the per-image registers."""
        m = self.m
        for layer in self.layers:
            with m.If(self.clear_word < layer.params.words):
                m.d.comb += [layer.mem.state_write_en.eq(1), layer.mem.state_write_addr.eq(self.clear_word)]
        m.d.sync += [*self._image_resets(), self.clear_word.eq(self.clear_word + 1)]
        with m.If(self.clear_word == self.max_words - 1):
            m.d.sync += self.clear_word.eq(0)
            m.next = "WAIT"

    def _wait(self) -> None:
        """Accept the input events of step t; a later time (or the end beat) closes the step."""
        m, core, params = self.m, self.core, self.params
        event = core.events.payload
        end_of_image = event.time >= params.tmax
        m.d.comb += core.idle.eq(~self.started)
        with m.If(core.events.valid):
            with m.If(self.touched[0] & (end_of_image | (event.time != self.step))):
                self._goto_scan(0)
            with m.Elif(end_of_image):
                self._ready()
                m.d.comb += self.readout.start.eq(1)
                m.d.sync += self.started.eq(1)
                m.next = "FINISH"
            with m.Else():
                self._ready()
                self._load_step(event.time)
                m.d.sync += self.started.eq(1)
                self._start_integration(0, event.pixel)
                self._assume_valid_pixel(event.pixel)
                m.next = "PAIR" if self.layers[0].params.paired else self._integration_state(0)

    def _pair(self) -> None:
        """A paired input layer: take the next beat as the sweep's second event if it belongs to the
        same step (an event of a later step, or the end beat, waits for the scan); the sweep then
        costs ``W_0 + 3`` cycles for one or two events (accept, pair, ``W_0`` words, drain)."""
        m, core = self.m, self.core
        event, words = core.events.payload, self.layers[0].params.words
        with m.If(core.events.valid & (event.time == self.step)):
            self._ready()
            m.d.sync += [self.pair.eq(1), self.int_row_base2.eq(event.pixel * words)]
            self._assume_valid_pixel(event.pixel)
        with m.Else():
            m.d.sync += self.pair.eq(0)
        m.next = self._integration_state(0)

    def _assume_valid_pixel(self, pixel) -> None:
        """Formal: an accepted input event's pixel is in range and new in this image (the input
        protocol the proof relies on; ``assume_valid_input=False`` drops it)."""
        m, core = self.m, self.core
        if core.formal and core.assume_valid_input:
            m.d.comb += Assume((pixel < self.params.n_in) & ~self.pixel_seen.bit_select(pixel, 1))
            m.d.sync += self.pixel_seen.bit_select(pixel, 1).eq(1)

    def _integrate_states(self, layer: _Layer) -> None:
        m, index, words = self.m, layer.index, layer.params.words
        with m.State(f"INTEGRATE_{index}"):
            m.d.comb += [
                layer.mem.weight_read_addr.eq(self.int_row_base + self.int_word),
                layer.mem.state_read_addr.eq(self.int_word),
            ]
            m.d.sync += [
                self.writeback[index].eq(1),
                self.writeback_word.eq(self.int_word),
                self.int_word.eq(self.int_word + 1),
            ]
            if layer.params.paired:
                m.d.comb += layer.mem.weight_read_addr2.eq(self.int_row_base2 + self.int_word)
                m.d.sync += self.writeback_pair.eq(self.pair)
                if self._pipelined():
                    self._look_ahead(words)
            with m.If(self.int_word == words - 1):
                m.next = f"INTEGRATE_DRAIN_{index}"
                if self._pipelined():
                    self._next_pair(words)
        with m.State(f"INTEGRATE_DRAIN_{index}"):
            m.d.sync += self.writeback[index].eq(0)
            m.next = "WAIT" if index == 0 else f"SCAN_NEXT_{index - 1}"

    def _ready(self) -> None:
        """Take the input beat on offer (where the state's conditions hold; :class:`_Bs4nnController`
        drives ``ready`` from one flat expression instead)."""
        self.m.d.comb += self.core.events.ready.eq(1)

    def _load_step(self, time) -> None:
        """``WAIT`` took an event: its time is the current step (:class:`_Bs4nnController` loads it
        outside the states, under a shorter condition)."""
        self.m.d.sync += self.step.eq(time)

    def _same_step_event(self):
        """The input beat is an event of the current step (one the running integration may take)."""
        return self.core.events.valid & (self.core.events.payload.time == self.step)

    def _next_pair(self, words: int) -> None:
        """A paired input layer of two words or more takes the next pair of events of the step
        during the last two words of the running sweep (``_look_ahead``, then here: the pair's
        second event), so back-to-back sweeps cost ``W_0`` cycles a pair, not ``W_0 + 3``; the
        next sweep starts at once, its first word read while the last one is written back."""
        m, event = self.m, self.core.events.payload
        with m.If(self.next_valid):
            m.d.sync += [self.int_word.eq(0), self.int_row_base.eq(self.next_row_base), self.pair.eq(0)]
            m.next = self._integration_state(0)
            with m.If(self._same_step_event()):
                self._ready()
                m.d.sync += [self.pair.eq(1), self.int_row_base2.eq(event.pixel * words)]
                self._assume_valid_pixel(event.pixel)

    def _look_ahead(self, words: int) -> None:
        """The first event of the next pair, accepted in the sweep's next-to-last word (:meth:`_next_pair`)."""
        m, event = self.m, self.core.events.payload
        m.d.sync += self.next_valid.eq(0)
        with m.If(self.look & self._same_step_event()):
            self._ready()
            m.d.sync += [self.next_valid.eq(1), self.next_row_base.eq(event.pixel * words)]
            self._assume_valid_pixel(event.pixel)

    def _goto_scan(self, index: int) -> None:
        """Next state: scan layer ``index`` if it received events this step, else the next one."""
        m = self.m
        if index == len(self.layers):
            m.d.sync += self.touched.eq(0)
            m.next = "WAIT"
            return
        with m.If(self._scan_wanted(index)):
            m.next = self._enter_scan(index)
        with m.Else():
            self._goto_scan(index + 1)

    def _scan_wanted(self, index: int):
        """Whether layer ``index`` is scanned in this step: it received events (its counters changed)."""
        return self.touched[index]

    def _enter_scan(self, index: int) -> str:
        """Start the scan of layer ``index``; its first state."""
        self.m.d.sync += [self.scan_word.eq(0), self.scan_neuron_base.eq(0)]
        return f"SCAN_READ_{index}"

    def _clear_emitted(self) -> None:
        """Drop the spike just emitted from ``pending`` (the lowest set bit)."""
        self.m.d.sync += self.pending.eq(self.pending & (self.pending - 1))

    def _after_output_spike(self, index: int) -> str:
        """Where the scan goes on after an output spike that does not end the image."""
        return f"SCAN_NEXT_{index}"

    def _next_scan_word(self, layer: _Layer) -> None:
        """After a scanned word is fully handled: the next word, or the next layer."""
        m = self.m
        with m.If(self.scan_word == layer.params.words - 1):
            self._goto_scan(layer.index + 1)
        with m.Else():
            m.d.sync += [
                self.scan_word.eq(self.scan_word + 1),
                self.scan_neuron_base.eq(self.scan_neuron_base + self.params.lanes),
            ]
            m.next = f"SCAN_READ_{layer.index}"

    def _scan_states(self, layer: _Layer) -> None:
        m, index, mem = self.m, layer.index, layer.mem
        with m.State(f"SCAN_READ_{index}"):
            self._scan_read(layer)
            m.next = f"SCAN_TEST_{index}"
        with m.State(f"SCAN_TEST_{index}"):
            # threshold test of the word read last cycle; flag the new spikes
            threshold = layer.threshold
            m.d.comb += [
                threshold.last_word.eq(self.scan_word == layer.params.words - 1),
                mem.state_write_en.eq(1),
                mem.state_write_addr.eq(self.scan_word),
                mem.state_write_data.eq(threshold.update),
            ]
            m.d.sync += [self.pending.eq(threshold.fires), *self._scan_latch(layer)]
            self._after_scan_test(layer)
        with m.State(f"SCAN_EMIT_{index}"):
            self._emit(layer)
        with m.State(f"SCAN_NEXT_{index}"):
            with m.If(self.pending.any()):
                m.next = f"SCAN_EMIT_{index}"
            with m.Else():
                self._next_scan_word(layer)

    def _after_scan_test(self, layer: _Layer) -> None:
        """Where the scan goes after a word's threshold test: emit its spikes, or the next word."""
        with self.m.If(layer.threshold.fires.any()):
            self.m.next = f"SCAN_EMIT_{layer.index}"
        with self.m.Else():
            self._next_scan_word(layer)

    def _scan_read(self, layer: _Layer) -> None:
        """Read the counter word the scan tests next (here: every word in turn, from ``scan_word``)."""
        self.m.d.comb += layer.mem.state_read_addr.eq(self.scan_word)

    def _emit(self, layer: _Layer) -> None:
        """One spike a cycle, lowest neuron first: onto the debug port, into the next layer or the result."""
        m, core, index = self.m, self.core, layer.index
        m.d.comb += [core.spikes.valid.eq(1), core.spikes.payload.layer.eq(index)]
        self._assert_fires_once(layer)
        self._clear_emitted()
        if index < len(self.layers) - 1:
            self._start_integration(index + 1, self.emitted_neuron)
            m.next = self._integration_state(index + 1)
            return
        for neuron, out_time in enumerate(self.out_times):
            with m.If(self._emits_output(neuron)):
                m.d.sync += out_time.eq(self.step)
        with m.If(~self.decided):
            m.d.sync += [self.decided.eq(1), self.decision.eq(self.emitted_neuron), self.decision_time.eq(self.step)]
        with m.If(~self.decided & core.early_exit):
            m.d.comb += self.readout.start.eq(1)
            m.d.sync += self.exited.eq(1)
            m.next = self._exit_state()
        with m.Else():
            m.next = self._after_output_spike(index)

    def _emits_output(self, neuron: int):
        """Whether output ``neuron`` is the one being emitted (the enable of its spike time)."""
        return self.emitted_neuron == neuron

    def _exit_state(self) -> str:
        """The state after the early exit's decision (the narrow core reads its counters first)."""
        return "FINISH"

    def _readout_read(self) -> None:
        """Let the readout read the output layer's counter memory."""
        self.m.d.comb += self.layers[-1].mem.state_read_addr.eq(self.readout.read_addr)

    def _assert_fires_once(self, layer: _Layer) -> None:
        """Formal: the neuron being emitted exists and has not fired yet in this image."""
        if self.core.formal:
            m, seen = self.m, self.fired_seen[layer.index]
            m.d.comb += Assert((self.emitted_neuron < layer.params.fan_out) & ~seen.bit_select(self.emitted_neuron, 1))
            m.d.sync += seen.bit_select(self.emitted_neuron, 1).eq(1)

    def _finish_states(self) -> None:
        m, core = self.m, self.core
        # early exit: the rest of the image is discarded, so a source may jump to its end beat
        m.d.comb += core.skip.eq(self.exited)
        with m.State("FINISH"):  # the readout reads the output counters, then the argmax runs
            self._readout_read()
            with m.If(self.readout.done):
                m.next = "DONE"
        with m.State("DONE"):
            m.d.comb += core.result.valid.eq(1)
            with m.If(core.result.ready):
                with m.If(self.exited):
                    m.next = "DRAIN"
                with m.Else():
                    self._next_image()
        with m.State("DRAIN"):
            # early exit: discard the rest of the image up to its end beat
            self._ready()
            with m.If(core.events.valid & (core.events.payload.time >= self.params.tmax)):
                self._next_image()

    def _next_image(self) -> None:
        """The result is taken (and an early-exited image drained): clear the counters next
        (the wide core folds the clear into this cycle instead)."""
        self.m.next = "CLEAR"


class _Bs4nnController(_Controller):
    """The BS4NN controller: a scan reads only the counter words that may fire.

    Every integration writeback marks its word a *candidate* when a lane not fired yet reaches
    the threshold (:class:`~bs4nn.rtl.neuron.CounterIntegrate` ``reaches``); a scan takes the
    candidates lowest word first (a priority encoder over the layer's candidate bits) and skips a
    layer with none.  A candidate whose counter fell back below the threshold later in the step is
    read and tested for nothing; a word that is no candidate cannot hold a new crossing, since its
    counters only moved while being written back.  With +-1 weights every event touches every word
    of the next layer, so a dirty bit per word would skip nothing: the threshold is what is rare.
    Cycles: :func:`bs4nn.rtl.cycles.predicted_cycles` (``3`` per candidate word and step: read,
    test, decide)."""

    def __init__(self, core: Bs4nnCore, m: Module, layers: list[_Layer], readout: OutputReadout, lowest: LowestLane):
        super().__init__(core, m, layers, readout, lowest)
        self.candidates = [Signal(layer.params.words, name=f"candidates{layer.index}") for layer in layers]
        # a writeback's reaching lanes, registered before they set its candidate bit: the weight
        # read and the counter's compares end here, the OR over the lanes and the bit's decoder
        # come the next cycle
        self.reached = [Signal(layer.params.lanes, name=f"reached{layer.index}") for layer in layers]
        self.reached_word = Signal.like(self.writeback_word)

    def _image_resets(self) -> list:
        return [*super()._image_resets(), *[candidates.eq(0) for candidates in self.candidates]]

    def _ready(self) -> None:
        """Nothing here: :meth:`_drive_ready` drives ``ready`` for every state at once."""

    def _load_step(self, time) -> None:
        """Nothing here: :meth:`_drive_ready` loads the step."""

    def build(self) -> None:
        super().build()
        self._drive_ready()

    def _drive_ready(self) -> None:
        """``ready`` as one flat expression of the beat's step test and a few state bits, where the
        states' nested conditions made a chain of six LUTs from the beat's time through the FSM to
        the board's stream register (the critical path of the paired 16-lane iCEBreaker build).
        The same conditions as the states' accepts: ``WAIT`` takes a beat unless it closes a step
        with events, ``PAIR`` and the look-ahead an event of the current step, ``DRAIN`` all."""
        fsm, core, index = self.fsm, self.core, self.layers[0].index
        same_step = core.events.payload.time == self.step  # step < tmax: never the end beat
        takes_same_step = fsm.ongoing("WAIT")
        if self.layers[0].params.paired:
            takes_same_step |= fsm.ongoing("PAIR")
        if self._pipelined():
            takes_same_step |= self.look | self.next_valid  # next_valid: only in a sweep's last word
        opens_step = fsm.ongoing("WAIT") & ~self.touched[index]
        self.m.d.comb += core.events.ready.eq(
            fsm.ongoing("DRAIN") | (core.events.valid & (opens_step | (same_step & takes_same_step)))
        )
        # the step: loaded by an event that opens one (an event of the current step would load the
        # value it holds), so its enable needs no compare with the step itself
        with self.m.If(core.events.valid & opens_step & (core.events.payload.time < self.params.tmax)):
            self.m.d.sync += self.step.eq(core.events.payload.time)

    def _writeback(self, layer: _Layer) -> None:
        super()._writeback(layer)
        m, index = self.m, layer.index
        m.d.sync += [
            self.reached[index].eq(Mux(self.writeback[index], layer.integrate.reaches, 0)),
            self.reached_word.eq(self.writeback_word),
        ]
        with m.If(self.reached[index].any()):
            m.d.sync += self.candidates[index].bit_select(self.reached_word, 1).eq(1)

    def _scan_wanted(self, index: int):
        """Candidates, or a mark still on its way (the integration's last word, written back the
        cycle before): a scan's first read comes a cycle later, when the mark has landed."""
        return self.candidates[index].any() | self.reached[index].any()

    def _enter_scan(self, index: int) -> str:
        return f"SCAN_READ_{index}"

    def _scan_read(self, layer: _Layer) -> None:
        """Read the lowest candidate word and take it off the candidates."""
        m, candidates = self.m, self.candidates[layer.index]
        word = lowest_set_bit(candidates)[1]
        m.d.comb += layer.mem.state_read_addr.eq(word)
        m.d.sync += [
            self.scan_word.eq(word),
            self.scan_neuron_base.eq(word * self.params.lanes),
            candidates.bit_select(word, 1).eq(0),
        ]

    def _drive_emitted_neuron(self) -> None:
        """Registered: every ``SCAN_EMIT`` follows a ``SCAN_NEXT`` (:meth:`_after_scan_test`), whose
        ``pending`` it emits, so the priority encoder and the base's adder end at this register
        instead of running on into the output spike times, the decision and the next row's address."""
        self.m.d.sync += self.emitted_neuron.eq(self.scan_neuron_base + self.lowest.lowest)

    def _after_scan_test(self, layer: _Layer) -> None:
        """Always ``SCAN_NEXT``, which decides on the registered ``pending``: the threshold test's
        compare and OR end at ``pending`` instead of running on through the FSM (a cycle more per
        candidate word, and candidate words are few)."""
        self.m.next = f"SCAN_NEXT_{layer.index}"

    def _next_scan_word(self, layer: _Layer) -> None:
        with self.m.If(self.candidates[layer.index].any()):
            self.m.next = f"SCAN_READ_{layer.index}"
        with self.m.Else():
            self._goto_scan(layer.index + 1)

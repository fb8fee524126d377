"""The B1 inference core: the BS4NN core (:mod:`bs4nn.rtl.core`) with the B1 neuron model swapped in.

Same ports, memories, weight layout, address-event input, readout, argmax and result stream as
:class:`~bs4nn.rtl.core.Bs4nnCore`; what differs is the neuron (:mod:`bs4nn.rtl.b1neuron`) and
the phases the controller runs:

1. **Integrate**: every input event (pixel ``j``, step ``k``) adds ``+-(tmax - k)`` to the
   potentials of layer 0, ``lanes`` a cycle (the same pipelined read-modify-write sweep);
   potentials start at the biases (written by the clear).
2. **Fire** (after the end-of-image beat), hidden layer by hidden layer: each potential word is
   read, ``x = clip(floor(V / ramp), 0, window)`` computed on every lane, and each lane with
   ``x > 0`` emitted (lowest neuron first) on the debug spike port at its step ``window - x``
   and integrated at once into the next layer as an event of value ``x``.  The order of a
   layer's spikes does not change the next layer's sums, and the next layer is scanned only
   after the whole previous one.
3. **Read out** the output potentials (the scores) and take the argmax, ties to the lowest index.

The result's ``counts`` are the scores, ``decision_time`` and every ``spike_times`` entry the
decision latency ``tmax + sum of the windows`` (B1 outputs do not spike).  Cycle formula:
:func:`bs4nn.rtl.cycles.predicted_b1_cycles`.  Weights of 1 to 8 bits: a b-bit layer's weight word
holds ``lanes`` two's-complement fields (:class:`~bs4nn.export.layout.MemoryLayout`) and its
integrator multiplies (:class:`~bs4nn.rtl.b1neuron.B1Integrate`); the cycles do not depend on the width.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Mux, Signal, unsigned
from amaranth.hdl import Assume
from amaranth.lib import data
from amaranth.lib.memory import Memory

from bs4nn.export.layout import DEFAULT_LANES, time_bits
from bs4nn.rtl.b1neuron import B1Fire, B1Integrate, B1LayerParams
from bs4nn.rtl.core import Bs4nnCore, _Controller, _Layer
from bs4nn.rtl.params import CoreParams
from bs4nn.sim.b1 import B1Network


@dataclass(frozen=True)
class B1CoreParams(CoreParams):
    """:class:`~bs4nn.rtl.params.CoreParams` of a B1 network: its time fields hold the decision latency."""

    latency: int

    @classmethod
    def from_network(cls, network: B1Network, lanes: int) -> B1CoreParams:
        windows = [network.input_window(index) for index in range(len(network.layers))]
        amount_bits = max(window.bit_length() for window in windows)
        layers = tuple(
            B1LayerParams(
                layer.fan_in,
                layer.fan_out,
                0,
                lanes,
                weight_bits=layer.weight_bits,
                potential_bits=layer.potential_bits or layer.needed_potential_bits(window),
                amount_bits=amount_bits,
                bias=tuple(int(b) for b in layer.bias),
                ramp=None if layer.ramp is None else int(layer.ramp),
                window=None if layer.window is None else int(layer.window),
            )
            for layer, window in zip(network.layers, windows, strict=True)
        )
        return cls(layers, network.tmax, lanes, network.latency)

    @property
    def time_bits(self) -> int:
        return time_bits(max(self.tmax, self.latency))

    @property
    def amount_bits(self) -> int:
        return self.layers[0].amount_bits


class B1Core(Bs4nnCore):
    """The B1 inference core; ports as :class:`~bs4nn.rtl.core.Bs4nnCore` (``rtl/README.md``).
    ``early_exit`` is ignored: a B1 decision needs every input."""

    def __init__(
        self,
        network: B1Network,
        lanes: int = DEFAULT_LANES,
        *,
        weight_init: bool = True,
        formal: bool = False,
        assume_valid_input: bool = True,
    ):
        """``formal=True``: the assertions of :mod:`bs4nn.rtl.formal` (no potential wraps, a hidden
        neuron fires at most once per image) and the assumptions they need: the input protocol
        (as :class:`~bs4nn.rtl.core.Bs4nnCore`) and no run-time weight writes, since the
        manifest's ``potential_bits`` bound the built-in weights' sums, not any weights'."""
        super().__init__(network, lanes, weight_init=weight_init, formal=formal, assume_valid_input=assume_valid_input)

    def _core_params(self, network: B1Network, lanes: int) -> B1CoreParams:
        return B1CoreParams.from_network(network, lanes)

    def _neuron(self, index: int, layer: B1LayerParams) -> tuple[B1Integrate, B1Fire]:
        return B1Integrate(layer, formal=self.formal), B1Fire(layer)

    def _controller(self, m, layers, readout, lowest) -> _B1Controller:
        return _B1Controller(self, m, layers, readout, lowest)

    def _weight_input(self, integrate: B1Integrate):
        return integrate.weight_word

    def elaborate(self, platform) -> Module:
        m = super().elaborate(platform)
        latency = self.params.latency
        m.d.comb += [
            self.result.payload.decision_time.eq(latency),
            *[time.eq(latency) for time in self.result.payload.spike_times],
        ]
        if self.formal:
            m.d.comb += Assume(~self.weights.valid)
        return m


class _B1Controller(_Controller):
    """The BS4NN controller with B1's phases: integrate every input event, then fire the hidden
    layers one after the other, then read out (see the module doc)."""

    def __init__(self, core: B1Core, m: Module, layers: list[_Layer], readout, lowest):
        super().__init__(core, m, layers, readout, lowest)
        params = core.params
        value_bits = max(layer.params.value_bits for layer in layers)
        self.amount = Signal(unsigned(params.amount_bits))  # value of the event being integrated
        self.lane_values = Signal(data.ArrayLayout(unsigned(value_bits), params.lanes))  # x of the scanned word
        self.primed = Signal()  # a clear has run since reset: the bias ROMs' outputs hold real words

    def build(self) -> None:
        super().build()
        self.m.d.comb += [layer.integrate.amount.eq(self.amount) for layer in self.layers]

    @property
    def scanned_layers(self) -> list[_Layer]:
        return self.layers[:-1]

    def _scan_latch(self, layer: _Layer) -> list:
        return [self.lane_values[lane].eq(layer.threshold.values[lane]) for lane in range(self.params.lanes)]

    def _clear(self) -> None:
        """The BS4NN clear, writing each word's biases (from the layer's bias ROM) instead of zeros.

        The ROM is a block-RAM-able memory with a synchronous read, one word ahead: outside the
        clear its address is 0, during the clear the next word's, so the word being cleared is
        always on its output.  Only the first clear after reset finds no word read yet: word 0 is
        then the constant itself (``primed``), a mux of one word instead of a ROM in logic."""
        super()._clear()
        m = self.m
        for index, layer in enumerate(self.layers):
            params = layer.params
            words = params.bias_words()
            rom = m.submodules[f"bias{index}"] = Memory(shape=params.bias_layout, depth=params.words, init=words)
            read = rom.read_port()
            ahead = self.clear_word + 1
            m.d.comb += read.addr.eq(Mux(ahead < params.words, ahead, 0))
            for lane in range(params.lanes):
                m.d.comb += layer.mem.state_write_data[lane].count.eq(Mux(self.primed, read.data[lane], words[0][lane]))
        m.d.sync += self.primed.eq(1)

    def _wait(self) -> None:
        """Accept input events in any order (each adds its value at once); the end beat starts phase 2."""
        m, core, params = self.m, self.core, self.params
        event = core.events.payload
        m.d.comb += core.idle.eq(~self.started)
        with m.If(core.events.valid):
            m.d.comb += core.events.ready.eq(1)
            m.d.sync += self.started.eq(1)
            with m.If(event.time >= params.tmax):
                self._goto_scan(0)
            with m.Else():
                m.d.sync += self.amount.eq(params.tmax - event.time)
                self._start_integration(0, event.pixel)
                self._assume_valid_pixel(event.pixel)
                m.next = self._integration_state(0)

    def _goto_scan(self, index: int) -> None:
        """Next state: fire hidden layer ``index``, or, after the last hidden layer, read out."""
        m = self.m
        if index == len(self.layers) - 1:
            m.d.comb += self.readout.start.eq(1)
            m.next = "FINISH"
            return
        m.next = self._enter_scan(index)

    def _emit(self, layer: _Layer) -> None:
        """One spike a cycle, lowest neuron first: onto the debug port at ``window - x``, and into
        the next layer as an event of value ``x``."""
        m, core, index = self.m, self.core, layer.index
        value = self.lane_values[self.lowest.lowest]
        m.d.comb += [
            core.spikes.valid.eq(1),
            core.spikes.payload.layer.eq(index),
            core.spikes.payload.time.eq(layer.params.window - value),
        ]
        self._assert_fires_once(layer)
        m.d.sync += self.amount.eq(value)
        self._clear_emitted()
        self._start_integration(index + 1, self.emitted_neuron)
        m.next = self._integration_state(index + 1)

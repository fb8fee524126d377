"""The B1 neuron model in hardware (:mod:`bs4nn.sim.b1`): the two parts the B1 family swaps into
the BS4NN controller (:mod:`bs4nn.rtl.core`), with the same ports as
:class:`~bs4nn.rtl.neuron.CounterIntegrate` and :class:`~bs4nn.rtl.neuron.ThresholdTest`.

* :class:`B1Integrate`: an event of value ``a`` (input: ``tmax - k``; hidden spike: ``x``) adds
  ``w * a`` to each of ``lanes`` potentials at once: ``+a`` or ``-a`` for 1-bit weights, a
  signed ``weight_bits`` by unsigned ``amount_bits`` multiply per lane for b-bit weights.
* :class:`B1Fire`: phase 2 of a hidden layer, ``x = clip(floor(V / ramp), 0, window)`` on every
  lane of a potential word; a lane with ``x > 0`` spikes at step ``window - x``.

A potential word is ``lanes`` signed potentials of the manifest's ``potential_bits``
(:attr:`B1LayerParams.state_layout`): a partial sum of a neuron's inputs always lies between the
bias plus all its negative and plus all its positive contributions, so that width never wraps.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Assert
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bs4nn.rtl.params import LayerParams, index_bits
from bs4nn.sim.b1 import signed_bits


@dataclass(frozen=True)
class B1LayerParams(LayerParams):
    """One B1 layer of the core: the BS4NN layer shape plus bias, ramp, window and potential width."""

    potential_bits: int
    amount_bits: int  # width of an event's value (input: tmax - k, hidden: x)
    bias: tuple[int, ...]
    ramp: int | None  # hidden layers only
    window: int | None

    @property
    def hidden(self) -> bool:
        return self.ramp is not None

    @property
    def counter_bits(self) -> int:
        return self.potential_bits

    @property
    def value_bits(self) -> int:
        """Width of a hidden neuron's value ``x`` in ``0..window``."""
        return index_bits(self.window + 1) if self.hidden else 1

    @property
    def state_layout(self) -> data.ArrayLayout:
        """One potential word: ``lanes`` signed potentials (field ``count``, as the readout reads it)."""
        return data.ArrayLayout(data.StructLayout({"count": signed(self.potential_bits)}), self.lanes)

    @property
    def weight_layout(self) -> data.ArrayLayout:
        """One weight-memory word of b-bit weights: ``lanes`` two's-complement fields, lane ``k`` in
        bits ``k*b ..`` (:class:`~bs4nn.export.layout.MemoryLayout`), so it reads the word as is."""
        return data.ArrayLayout(signed(self.weight_bits), self.lanes)

    @property
    def bias_layout(self) -> data.ArrayLayout:
        """One word of the bias ROM: ``lanes`` biases, each of the narrowest signed width holding
        every bias of the layer (``mnist-b1``: 12 bits, where the potentials need 19)."""
        return data.ArrayLayout(signed(signed_bits(min(0, *self.bias), max(0, *self.bias))), self.lanes)

    def bias_words(self) -> list[data.Const]:
        """The bias ROM's contents: word ``w`` holds the start potentials of potential word ``w``
        (0 past ``fan_out``)."""
        padded = [*self.bias, *[0] * (self.words * self.lanes - self.fan_out)]
        return [self.bias_layout.const(padded[w * self.lanes : (w + 1) * self.lanes]) for w in range(self.words)]


class ClippedQuotient(wiring.Component):
    """``value = clip(floor(potential / ramp), 0, window)`` for a signed potential and constant
    ``ramp`` and ``window``, without a divider.

    Below 0 the value is 0, from ``window * ramp`` on it is ``window``; in between the potential
    fits ``(window * ramp - 1).bit_length()`` unsigned bits and its quotient is below ``window``,
    so ``ceil(log2(window))`` restoring-division steps find it, each a compare and subtract of
    the constant ``ramp << b`` on a remainder of that width.  A full ``V // ramp`` takes one step
    per potential bit (19 for ``mnist-b1``): a tiny B1 board then missed the iCEBreaker's 12 MHz
    (11.4 MHz) and a 16-lane ``mnist-b1`` board needed 6,501 LUTs of the UP5K's 5,280.
    """

    def __init__(self, potential_bits: int, ramp: int, window: int):
        self.ramp, self.window = ramp, window
        super().__init__({"potential": In(signed(potential_bits)), "value": Out(range(window + 1))})

    def elaborate(self, platform) -> Module:
        m = Module()
        ramp, window = self.ramp, self.window
        width = max(1, (window * ramp - 1).bit_length())
        remainder = Signal(width, name="remainder_in")
        m.d.comb += remainder.eq(self.potential)  # only read where 0 <= potential < window * ramp
        bits = []
        for bit in reversed(range((window - 1).bit_length())):
            take, rest = Signal(name=f"take{bit}"), Signal(width, name=f"remainder{bit}")
            m.d.comb += [take.eq(remainder >= (ramp << bit)), rest.eq(Mux(take, remainder - (ramp << bit), remainder))]
            remainder = rest
            bits.append(take)
        quotient = Cat(*reversed(bits)) if bits else Const(0, 1)
        m.d.comb += self.value.eq(Mux(self.potential < 0, 0, Mux(self.potential >= window * ramp, window, quotient)))
        return m


class B1Integrate(wiring.Component):
    """One event integrated into one potential word: ``potential += w * amount`` per lane.

    1-bit weights come in on ``signs`` (``+amount`` where the bit is 1, ``-amount`` where it is 0:
    an adder, and BS4NN's port name, so a 1-bit core is unchanged); b-bit weights on ``weights``,
    one two's-complement field per lane (:attr:`B1LayerParams.weight_layout`), each times the
    unsigned amount (Yosys maps the multiply: DSPs or LUTs).  ``formal=True``: while ``active``,
    assert that no potential wraps (the signed sum, computed wide, stays inside
    ``potential_bits``), as :class:`~bs4nn.rtl.neuron.CounterIntegrate` does for BS4NN's counters."""

    def __init__(self, params: B1LayerParams, *, formal: bool = False):
        self.params = params
        self.formal = formal
        weights = {"signs": In(params.lanes)} if params.weight_bits == 1 else {"weights": In(params.weight_layout)}
        super().__init__(
            {
                "state": In(params.state_layout),
                **weights,
                "amount": In(unsigned(params.amount_bits)),
                "active": In(1),
                "update": Out(params.state_layout),
            }
        )

    @property
    def weight_word(self):
        """The port the layer's weight-memory word drives (``signs`` or ``weights``)."""
        return self.signs if self.params.weight_bits == 1 else self.weights

    def _moved(self, lane: int):
        """Lane ``lane``'s potential plus its weight times the amount, wide enough never to wrap itself."""
        old, amount = self.state[lane].count, self.amount  # amount unsigned; Amaranth widens the sum
        if self.params.weight_bits == 1:
            return Mux(self.signs[lane], old + amount, old - amount)
        return old + self.weights[lane] * amount

    def elaborate(self, platform) -> Module:
        m = Module()
        bits = self.params.potential_bits
        largest, smallest = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
        for lane in range(self.params.lanes):
            moved = self._moved(lane)
            m.d.comb += self.update[lane].count.eq(moved)
            if self.formal:
                with m.If(self.active):
                    m.d.comb += Assert((moved >= smallest) & (moved <= largest))
        return m


class B1Fire(wiring.Component):
    """Phase 2 on one potential word: ``values`` = each lane's ``clip(floor(V / ramp), 0, window)``,
    ``fires`` = lanes with a value above 0 (lanes past the layer's last neuron masked off in the
    ``last_word``); ``update`` is the word unchanged (B1 potentials are read once).  The output
    layer never fires: all 0."""

    def __init__(self, params: B1LayerParams):
        self.params = params
        super().__init__(
            {
                "state": In(params.state_layout),
                "last_word": In(1),
                "fires": Out(params.lanes),
                "values": Out(data.ArrayLayout(unsigned(params.value_bits), params.lanes)),
                "update": Out(params.state_layout),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        m.d.comb += self.update.eq(self.state)
        if not params.hidden:
            return m
        last_word_lanes = params.fan_out - (params.words - 1) * params.lanes
        lane_mask = Mux(
            self.last_word,
            Const((1 << last_word_lanes) - 1, params.lanes),
            Const((1 << params.lanes) - 1, params.lanes),
        )
        for lane in range(params.lanes):
            quotient = ClippedQuotient(params.potential_bits, params.ramp, params.window)
            m.submodules[f"quotient{lane}"] = quotient
            m.d.comb += [quotient.potential.eq(self.state[lane].count), self.values[lane].eq(quotient.value)]
        m.d.comb += self.fires.eq(Cat(self.values[lane] != 0 for lane in range(params.lanes)) & lane_mask)
        return m

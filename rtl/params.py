"""Every width and payload layout of the core, derived from a network and a lane count.

The core's ports, its memories, the board top and every testbench take their shapes from here,
and testbench payload integers are built and decoded through the same ``data.Layout`` objects
(``Layout.const(...).as_bits()``, ``Layout.from_bits(...)``), so no bit position is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from bs4nn.export.layout import MemoryLayout, counter_bits, time_bits
from bs4nn.lanes import is_wide, weight_lanes
from bs4nn.sim.golden import IntegerNetwork


def index_bits(count: int) -> int:
    """Unsigned width of an index ``0 .. count-1`` (at least 1 bit)."""
    return max(1, (count - 1).bit_length())


# The narrow core's input layer integrates two events of a step per sweep of its counter words,
# from a second copy of its weights, when that pays and fits (``paired=None``): a sweep of at least
# PAIRED_MIN_WORDS words (integration then dominates the cycles; the counters' block RAM is what
# bounds the lanes, 784-600-10 at 16 lanes: 38 words, 12 of the UP5K's 30 EBR) and a weight
# memory of at most PAIRED_MAX_BITS (two copies in the UP5K's 4 SPRAMs of 256 kbit: 784-600 at 16
# lanes, 29,792 x 16, fills them exactly).  784-600-10 at 20 lanes (30 words) stays unpaired.
PAIRED_MIN_WORDS = 32
PAIRED_MAX_BITS = 1 << 19


@dataclass(frozen=True)
class LayerParams:
    """Elaboration parameters of one layer of the core.

    ``lanes``: counters updated per cycle (one counter word); ``weight_lanes``: weights of one
    weight-memory word, the same in the narrow core, ``MAX_LANES`` in the wide core (whose layers
    are one counter word, ``lanes == fan_out``, fed by parallel weight memories); ``weight_bits``:
    bits of one weight (1: sign bits; a B1 layer: up to 8), so a word is ``weight_lanes * weight_bits``."""

    fan_in: int
    fan_out: int
    threshold_count: int
    lanes: int
    weight_lanes: int | None = field(default=None, kw_only=True)  # None: = lanes
    weight_bits: int = field(default=1, kw_only=True)
    # two input events per sweep, from two copies of the weights (:data:`PAIRED_MIN_WORDS`)
    paired: bool = field(default=False, kw_only=True)

    @property
    def layout(self) -> MemoryLayout:
        """The weight memory's layout (the exported one, ``weight_lanes`` weights a word)."""
        return MemoryLayout(self.fan_in, self.fan_out, self.weight_lanes or self.lanes, self.weight_bits)

    @property
    def words(self) -> int:
        """Counter words of this layer (narrow core: = weight words per presynaptic row)."""
        return -(-self.fan_out // self.lanes)

    @property
    def banks(self) -> int:
        """Weight words per presynaptic row: the wide core's parallel weight memories."""
        return self.layout.words_per_row

    @property
    def counter_bits(self) -> int:
        return counter_bits(self.fan_in, self.threshold_count)

    @property
    def state_layout(self) -> data.ArrayLayout:
        """One counter-memory word: ``lanes`` (signed counter, fired flag) pairs."""
        lane = data.StructLayout({"count": signed(self.counter_bits), "fired": unsigned(1)})
        return data.ArrayLayout(lane, self.lanes)


@dataclass(frozen=True)
class CoreParams:
    """Every width and layout of the core, derived from a network and a lane count.

    Testbenches use it to build input beats and decode output beats (``encode_event``,
    ``decode_result``...) instead of re-deriving bit positions.
    """

    layers: tuple[LayerParams, ...]
    tmax: int
    lanes: int

    @classmethod
    def from_network(cls, network: IntegerNetwork, lanes: int, paired: bool | None = None) -> CoreParams:
        """Raises ``ValueError`` for a wide core (``lanes > MAX_LANES``) narrower than a layer.
        ``paired``: whether the narrow core's input layer takes events two at a time (``None``:
        where it pays and fits, :data:`PAIRED_MIN_WORDS`; the wide core never)."""
        check_wide_lanes([layer.fan_out for layer in network.layers], lanes)
        layers = tuple(
            LayerParams(
                layer.fan_in,
                layer.fan_out,
                layer.threshold_count,
                # wide: a layer is one counter word; narrow: no wider than the layer (784-600-10 at
                # 32 lanes: the output layer's word holds 10 counters, not 22 more that never count)
                layer.fan_out if is_wide(lanes) else min(lanes, layer.fan_out),
                weight_lanes=weight_lanes(lanes),
                paired=index == 0 and not is_wide(lanes) and _pairs(layer, lanes, paired),
            )
            for index, layer in enumerate(network.layers)
        )
        return cls(layers, network.tmax, lanes)

    @property
    def wide(self) -> bool:
        """The wide core (:mod:`bs4nn.rtl.wide`): counters in registers, a whole layer per cycle."""
        return is_wide(self.lanes)

    @property
    def weight_lanes(self) -> int:
        """Weights of one weight-memory word (1-bit: its bits, the board's ``WEIGHT`` frame data)."""
        return weight_lanes(self.lanes)

    @property
    def weight_word_bits(self) -> int:
        """Bits of the widest weight-memory word (``weights`` port data): ``weight_lanes`` for
        1-bit weights, ``lanes * weight_bits`` for a B1 network of b-bit weights."""
        return max(layer.layout.width for layer in self.layers)

    @property
    def bank_bits(self) -> int:
        """Wide core: low address bits naming the bank (the word within a row) of a weight write."""
        return index_bits(max(layer.banks for layer in self.layers))

    @property
    def n_in(self) -> int:
        return self.layers[0].fan_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].fan_out

    @property
    def pixel_bits(self) -> int:
        return index_bits(self.n_in)

    @property
    def time_bits(self) -> int:
        return time_bits(self.tmax)

    @property
    def class_bits(self) -> int:
        return index_bits(self.n_out)

    @property
    def neuron_bits(self) -> int:
        return index_bits(max(layer.fan_out for layer in self.layers))

    @property
    def layer_bits(self) -> int:
        return index_bits(len(self.layers))

    @property
    def count_bits(self) -> int:
        """Width of the output counters reported in the result."""
        return self.layers[-1].counter_bits

    @property
    def address_bits(self) -> int:
        """Weight-write address width: the exported layout's, or (wide) row and bank fields."""
        if self.wide:
            return max(index_bits(layer.fan_in) for layer in self.layers) + self.bank_bits
        return max(layer.layout.address_bits for layer in self.layers)

    @property
    def event_layout(self) -> data.StructLayout:
        return data.StructLayout({"pixel": unsigned(self.pixel_bits), "time": unsigned(self.time_bits)})

    @property
    def result_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {
                "decision": unsigned(self.class_bits),
                "decision_time": unsigned(self.time_bits),
                "spike_times": data.ArrayLayout(unsigned(self.time_bits), self.n_out),
                "counts": data.ArrayLayout(signed(self.count_bits), self.n_out),
            }
        )

    @property
    def spike_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {"layer": unsigned(self.layer_bits), "neuron": unsigned(self.neuron_bits), "time": unsigned(self.time_bits)}
        )

    @property
    def weight_write_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {
                "layer": unsigned(self.layer_bits),
                "address": unsigned(self.address_bits),
                "data": unsigned(self.weight_word_bits),
            }
        )

    # --- payload integers for testbenches, through the layouts above (never hand-packed) ---

    def encode_event(self, pixel: int, time: int) -> int:
        """An ``events__payload`` beat; ``time >= tmax`` is the end-of-image beat."""
        return self.event_layout.const({"pixel": pixel, "time": min(time, self.tmax)}).as_bits()

    def encode_weight(self, layer: int, address: int, word: int) -> int:
        """A ``weights__payload`` beat writing one weight-memory word (``address`` in the exported
        layout, :class:`~bs4nn.export.layout.MemoryLayout`, whatever the core)."""
        address = self.core_weight_address(layer, address)
        return self.weight_write_layout.const({"layer": layer, "address": address, "data": int(word)}).as_bits()

    def core_weight_address(self, layer: int, address: int) -> int:
        """The core's ``weights`` address of exported word ``address``: the same in the narrow core;
        in the wide core ``row << bank_bits | bank`` (no divider in hardware)."""
        if not self.wide:
            return address
        row, bank = divmod(address, self.layers[layer].banks)
        return row << self.bank_bits | bank

    def decode_spike(self, payload: int) -> tuple[int, int, int]:
        """``(layer, neuron, time)`` of a ``spikes__payload`` beat."""
        spike = self.spike_layout.from_bits(payload)
        return spike.layer, spike.neuron, spike.time

    def decode_result(self, payload: int) -> dict[str, object]:
        """``{decision, decision_time, spike_times (list), counts (list)}`` of a result beat."""
        result = self.result_layout.from_bits(payload)
        return {
            "decision": result.decision,
            "decision_time": result.decision_time,
            "spike_times": list(result.spike_times),
            "counts": list(result.counts),
        }


def _pairs(layer, lanes: int, paired: bool | None) -> bool:
    """Whether a narrow core's input layer is paired (``paired=None``: :data:`PAIRED_MIN_WORDS`)."""
    if paired is not None:
        return paired
    words = -(-layer.fan_out // lanes)
    return words >= PAIRED_MIN_WORDS and layer.fan_in * words * lanes <= PAIRED_MAX_BITS


def check_wide_lanes(widths: list[int], lanes: int) -> None:
    """A wide core (``lanes > MAX_LANES``) updates every layer whole: ``lanes`` must cover the widest."""
    if is_wide(lanes) and lanes < max(widths):
        raise ValueError(
            f"lanes {lanes}: beyond 64 the core keeps every counter in registers and needs lanes >= the widest "
            f"layer ({max(widths)} neurons); use 1..64 for block-RAM counters"
        )


def strobe(layout: data.Layout) -> wiring.Signature:
    """A valid-only stream (no backpressure): ``valid`` plus ``payload``, ports ``NAME__valid/payload``."""
    return wiring.Signature({"valid": Out(1), "payload": Out(layout)})

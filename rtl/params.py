"""Every width and payload layout of the core, derived from a network and a lane count.

The core's ports, its memories, the board top and every testbench take their shapes from here,
and testbench payload integers are built and decoded through the same ``data.Layout`` objects
(``Layout.const(...).as_bits()``, ``Layout.from_bits(...)``), so no bit position is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from bs4nn.export.layout import MemoryLayout, counter_bits, time_bits
from bs4nn.sim.golden import IntegerNetwork


def index_bits(count: int) -> int:
    """Unsigned width of an index ``0 .. count-1`` (at least 1 bit)."""
    return max(1, (count - 1).bit_length())


@dataclass(frozen=True)
class LayerParams:
    """Elaboration parameters of one layer of the core."""

    fan_in: int
    fan_out: int
    threshold_count: int
    lanes: int

    @property
    def layout(self) -> MemoryLayout:
        return MemoryLayout(self.fan_in, self.fan_out, self.lanes)

    @property
    def words(self) -> int:
        """Counter words of this layer (= weight words per presynaptic row)."""
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
    def from_network(cls, network: IntegerNetwork, lanes: int) -> CoreParams:
        layers = tuple(
            LayerParams(layer.fan_in, layer.fan_out, layer.threshold_count, lanes) for layer in network.layers
        )
        return cls(layers, network.tmax, lanes)

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
            {"layer": unsigned(self.layer_bits), "address": unsigned(self.address_bits), "data": unsigned(self.lanes)}
        )

    # --- payload integers for testbenches, through the layouts above (never hand-packed) ---

    def encode_event(self, pixel: int, time: int) -> int:
        """An ``events__payload`` beat; ``time >= tmax`` is the end-of-image beat."""
        return self.event_layout.const({"pixel": pixel, "time": min(time, self.tmax)}).as_bits()

    def encode_weight(self, layer: int, address: int, word: int) -> int:
        """A ``weights__payload`` beat writing one weight-memory word."""
        return self.weight_write_layout.const({"layer": layer, "address": address, "data": int(word)}).as_bits()

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


def strobe(layout: data.Layout) -> wiring.Signature:
    """A valid-only stream (no backpressure): ``valid`` plus ``payload``, ports ``NAME__valid/payload``."""
    return wiring.Signature({"valid": Out(1), "payload": Out(layout)})

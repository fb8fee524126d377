"""Memory layout and hardware widths: the one place the exporter and the RTL generator agree.

The core is event-driven: for each presynaptic spike it reads that presynaptic neuron's
fan-out row of sign bits, ``lanes`` bits per word.  So a layer's weight memory is the sign
matrix transposed and cut into words:

* ``words_per_row = ceil(fan_out / lanes)``; ``depth = fan_in * words_per_row``; width ``lanes``.
* Word address ``i * words_per_row + w`` holds the signs of input ``i`` towards postsynaptic
  neurons ``w*lanes .. w*lanes + lanes-1``; bit ``k`` (LSB = 0) is neuron ``w*lanes + k``.
* Bits past ``fan_out`` are 0.  Bit 1 = +1, bit 0 = -1.

A B1 layer of ``weight_bits = b > 1`` lays out the same way with a ``b``-bit field per lane instead
of a bit: width ``lanes * b``, lane ``k`` in bits ``k*b .. k*b + b-1``, each field the weight's
two's complement (:func:`bs4nn.export.b1bits.weight_fields`); 1-bit words are the sign words above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bs4nn.export.b1bits import weight_fields
from bs4nn.lanes import DEFAULT_LANES as DEFAULT_LANES  # re-exported: rtl/ and firmware/ still import it here
from bs4nn.lanes import MAX_LANES

WORD_BITS = 64
"""Widest weight word the NumPy ``uint64`` path builds; wider (b-bit) words are Python integers."""


@dataclass(frozen=True)
class MemoryLayout:
    """Shape of one layer's weight memory for a given lane count and weight width."""

    fan_in: int
    fan_out: int
    lanes: int
    weight_bits: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.lanes <= MAX_LANES:
            raise ValueError(f"lanes must be 1..{MAX_LANES}, got {self.lanes}")
        if self.fan_in < 1 or self.fan_out < 1:
            raise ValueError("fan_in and fan_out must be positive")

    @property
    def words_per_row(self) -> int:
        return -(-self.fan_out // self.lanes)

    @property
    def depth(self) -> int:
        return self.fan_in * self.words_per_row

    @property
    def width(self) -> int:
        return self.lanes * self.weight_bits

    @property
    def address_bits(self) -> int:
        return max(1, (self.depth - 1).bit_length())

    def address(self, presynaptic: int, word: int) -> int:
        return presynaptic * self.words_per_row + word


def weight_memory_words(fields: np.ndarray, lanes: int, weight_bits: int = 1) -> np.ndarray:
    """The layer's memory contents in address order (see module doc), from its ``(fan_out, fan_in)``
    unsigned weight fields (1 bit: the sign bits): ``uint64`` words up to 64 bits wide, else an
    object array of Python integers (16 lanes of 8-bit weights make 128-bit words)."""
    fields = np.asarray(fields, dtype=np.uint64)
    fan_out, fan_in = fields.shape
    layout = MemoryLayout(fan_in, fan_out, lanes, weight_bits)
    padded = np.zeros((layout.words_per_row * lanes, fan_in), dtype=np.uint64)
    padded[:fan_out] = fields
    # (fan_in, words_per_row, lanes): field k of word w of input i
    lane_fields = padded.T.reshape(fan_in, layout.words_per_row, lanes)
    dtype = np.uint64 if layout.width <= WORD_BITS else object
    shifts = (np.arange(lanes, dtype=np.uint64) * np.uint64(weight_bits)).astype(dtype)
    return np.left_shift(lane_fields.astype(dtype), shifts).sum(axis=2, dtype=dtype).reshape(-1)


def layer_weight_fields(layer) -> tuple[np.ndarray, int]:
    """What a layer's weight memory stores per synapse, and its width: a BS4NN layer's sign bits,
    a B1 layer's weight fields (1-bit B1 weights: the same sign bits)."""
    bits = layer.weight_bits
    return (layer.signs if bits == 1 else weight_fields(layer.weights, bits)), bits


def network_weight_words(network, lanes: int) -> list[np.ndarray]:
    """Per layer of ``network`` (an ``IntegerNetwork`` or a ``B1Network``), its weight-memory
    image: the one place a whole network's memories are built, for the core's initial contents, a
    board upload and a testbench's run-time writes alike."""
    images = []
    for layer in network.layers:
        fields, bits = layer_weight_fields(layer)
        images.append(weight_memory_words(fields, lanes, bits))
    return images


def network_weight_writes(network, lanes: int) -> np.ndarray:
    """Every word of :func:`network_weight_words` as ``(n, 3)`` uint64 ``(layer, address, word)``
    rows, the order a run-time write port (core ``weights``, board ``WEIGHT`` frames) takes them."""
    rows = [np.zeros((0, 3), np.uint64)]
    for index, words in enumerate(network_weight_words(network, lanes)):
        addresses = np.arange(len(words), dtype=np.uint64)
        rows.append(np.stack([np.full(len(words), index, np.uint64), addresses, words], axis=1))
    return np.concatenate(rows, axis=0)


def signs_from_words(words: np.ndarray, fan_out: int, fan_in: int, lanes: int) -> np.ndarray:
    """Inverse of :func:`weight_memory_words`: the ``(fan_out, fan_in)`` 0/1 sign matrix."""
    layout = MemoryLayout(fan_in, fan_out, lanes)
    words = np.asarray(words, dtype=np.uint64).reshape(fan_in, layout.words_per_row, 1)
    bits = (words >> np.arange(lanes, dtype=np.uint64)) & np.uint64(1)
    return bits.reshape(fan_in, -1)[:, :fan_out].T.astype(np.uint8)


def counter_bits(fan_in: int, threshold_count: int) -> int:
    """Signed counter width: holds every count in ``-fan_in .. fan_in`` and the threshold."""
    return max(fan_in, threshold_count).bit_length() + 1


def time_bits(tmax: int) -> int:
    """Unsigned width of a spike time, ``tmax`` ("never") included."""
    return tmax.bit_length()

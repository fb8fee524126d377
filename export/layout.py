"""Memory layout and hardware widths: the one place the exporter and the RTL generator agree.

The core is event-driven: for each presynaptic spike it reads that presynaptic neuron's
fan-out row of sign bits, ``lanes`` bits per word.  So a layer's weight memory is the sign
matrix transposed and cut into words:

* ``words_per_row = ceil(fan_out / lanes)``; ``depth = fan_in * words_per_row``; width ``lanes``.
* Word address ``i * words_per_row + w`` holds the signs of input ``i`` towards postsynaptic
  neurons ``w*lanes .. w*lanes + lanes-1``; bit ``k`` (LSB = 0) is neuron ``w*lanes + k``.
* Bits past ``fan_out`` are 0.  Bit 1 = +1, bit 0 = -1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bs4nn.lanes import DEFAULT_LANES as DEFAULT_LANES  # re-exported: rtl/ and firmware/ still import it here
from bs4nn.lanes import MAX_LANES


@dataclass(frozen=True)
class MemoryLayout:
    """Shape of one layer's weight memory for a given lane count."""

    fan_in: int
    fan_out: int
    lanes: int

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
        return self.lanes

    @property
    def address_bits(self) -> int:
        return max(1, (self.depth - 1).bit_length())

    def address(self, presynaptic: int, word: int) -> int:
        return presynaptic * self.words_per_row + word


def weight_memory_words(signs: np.ndarray, lanes: int) -> np.ndarray:
    """The layer's memory contents as ``uint64`` words, in address order (see module doc)."""
    signs = np.asarray(signs, dtype=np.uint64)
    fan_out, fan_in = signs.shape
    layout = MemoryLayout(fan_in, fan_out, lanes)
    padded = np.zeros((layout.words_per_row * lanes, fan_in), dtype=np.uint64)
    padded[:fan_out] = signs
    # (fan_in, words_per_row, lanes): bit k of word w of input i
    lanes_bits = padded.T.reshape(fan_in, layout.words_per_row, lanes)
    weights = np.left_shift(np.uint64(1), np.arange(lanes, dtype=np.uint64))
    return (lanes_bits * weights).sum(axis=2, dtype=np.uint64).reshape(-1)


def network_weight_words(network, lanes: int) -> list[np.ndarray]:
    """Per layer of ``network`` (anything with ``layers[i].signs``, e.g. an ``IntegerNetwork``), its
    weight-memory image: the one place a whole network's memories are built, for the core's initial
    contents, a board upload and a testbench's run-time writes alike."""
    return [weight_memory_words(layer.signs, lanes) for layer in network.layers]


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

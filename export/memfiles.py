"""Memory images of a layer's weight memory, for the tools that initialise FPGA RAMs.

The contents are those of :func:`bs4nn.export.layout.weight_memory_words` (word address
``i * words_per_row + w`` holds the signs of input ``i`` towards neurons ``w*lanes ..
w*lanes + lanes-1``, bit ``k`` = neuron ``w*lanes + k``; word width = lanes).  Every format
writes the words in address order, lowercase hexadecimal, ``ceil(width / 4)`` digits:

* ``layer{L}.hex``: one word per line and nothing else (``$readmemh``, any simulator/synthesiser).
* ``layer{L}.mem``: ``//`` comment header, an ``@0`` address mark, then one word per line
  (``$readmemh`` too; the Vivado / Lattice ``.mem`` convention).
* ``layer{L}.coe``: Xilinx Block Memory Generator coefficient file (radix 16).
* ``layer{L}.mif``: Intel (Quartus) memory initialisation file, hexadecimal address and data.

Text is built with vectorised NumPy (character tables), not a Python loop per word.
"""

from __future__ import annotations

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.layout import MemoryLayout, weight_memory_words

HEX_ALPHABET = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
NIBBLE_BITS = 4
NIBBLE_MASK = 0xF
MEMORY_FORMATS = ("hex", "mem", "coe", "mif")
"""File suffixes of the memory images, in the order the manifest lists them."""


def hex_digits(width: int) -> int:
    """Hexadecimal digits of a ``width``-bit word."""
    return -(-width // NIBBLE_BITS)


def hex_columns(values: np.ndarray, digits: int) -> np.ndarray:
    """ASCII hexadecimal of every value, ``(n, digits)`` uint8, most significant digit first."""
    values = np.asarray(values, dtype=np.uint64).reshape(-1, 1)
    shifts = np.arange(digits - 1, -1, -1, dtype=np.uint64) * np.uint64(NIBBLE_BITS)
    return HEX_ALPHABET[((values >> shifts) & np.uint64(NIBBLE_MASK)).astype(np.intp)]


def text_table(*columns: np.ndarray | bytes, rows: int) -> bytes:
    """Rows built from per-row ASCII columns (``(rows, k)`` arrays) and constant byte strings."""
    pieces = []
    for column in columns:
        if isinstance(column, bytes):
            pieces.append(np.broadcast_to(np.frombuffer(column, dtype=np.uint8), (rows, len(column))))
        else:
            pieces.append(column)
    return np.concatenate(pieces, axis=1).tobytes() if rows else b""


def layout_comment(layout: MemoryLayout, layer: int) -> str:
    """One line saying what the words mean (written as a comment into each image)."""
    return (
        f"bs4nn layer {layer} weight memory: depth {layout.depth}, width {layout.width} (lanes); "
        f"word i*{layout.words_per_row}+w = signs of input i to neurons w*{layout.lanes}+k at bit k; "
        "1 = +1, 0 = -1"
    )


def hex_image(words: np.ndarray, width: int) -> bytes:
    """``layer{L}.hex``: one word per line, no comments, no addresses."""
    words = np.asarray(words)
    return text_table(hex_columns(words, hex_digits(width)), b"\n", rows=len(words))


def mem_image(words: np.ndarray, layout: MemoryLayout, layer: int) -> bytes:
    """``layer{L}.mem``: comment header, ``@0``, one word per line."""
    header = f"// {layout_comment(layout, layer)}\n@0\n".encode()
    return header + hex_image(words, layout.width)


def coe_image(words: np.ndarray, layout: MemoryLayout, layer: int) -> bytes:
    """``layer{L}.coe``: Xilinx coefficient file; words separated by commas, ``;`` after the last."""
    words = np.asarray(words)
    header = f"; {layout_comment(layout, layer)}\nmemory_initialization_radix=16;\nmemory_initialization_vector=\n"
    body = bytearray(text_table(hex_columns(words, hex_digits(layout.width)), b",\n", rows=len(words)))
    body[-2:] = b";\n"
    return header.encode() + bytes(body)


def mif_image(words: np.ndarray, layout: MemoryLayout, layer: int) -> bytes:
    """``layer{L}.mif``: Intel memory initialisation file, ``ADDR : DATA;`` per word."""
    words = np.asarray(words)
    address_digits = hex_digits(layout.address_bits)
    header = (
        f"-- {layout_comment(layout, layer)}\n"
        f"WIDTH={layout.width};\nDEPTH={layout.depth};\n\n"
        "ADDRESS_RADIX=HEX;\nDATA_RADIX=HEX;\n\nCONTENT BEGIN\n"
    )
    addresses = hex_columns(np.arange(len(words)), address_digits)
    body = text_table(b"    ", addresses, b" : ", hex_columns(words, hex_digits(layout.width)), b";\n", rows=len(words))
    return header.encode() + body + b"END;\n"


def memory_images(signs: np.ndarray, lanes: int, layer: int) -> dict[str, bytes]:
    """All memory images of one layer: ``{"layer{L}.hex": ..., ".mem", ".coe", ".mif"}``."""
    fan_out, fan_in = np.asarray(signs).shape
    layout = MemoryLayout(fan_in, fan_out, lanes)
    words = weight_memory_words(signs, lanes)
    return {
        f"layer{layer}.hex": hex_image(words, layout.width),
        f"layer{layer}.mem": mem_image(words, layout, layer),
        f"layer{layer}.coe": coe_image(words, layout, layer),
        f"layer{layer}.mif": mif_image(words, layout, layer),
    }


def read_hex_image(payload: bytes, layout: MemoryLayout) -> np.ndarray:
    """Words of a ``layer{L}.hex`` image (used by ``--from-bits`` to cross-check it against the .bin)."""
    try:
        lines = payload.decode("ascii").split()
        words = np.array([int(line, 16) for line in lines], dtype=np.uint64)
    except (UnicodeDecodeError, ValueError, OverflowError) as error:
        raise Bs4nnError(f"hex image is not one hexadecimal word per line ({error})") from error
    if len(words) != layout.depth:
        raise Bs4nnError(f"hex image holds {len(words)} words, the layout needs {layout.depth}")
    if layout.width < 64 and (words >> np.uint64(layout.width)).any():
        raise Bs4nnError(f"hex image holds words wider than {layout.width} bits")
    return words

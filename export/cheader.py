"""``bs4nn_model.h``: the exported network as C constants, for the firmware's inference routine.

The sign bits are the ``layer{L}.bin`` bytes verbatim (row ``j`` = output neuron ``j``,
``row_bytes = ceil(fan_in / 8)`` bytes, input ``i`` at byte ``i / 8``, bit ``7 - i % 8``;
1 = +1, 0 = -1), so the firmware reads exactly what the golden model reads.  Names (see
``export/README.md``): ``BS4NN_N_LAYERS``, ``BS4NN_TMAX``, ``BS4NN_IMAX``, ``BS4NN_N_INPUTS``,
``BS4NN_N_OUTPUTS``, ``BS4NN_MAX_LAYER_SIZE``, ``BS4NN_TIME_BITS``, per layer
``BS4NN_LAYER{L}_FAN_IN`` / ``_FAN_OUT`` / ``_ROW_BYTES`` / ``_THRESHOLD_COUNT`` / ``_COUNTER_BITS``,
arrays ``BS4NN_LAYER_SIZES[]``, ``BS4NN_THRESHOLD_COUNTS[]``, ``BS4NN_LAYER_ROW_BYTES[]``,
``bs4nn_layer{L}_bits[]``, ``bs4nn_layer_bits[]`` and the macro ``BS4NN_SIGN_BIT``.  Included after
the firmware's ``bs4nn.h`` it also defines ``bs4nn_exported_model``, ready for ``bs4nn_infer``.
"""

from __future__ import annotations

import numpy as np

from bs4nn.export.bitmodel import pack_rows
from bs4nn.export.layout import counter_bits, time_bits
from bs4nn.export.memfiles import hex_columns, text_table
from bs4nn.sim.golden import IntegerNetwork
from bs4nn.sim.semantics import CODING_RULE

HEADER_NAME = "bs4nn_model.h"
BYTES_PER_LINE = 16
BYTE_DIGITS = 2


def c_byte_array(payload: bytes) -> str:
    """Initialiser lines ``0x12, 0x34, ...``, ``BYTES_PER_LINE`` bytes per line."""
    values = np.frombuffer(payload, dtype=np.uint8)
    cells = text_table(b"0x", hex_columns(values, BYTE_DIGITS), b", ", rows=len(values)).decode()
    cell = len("0x00, ")
    line = cell * BYTES_PER_LINE
    return "\n".join("    " + cells[start : start + line].rstrip() for start in range(0, len(cells), line))


def c_header(network: IntegerNetwork, dataset: str = "") -> str:
    """The whole header text."""
    sizes = network.sizes
    n_layers = len(network.layers)
    row_bytes = [-(-layer.fan_in // 8) for layer in network.layers]
    lines = [
        f"/* {HEADER_NAME}: a BS4NN binary spiking network exported by bs4nn-export. Do not edit.",
        " *",
        f" * Input coding: {CODING_RULE}.",
        " * Each neuron counts +1/-1 per presynaptic spike, all spikes of step t integrated layer by layer",
        " * within step t; it fires once, at the first step with count >= its layer's threshold count,",
        " * and is never reset. Decision: earliest output spike (ties: lowest index), else largest counter.",
        " *",
        " * bs4nn_layer{L}_bits: row j = output neuron j, BS4NN_LAYER{L}_ROW_BYTES bytes; input i is bit",
        " * 7 - i % 8 of byte i / 8 (MSB first); 1 = +1, 0 = -1; padding bits are 0. Same bytes as layer{L}.bin.",
        " */",
        "#ifndef BS4NN_MODEL_H",
        "#define BS4NN_MODEL_H",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        "#if defined(__GNUC__) || defined(__clang__)",
        "#define BS4NN_UNUSED __attribute__((unused))",
        "#else",
        "#define BS4NN_UNUSED",
        "#endif",
        "",
        f'#define BS4NN_DATASET "{dataset}"',
        f"#define BS4NN_N_LAYERS {n_layers}",
        f"#define BS4NN_TMAX {network.tmax}",
        f"#define BS4NN_IMAX {network.imax}",
        f"#define BS4NN_TIME_BITS {time_bits(network.tmax)}",
        f"#define BS4NN_N_INPUTS {sizes[0]}",
        f"#define BS4NN_N_OUTPUTS {sizes[-1]}",
        f"#define BS4NN_MAX_LAYER_SIZE {max(sizes)}",
        "",
    ]
    for index, (layer, n_bytes) in enumerate(zip(network.layers, row_bytes, strict=True)):
        lines += [
            f"#define BS4NN_LAYER{index}_FAN_IN {layer.fan_in}",
            f"#define BS4NN_LAYER{index}_FAN_OUT {layer.fan_out}",
            f"#define BS4NN_LAYER{index}_ROW_BYTES {n_bytes}",
            f"#define BS4NN_LAYER{index}_THRESHOLD_COUNT {layer.threshold_count}",
            f"#define BS4NN_LAYER{index}_COUNTER_BITS {counter_bits(layer.fan_in, layer.threshold_count)}",
            "",
        ]
    lines += [
        "/* Sign of input i towards neuron j in a layer's bits: 1 = +1, 0 = -1. */",
        "#define BS4NN_SIGN_BIT(bits, row_bytes, j, i) \\",
        "    ((unsigned)((bits)[(size_t)(j) * (row_bytes) + ((size_t)(i) >> 3)] >> (7u - ((unsigned)(i) & 7u))) & 1u)",
        "",
        f"static const uint32_t BS4NN_LAYER_SIZES[BS4NN_N_LAYERS + 1] BS4NN_UNUSED = {{{', '.join(map(str, sizes))}}};",
        "static const int32_t BS4NN_THRESHOLD_COUNTS[BS4NN_N_LAYERS] BS4NN_UNUSED = "
        f"{{{', '.join(str(layer.threshold_count) for layer in network.layers)}}};",
        "static const uint32_t BS4NN_LAYER_ROW_BYTES[BS4NN_N_LAYERS] BS4NN_UNUSED = "
        f"{{{', '.join(map(str, row_bytes))}}};",
        "",
    ]
    for index, layer in enumerate(network.layers):
        lines += [
            f"static const uint8_t bs4nn_layer{index}_bits[BS4NN_LAYER{index}_FAN_OUT * BS4NN_LAYER{index}_ROW_BYTES]"
            " BS4NN_UNUSED = {",
            c_byte_array(pack_rows(layer.signs)),
            "};",
            "",
        ]
    pointers = ", ".join(f"bs4nn_layer{index}_bits" for index in range(n_layers))
    firmware_layers = ", ".join(
        f"{{{layer.fan_in}u, {layer.fan_out}u, {layer.threshold_count}, bs4nn_layer{index}_bits}}"
        for index, layer in enumerate(network.layers)
    )
    lines += [
        f"static const uint8_t *const bs4nn_layer_bits[BS4NN_N_LAYERS] BS4NN_UNUSED = {{{pointers}}};",
        "",
        "#ifdef BS4NN_H",
        "/* The firmware's bs4nn.h was included first: the model, ready for bs4nn_infer(). */",
        f"static const bs4nn_layer bs4nn_exported_layers[BS4NN_N_LAYERS] BS4NN_UNUSED = {{{firmware_layers}}};",
        "static const bs4nn_model bs4nn_exported_model BS4NN_UNUSED = {",
        "    BS4NN_N_LAYERS, BS4NN_TMAX, BS4NN_IMAX, bs4nn_exported_layers};",
        "#endif",
        "",
        "#endif /* BS4NN_MODEL_H */",
        "",
    ]
    return "\n".join(lines)

"""``bs4nn_model.h``: the exported network as C constants, for the firmware's inference routine.

Either family: a BS4NN network (below), or a B1 network (``BS4NN_MODEL_FAMILY 1``), whose header
adds ``BS4NN_DECISION_LATENCY``, per layer ``_WEIGHT_BITS`` / ``_POTENTIAL_BITS`` (hidden layers:
``_RAMP`` / ``_WINDOW``), arrays ``BS4NN_WEIGHT_BITS[]``, ``BS4NN_RAMPS[]``, ``BS4NN_WINDOWS[]``
(0 for the output layer) and ``bs4nn_layer{L}_bias[]`` (int32), and whose ``bs4nn_layer{L}_bits``
are the B1 ``layer{L}.bin`` bytes (1 bit: the sign bits below; b bits: two's-complement fields,
MSB first, :func:`bs4nn.export.b1bits.pack_weight_rows`).  It has no threshold names.

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

from bs4nn.errors import Bs4nnError
from bs4nn.export.b1bits import pack_weight_rows
from bs4nn.export.bitmodel import pack_rows
from bs4nn.export.layout import counter_bits, time_bits
from bs4nn.export.memfiles import hex_columns, text_table
from bs4nn.sim.b1 import B1Network
from bs4nn.sim.golden import IntegerNetwork
from bs4nn.sim.semantics import CODING_RULE

HEADER_NAME = "bs4nn_model.h"
BYTES_PER_LINE = 16
BYTE_DIGITS = 2
C_POTENTIAL_BITS = 32  # the C routine (firmware/c) holds B1 potentials and biases in int32
FAMILY_CODES = {"bs4nn": 0, "b1": 1}  # bs4nn.h: BS4NN_FAMILY_BS4NN, BS4NN_FAMILY_B1


def c_byte_array(payload: bytes) -> str:
    """Initialiser lines ``0x12, 0x34, ...``, ``BYTES_PER_LINE`` bytes per line."""
    values = np.frombuffer(payload, dtype=np.uint8)
    cells = text_table(b"0x", hex_columns(values, BYTE_DIGITS), b", ", rows=len(values)).decode()
    cell = len("0x00, ")
    line = cell * BYTES_PER_LINE
    return "\n".join("    " + cells[start : start + line].rstrip() for start in range(0, len(cells), line))


def check_c_potentials(network: B1Network) -> None:
    """Refuse a B1 network whose potentials or biases the C routine's int32 cannot hold."""
    for index, layer in enumerate(network.layers):
        needed = layer.needed_potential_bits(network.input_window(index))
        if needed > C_POTENTIAL_BITS:
            raise Bs4nnError(f"layer {index}: B1 potentials need {needed} bits; the C routine holds {C_POTENTIAL_BITS}")


def _semantics_comment(network: IntegerNetwork | B1Network) -> list[str]:
    if isinstance(network, B1Network):
        return [
            f"/* {HEADER_NAME}: a B1 time-to-first-spike network exported by bs4nn-export. Do not edit.",
            " *",
            f" * Input coding: {CODING_RULE}; an input spike at step k has the value tmax - k.",
            " * A layer's potential V_j = bias_j + sum_i w_ji x_i; a hidden layer passes x_j = clip(floor(V_j / ramp),",
            " * 0, window) on (spike step window - x_j); the output potentials are the scores, the decision their",
            " * argmax (ties: lowest index) at step BS4NN_DECISION_LATENCY.",
            " *",
            " * bs4nn_layer{L}_bits: row j = output neuron j, BS4NN_LAYER{L}_ROW_BYTES bytes of",
            " * BS4NN_LAYER{L}_WEIGHT_BITS-bit fields, MSB first (1 bit: 1 = +1, 0 = -1; b bits: two's",
            " * complement); same bytes as layer{L}.bin.",
            " */",
        ]
    return [
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
    ]


def _c_array(c_type: str, name: str, length: str, values) -> str:
    return f"static const {c_type} {name}[{length}] BS4NN_UNUSED = {{{', '.join(map(str, values))}}};"


def _layer_lines(network: IntegerNetwork | B1Network, row_bytes: list[int]) -> list[str]:
    """The per-layer defines and the family's per-layer arrays."""
    b1 = isinstance(network, B1Network)
    lines = []
    for index, (layer, n_bytes) in enumerate(zip(network.layers, row_bytes, strict=True)):
        name = f"#define BS4NN_LAYER{index}"
        lines += [f"{name}_FAN_IN {layer.fan_in}", f"{name}_FAN_OUT {layer.fan_out}", f"{name}_ROW_BYTES {n_bytes}"]
        if b1:
            potential_bits = layer.potential_bits or layer.needed_potential_bits(network.input_window(index))
            lines += [f"{name}_WEIGHT_BITS {layer.weight_bits}", f"{name}_POTENTIAL_BITS {potential_bits}"]
            lines += [f"{name}_RAMP {layer.ramp}", f"{name}_WINDOW {layer.window}"] if layer.hidden else []
        else:
            lines += [
                f"{name}_THRESHOLD_COUNT {layer.threshold_count}",
                f"{name}_COUNTER_BITS {counter_bits(layer.fan_in, layer.threshold_count)}",
            ]
        lines.append("")
    lines += [
        "/* Sign of input i towards neuron j in a layer's bits: 1 = +1, 0 = -1 (1-bit weights). */",
        "#define BS4NN_SIGN_BIT(bits, row_bytes, j, i) \\",
        "    ((unsigned)((bits)[(size_t)(j) * (row_bytes) + ((size_t)(i) >> 3)] >> (7u - ((unsigned)(i) & 7u))) & 1u)",
        "",
        _c_array("uint32_t", "BS4NN_LAYER_SIZES", "BS4NN_N_LAYERS + 1", network.sizes),
    ]
    if b1:
        lines += [
            _c_array(
                "uint32_t", "BS4NN_WEIGHT_BITS", "BS4NN_N_LAYERS", [layer.weight_bits for layer in network.layers]
            ),
            _c_array("uint32_t", "BS4NN_RAMPS", "BS4NN_N_LAYERS", [layer.ramp or 0 for layer in network.layers]),
            _c_array("uint32_t", "BS4NN_WINDOWS", "BS4NN_N_LAYERS", [layer.window or 0 for layer in network.layers]),
        ]
    else:
        counts = [layer.threshold_count for layer in network.layers]
        lines.append(_c_array("int32_t", "BS4NN_THRESHOLD_COUNTS", "BS4NN_N_LAYERS", counts))
    return [*lines, _c_array("uint32_t", "BS4NN_LAYER_ROW_BYTES", "BS4NN_N_LAYERS", row_bytes), ""]


def _data_lines(network: IntegerNetwork | B1Network) -> list[str]:
    """Each layer's weight bytes (the ``layer{L}.bin`` bytes) and, for B1, its biases."""
    b1 = isinstance(network, B1Network)
    lines = []
    for index, layer in enumerate(network.layers):
        payload = pack_weight_rows(layer.weights, layer.weight_bits) if b1 else pack_rows(layer.signs)
        lines += [
            f"static const uint8_t bs4nn_layer{index}_bits[BS4NN_LAYER{index}_FAN_OUT * BS4NN_LAYER{index}_ROW_BYTES]"
            " BS4NN_UNUSED = {",
            c_byte_array(payload),
            "};",
            "",
        ]
        if b1:  # INT32_MIN is no literal in C: the one value written as an expression
            biases = ", ".join("(-2147483647 - 1)" if b == -(1 << 31) else str(int(b)) for b in layer.bias)
            array = f"bs4nn_layer{index}_bias[BS4NN_LAYER{index}_FAN_OUT]"
            lines += [f"static const int32_t {array} BS4NN_UNUSED = {{{biases}}};", ""]
    return lines


def _firmware_model_lines(network: IntegerNetwork | B1Network) -> list[str]:
    """``bs4nn_exported_layers`` / ``bs4nn_exported_model`` in the field order of ``bs4nn.h``."""
    b1 = isinstance(network, B1Network)
    layers = []
    for index, layer in enumerate(network.layers):
        if b1:
            bias, ramp, window = f"bs4nn_layer{index}_bias", layer.ramp or 0, layer.window or 0
            family = f"0, bs4nn_layer{index}_bits, {layer.weight_bits}u, {bias}, {ramp}u, {window}u"
        else:
            family = f"{layer.threshold_count}, bs4nn_layer{index}_bits, 1u, NULL, 0u, 0u"
        layers.append(f"{{{layer.fan_in}u, {layer.fan_out}u, {family}}}")
    return [
        "#ifdef BS4NN_H",
        "/* The firmware's bs4nn.h was included first: the model, ready for bs4nn_infer(). */",
        f"static const bs4nn_layer bs4nn_exported_layers[BS4NN_N_LAYERS] BS4NN_UNUSED = {{{', '.join(layers)}}};",
        "static const bs4nn_model bs4nn_exported_model BS4NN_UNUSED = {",
        "    BS4NN_N_LAYERS, BS4NN_TMAX, BS4NN_IMAX, bs4nn_exported_layers, BS4NN_MODEL_FAMILY};",
        "#endif",
    ]


def c_header(network: IntegerNetwork | B1Network, dataset: str = "") -> str:
    """The whole header text, for either family."""
    b1 = isinstance(network, B1Network)
    if b1:
        check_c_potentials(network)
    sizes = network.sizes
    n_layers = len(network.layers)
    row_bytes = [-(-layer.fan_in * getattr(layer, "weight_bits", 1) // 8) for layer in network.layers]
    horizon = network.latency if b1 else network.tmax
    lines = [
        *_semantics_comment(network),
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
        f"#define BS4NN_MODEL_FAMILY {FAMILY_CODES['b1' if b1 else 'bs4nn']}",
        f"#define BS4NN_N_LAYERS {n_layers}",
        f"#define BS4NN_TMAX {network.tmax}",
        f"#define BS4NN_IMAX {network.imax}",
        f"#define BS4NN_TIME_BITS {time_bits(horizon)}",
        *([f"#define BS4NN_DECISION_LATENCY {network.latency}"] if b1 else []),
        f"#define BS4NN_N_INPUTS {sizes[0]}",
        f"#define BS4NN_N_OUTPUTS {sizes[-1]}",
        f"#define BS4NN_MAX_LAYER_SIZE {max(sizes)}",
        "",
        *_layer_lines(network, row_bytes),
        *_data_lines(network),
        f"static const uint8_t *const bs4nn_layer_bits[BS4NN_N_LAYERS] BS4NN_UNUSED = "
        f"{{{', '.join(f'bs4nn_layer{index}_bits' for index in range(n_layers))}}};",
        "",
        *_firmware_model_lines(network),
        "",
        "#endif /* BS4NN_MODEL_H */",
        "",
    ]
    return "\n".join(lines)

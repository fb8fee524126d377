"""The B1 part of the bit-model folder: weight files, manifest layer fields, and reading them back.

A B1 manifest says ``"model": "b1"``; each layer lists ``fan_in``, ``fan_out``, ``weights`` (its
file), ``weight_bits``, ``bias`` (a list of integers), ``potential_bits`` (the signed width of
its potentials, for the core) and, for hidden layers, ``ramp`` and ``window``.  Weights pack
row-major by output neuron, input 0 first, each row padded with 0 bits to a whole byte, most
significant bit first: 1-bit weights exactly as BS4NN's sign bits (1 = +1, 0 = -1), b-bit
weights as two's-complement fields of ``weight_bits`` bits.

A leaf module (NumPy and the B1 network types only): :mod:`bs4nn.export.bitmodel`, the one
reader and writer of the folder, calls it when a manifest's model is ``b1``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.sim.b1 import B1Layer, B1Network, weight_range

WEIGHT_RULE = "1 bit: 1 = +1, 0 = -1; b bits: two's complement, most significant bit first"


def weight_fields(weights: np.ndarray, bits: int) -> np.ndarray:
    """The unsigned ``bits``-bit field of each integer weight (1 bit: 1 for +1, 0 for -1)."""
    weights = np.asarray(weights, dtype=np.int64)
    if bits == 1:
        return (weights > 0).astype(np.uint8)
    return (weights & ((1 << bits) - 1)).astype(np.uint8)


def pack_weight_rows(weights: np.ndarray, bits: int) -> bytes:
    """A layer's weight file: each row's fields MSB first, the row padded to whole bytes."""
    fields = weight_fields(weights, bits)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint8)
    row_bits = ((fields[:, :, None] >> shifts) & 1).reshape(fields.shape[0], -1)
    return np.packbits(row_bits, axis=1, bitorder="big").tobytes()


def unpack_weight_rows(payload: bytes, fan_out: int, fan_in: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_weight_rows`: the integer weights ``(fan_out, fan_in)`` as int16."""
    row_bytes = -(-fan_in * bits // 8)
    if len(payload) != fan_out * row_bytes:
        raise Bs4nnError(
            f"{len(payload)} weight bytes, expected {fan_out * row_bytes} for {fan_out}x{fan_in} x {bits} bits"
        )
    rows = np.unpackbits(np.frombuffer(payload, dtype=np.uint8).reshape(fan_out, row_bytes), axis=1, bitorder="big")
    fields = rows[:, : fan_in * bits].reshape(fan_out, fan_in, bits)
    values = (fields.astype(np.int16) << np.arange(bits - 1, -1, -1, dtype=np.int16)).sum(axis=2)
    if bits == 1:
        return np.where(values == 1, 1, -1).astype(np.int16)
    return np.where(values >= 1 << (bits - 1), values - (1 << bits), values).astype(np.int16)


def b1_layer_entries(network: B1Network) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """The weight files and the manifest's per-layer entries of a B1 network."""
    files, entries = {}, []
    for index, layer in enumerate(network.layers):
        name = f"layer{index}.bin"
        files[name] = pack_weight_rows(layer.weights, layer.weight_bits)
        entry: dict[str, Any] = {
            "index": index,
            "fan_in": layer.fan_in,
            "fan_out": layer.fan_out,
            "weights": name,
            "weight_bits": layer.weight_bits,
            "bias": [int(value) for value in layer.bias],
            "potential_bits": layer.potential_bits or layer.needed_potential_bits(network.input_window(index)),
        }
        if layer.hidden:
            entry.update(ramp=int(layer.ramp), window=int(layer.window))
        entries.append(entry)
    return files, entries


def _integer(entry: Mapping[str, Any], key: str, where: str) -> int | None:
    value = entry.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise Bs4nnError(f"{where}: {key} must be an integer, got {value!r}")
    return value


def b1_network_from_manifest(manifest: Mapping[str, Any], read: Callable[[str], bytes], where: str) -> B1Network:
    """The B1 network a (hash-checked) manifest describes; ``read(name)`` gives a listed file's bytes."""
    layers = []
    for index, entry in enumerate(manifest["layers"]):
        at = f"{where}: layer {index}"
        bits = _integer(entry, "weight_bits", at)
        try:
            weight_range(bits if bits is not None else 0)
        except ValueError as error:
            raise Bs4nnError(f"{at}: {error}") from error
        bias = entry.get("bias")
        if not isinstance(bias, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in bias):
            raise Bs4nnError(f"{at}: bias must be a list of integers")
        weights = unpack_weight_rows(read(entry["weights"]), entry["fan_out"], entry["fan_in"], bits)
        try:
            layer = B1Layer(
                weights,
                np.asarray(bias, dtype=np.int64),  # OverflowError beyond 64 bits
                bits,
                _integer(entry, "ramp", at),
                _integer(entry, "window", at),
                _integer(entry, "potential_bits", at),
            )
        except (ValueError, OverflowError) as error:
            raise Bs4nnError(f"{at}: {error}") from error
        layers.append(layer)
    try:
        return B1Network(tuple(layers), tmax=manifest["tmax"], imax=manifest["imax"])
    except ValueError as error:
        raise Bs4nnError(f"{where}: {error}") from error

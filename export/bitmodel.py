"""The bit-model folder: the contract between the exporter and everything after it.

A folder holds ``manifest.json`` and, per layer ``L``, ``layer{L}.bin``: the sign bits row-major
by output neuron (row ``j`` = neuron ``j``'s fan-in, input 0 first), each row padded with 0 bits
to a whole byte, most significant bit first; bit 1 = +1, bit 0 = -1.  Memory images and other
files may sit beside them; every file the manifest lists under ``files`` carries its sha256.

:func:`load_bit_model` is the one reader: the golden model, the RTL generator, the testbenches
and the firmware all get their :class:`~bs4nn.sim.golden.IntegerNetwork` from it.

:func:`integer_network` is the one conversion from real weights and alphas to that network
(signs, alphas rounded to two decimals, exact integer thresholds): the trainer's evaluation and
the exporter both call it, so an exported model scores what its training run reported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
from bitarray import bitarray

from bs4nn.errors import Bs4nnError
from bs4nn.export.b1bits import WEIGHT_RULE, b1_layer_entries, b1_network_from_manifest
from bs4nn.export.layout import counter_bits
from bs4nn.fileio import output_directory, plain_file_name, sha256_bytes, sha256_path
from bs4nn.lanes import DEFAULT_LANES
from bs4nn.sim.b1 import MODEL as B1_MODEL
from bs4nn.sim.b1 import B1Network
from bs4nn.sim.golden import IntegerLayer, IntegerNetwork
from bs4nn.sim.semantics import CODING_RULE, exact_decimal, threshold_count

FORMAT = "bs4nn-bit-model"
VERSION = 1
MANIFEST = "manifest.json"
ALPHA_DECIMALS = 2
SIGN_RULE = "bit 1 = +1 for w >= 0 (a weight of exactly 0 is +1), bit 0 = -1 for w < 0"
SELF_DIGEST = "manifest_sha256"
"""The manifest's hash of its own fields (:func:`manifest_digest`)."""
WRITER = "bs4nn-export"
"""The name in a bit-model folder's ownership record (:func:`bs4nn.fileio.output_directory`)."""
BS4NN_MODEL = "bs4nn"
"""The ``model`` field of a BS4NN manifest; a folder without one (written before B1) is BS4NN too."""


def sign_bits(weights: np.ndarray) -> np.ndarray:
    """0/1 signs of real (or +-1) weights: ``w >= 0`` -> 1 (+1), ``w < 0`` -> 0 (-1)."""
    weights = np.asarray(weights)
    if not np.isfinite(weights).all():
        raise Bs4nnError("weights hold NaN or inf")
    return (weights >= 0).astype(np.uint8)


def quantize_alpha(alpha: float, decimals: int = ALPHA_DECIMALS) -> Decimal:
    """``alpha`` rounded to ``decimals`` decimals (half to even), as an exact decimal."""
    quantized = exact_decimal(alpha).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    if quantized <= 0:
        raise Bs4nnError(f"alpha {alpha} rounds to {quantized}: it must be positive")
    return quantized


def integer_network(
    weights: Sequence[np.ndarray],
    alphas: Sequence[float],
    thetas: Sequence[float],
    tmax: int,
    imax: int,
    decimals: int = ALPHA_DECIMALS,
) -> IntegerNetwork:
    """The deployed integer network of a binary BS4NN: signs and ``ceil(theta / alpha_q)``."""
    layers = []
    for index, (weight, alpha, theta) in enumerate(zip(weights, alphas, thetas, strict=True)):
        try:
            count = threshold_count(theta, quantize_alpha(alpha, decimals))
        except ValueError as error:
            raise Bs4nnError(f"layer {index}: {error}") from error
        layers.append(IntegerLayer(sign_bits(weight), count))
    return IntegerNetwork(tuple(layers), tmax=tmax, imax=imax)


def pack_rows(signs: np.ndarray) -> bytes:
    """``layer{L}.bin`` bytes: rows MSB first, each padded with 0 bits to a whole byte."""
    payload = bytearray()
    for row in np.asarray(signs, dtype=np.uint8):
        bits = bitarray(endian="big")
        bits.pack(row.tobytes())
        bits.fill()
        payload += bits.tobytes()
    return bytes(payload)


def unpack_rows(payload: bytes, fan_out: int, fan_in: int) -> np.ndarray:
    """Inverse of :func:`pack_rows`."""
    row_bytes = -(-fan_in // 8)
    if len(payload) != fan_out * row_bytes:
        raise Bs4nnError(f"{len(payload)} bytes of signs, expected {fan_out * row_bytes} for {fan_out}x{fan_in}")
    rows = np.frombuffer(payload, dtype=np.uint8).reshape(fan_out, row_bytes)
    return np.unpackbits(rows, axis=1, bitorder="big")[:, :fan_in]


@dataclass(frozen=True)
class BitModel:
    """A loaded bit-model folder: the integer network (BS4NN or B1, as ``model`` says) plus its manifest."""

    network: IntegerNetwork | B1Network
    manifest: dict[str, Any]
    path: Path

    @property
    def model(self) -> str:
        return self.manifest.get("model", BS4NN_MODEL)

    @property
    def lanes(self) -> int:
        """The lane count the folder's memory images are laid out for (the default of every stage)."""
        return int(self.manifest.get("lanes", DEFAULT_LANES))


def network_inputs(network: IntegerNetwork, array: Any, what: str, *, spike_times: bool = False) -> np.ndarray:
    """``array`` as ``(n, fan_in)`` rows for ``network``: 8-bit-style pixels in ``0..imax``, or with
    ``spike_times`` input spike times in ``0..tmax`` (``tmax``: never).

    Anything else (another image size, a pixel of 300, a negative time) is refused here, before any
    model or simulator runs, so that it is never reported as a hardware mismatch.
    """
    array = np.asarray(array)
    n_in = network.layers[0].fan_in
    if array.dtype.kind not in "iu" or array.ndim == 0:
        raise Bs4nnError(f"{what}: expected integer {'spike times' if spike_times else 'pixels'}, got {array.dtype}")
    if array.ndim >= 2 and int(np.prod(array.shape[1:])) == n_in:
        rows = array.reshape(len(array), n_in)
    elif array.size == n_in:
        rows = array.reshape(1, n_in)
    else:
        raise Bs4nnError(f"{what}: items of shape {array.shape[1:] or array.shape}, but the network has {n_in} inputs")
    if not len(rows):
        raise Bs4nnError(f"{what}: holds no images")
    high, kind = (network.tmax, "spike times") if spike_times else (network.imax, "pixels")
    if rows.size and (int(rows.min()) < 0 or int(rows.max()) > high):
        raise Bs4nnError(f"{what}: {kind} must lie in 0..{high}, got {int(rows.min())}..{int(rows.max())}")
    return rows


def write_bit_model(
    network: IntegerNetwork | B1Network,
    out_dir: str | os.PathLike,
    *,
    layer_info: Sequence[Mapping[str, Any]] = (),
    extra_files: Mapping[str, bytes] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write the folder atomically: everything appears at once, or nothing does.

    ``layer_info`` adds per-layer manifest fields (alpha, alpha_q, theta, memory file names...);
    ``extra_files`` are more files (memory images, C header) to write and hash; ``meta`` adds
    top-level manifest fields (source checkpoint, accuracy, lanes...).
    """
    files: dict[str, bytes] = {}
    layers = []
    family = {"model": BS4NN_MODEL, "sign_rule": SIGN_RULE}
    if isinstance(network, B1Network):
        files, layers = b1_layer_entries(network)
        family = {"model": B1_MODEL, "weight_rule": WEIGHT_RULE}
        for entry, info in zip(layers, layer_info, strict=False):
            entry.update(info)
    for index, layer in enumerate(network.layers if not layers else ()):
        name = f"layer{index}.bin"
        files[name] = pack_rows(layer.signs)
        entry = {
            "index": index,
            "fan_in": layer.fan_in,
            "fan_out": layer.fan_out,
            "threshold_count": layer.threshold_count,
            "counter_bits": counter_bits(layer.fan_in, layer.threshold_count),
            "weights": name,
        }
        if index < len(layer_info):
            entry.update(layer_info[index])
        layers.append(entry)
    files.update(extra_files or {})
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "tmax": network.tmax,
        "imax": network.imax,
        "coding": CODING_RULE,
        **family,
        **(meta or {}),
        "layers": layers,
        "files": {name: sha256_bytes(payload) for name, payload in sorted(files.items())},
    }
    manifest = json.loads(json.dumps(manifest))  # as it reads back: tuples are lists
    manifest[SELF_DIGEST] = manifest_digest(manifest)
    out_dir = Path(out_dir)
    with output_directory(out_dir, WRITER, legacy=legacy_entries) as tmp:
        for name, payload in files.items():
            (tmp / name).write_bytes(payload)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir


def legacy_entries(folder: Path) -> list[str] | None:
    """What a bit-model folder written before ownership records holds: its manifest and listed files."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not isinstance(manifest.get("files"), dict)
    ):
        return None
    return [MANIFEST, *(name for name in manifest["files"] if plain_file_name(name))]


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 of every field of the manifest but :data:`SELF_DIGEST`, as canonical JSON.

    The whole manifest is the block that defines the network: sizes, threshold counts, tmax,
    lanes, and whatever fields another network family adds (its ``model``, biases, ramps...), so
    a field edited by hand (``threshold_count`` 25 -> 3) is refused without a rule for each field.
    """
    body = {key: value for key, value in manifest.items() if key != SELF_DIGEST}
    return sha256_bytes(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _check_manifest_shape(manifest: Any, manifest_path: Path) -> None:
    """The manifest's own integrity: an object of this format, sealed by its digest, plain file names."""
    if not isinstance(manifest, dict):
        raise Bs4nnError(f"{manifest_path}: malformed manifest (a JSON object expected, got {type(manifest).__name__})")
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise Bs4nnError(f"{manifest_path}: not a {FORMAT} v{VERSION} manifest")
    if SELF_DIGEST not in manifest:
        raise Bs4nnError(
            f"{manifest_path}: no {SELF_DIGEST} (written by an older bs4nn-export): export the model again"
        )
    if manifest[SELF_DIGEST] != manifest_digest(manifest):
        raise Bs4nnError(
            f"{manifest_path}: its fields do not match its {SELF_DIGEST} (edited by hand or corrupt): "
            "export the model again instead of editing the manifest"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(digest, str) for digest in files.values()):
        raise Bs4nnError(f"{manifest_path}: malformed manifest ('files' must map file names to sha256)")
    outside = [name for name in files if not plain_file_name(name)]
    if outside:
        raise Bs4nnError(f"{manifest_path}: file name {outside[0]!r} is not a plain name inside the folder")
    if not isinstance(manifest.get("layers"), list) or not all(isinstance(e, dict) for e in manifest["layers"]):
        raise Bs4nnError(f"{manifest_path}: malformed manifest ('layers' must be a list of objects)")


def load_bit_model(path: str | os.PathLike) -> BitModel:
    """Read a bit-model folder, verify the manifest's own digest and every listed file's sha256,
    return the integer network."""
    folder = Path(path)
    manifest_path = folder / MANIFEST if folder.is_dir() else folder
    folder = manifest_path.parent
    if not manifest_path.is_file():
        raise Bs4nnError(f"{manifest_path}: no bit-model manifest here (make one with bs4nn-export --to-bits)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise Bs4nnError(f"{manifest_path}: not valid JSON ({error})") from error
    _check_manifest_shape(manifest, manifest_path)
    for name, digest in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise Bs4nnError(f"{file}: listed in the manifest but missing")
        if sha256_path(file) != digest:
            raise Bs4nnError(f"{file}: sha256 does not match the manifest (file changed or corrupt)")
    if manifest.get("model", BS4NN_MODEL) == B1_MODEL:
        try:
            network = b1_network_from_manifest(
                manifest, lambda name: _listed_file(folder, manifest, name), str(manifest_path)
            )
        except (KeyError, TypeError) as error:
            raise Bs4nnError(f"{manifest_path}: malformed manifest ({error!r})") from error
        return BitModel(network, manifest, folder)
    if manifest.get("model", BS4NN_MODEL) != BS4NN_MODEL:
        raise Bs4nnError(f"{manifest_path}: model {manifest['model']!r} is neither {BS4NN_MODEL} nor {B1_MODEL}")
    layers = []
    try:
        for entry in manifest["layers"]:
            name = entry["weights"]
            if not isinstance(name, str) or name not in manifest["files"]:
                raise Bs4nnError(f"{manifest_path}: {name} has no sha256 in the manifest")
            signs = unpack_rows((folder / name).read_bytes(), entry["fan_out"], entry["fan_in"])
            layers.append(IntegerLayer(signs, entry["threshold_count"]))
        network = IntegerNetwork(tuple(layers), tmax=manifest["tmax"], imax=manifest["imax"])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise Bs4nnError(f"{manifest_path}: malformed manifest ({error!r})") from error
    return BitModel(network, manifest, folder)


def _listed_file(folder: Path, manifest: Mapping[str, Any], name: str) -> bytes:
    """A file the manifest hashes (already checked); any other name is refused."""
    if name not in manifest.get("files", {}):
        raise Bs4nnError(f"{folder / MANIFEST}: {name} has no sha256 in the manifest")
    return (folder / name).read_bytes()

"""The checkpoint: the contract between the trainer and the exporter.

One ``.npz`` file, readable without pickle: a JSON header (architecture, alphas, thetas, time
constants, hyperparameters, seed, epoch, metrics history) in the array ``header`` and the real
weights ``weight_{L}`` (shape ``(fan_out, fan_in)``, float32) plus any optimiser arrays
``state_{name}``.  Written atomically, so a killed run leaves the previous checkpoint intact.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.fileio import atomic_write_bytes
from bs4nn.sim.semantics import IMAX, TMAX

FORMAT = "bs4nn-checkpoint"
VERSION = 1

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
"""The package's shipped models, ``NAME.npz`` + ``NAME.json``: the trainer writes them, the exporter reads them."""


RUN_MODEL_FILES = ("calibrated.npz", "best.npz", "checkpoint.npz")
"""A run folder's model, in order of preference: thresholds calibrated on validation, the best
epoch by validation, the last epoch."""


def run_model_path(run_dir: str | os.PathLike) -> Path:
    """The checkpoint that stands for a training run folder (first of :data:`RUN_MODEL_FILES`)."""
    run_dir = Path(run_dir)
    for name in RUN_MODEL_FILES:
        if (run_dir / name).is_file():
            return run_dir / name
    raise Bs4nnError(f"{run_dir}: run folder without {' or '.join(RUN_MODEL_FILES)}")


@dataclass
class Checkpoint:
    """A trained (or partly trained) BS4NN; ``binary=False`` is the S4NN real-valued mode."""

    sizes: list[int]  # neurons per layer, input first: [784, 600, 10]
    weights: list[np.ndarray]  # real-valued proxy weights per layer, (fan_out, fan_in)
    alphas: list[float]  # per-layer scale of the binary weights
    thetas: list[float]  # per-layer firing threshold
    tmax: int = TMAX
    imax: int = IMAX
    binary: bool = True
    dataset: str = "mnist"
    seed: int = 0
    epoch: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, np.ndarray] = field(default_factory=dict)  # optimiser / RNG arrays

    def __post_init__(self) -> None:
        n_layers = len(self.sizes) - 1
        if n_layers < 1:
            raise Bs4nnError("a network needs at least an input and an output layer")
        if not (len(self.weights) == len(self.alphas) == len(self.thetas) == n_layers):
            raise Bs4nnError(
                f"{n_layers} layers but {len(self.weights)} weight matrices, "
                f"{len(self.alphas)} alphas, {len(self.thetas)} thetas"
            )
        for index, weight in enumerate(self.weights):
            expected = (self.sizes[index + 1], self.sizes[index])
            if tuple(weight.shape) != expected:
                raise Bs4nnError(f"layer {index} weights are {tuple(weight.shape)}, expected {expected}")
            if not np.isfinite(weight).all():
                raise Bs4nnError(f"layer {index} weights hold NaN or inf")

    def header(self) -> dict[str, Any]:
        fields = asdict(self)
        for key in ("weights", "state"):
            fields.pop(key)
        return {"format": FORMAT, "version": VERSION, **fields}


def checkpoint_bytes(checkpoint: Checkpoint) -> bytes:
    arrays = {f"weight_{i}": np.asarray(w, dtype=np.float32) for i, w in enumerate(checkpoint.weights)}
    arrays.update({f"state_{name}": np.asarray(value) for name, value in checkpoint.state.items()})
    arrays["header"] = np.array(json.dumps(checkpoint.header(), sort_keys=True))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write atomically (temporary file, then rename)."""
    return atomic_write_bytes(path, checkpoint_bytes(checkpoint))


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint; any defect is one clear :class:`Bs4nnError`."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.npz"
    if not path.is_file():
        raise Bs4nnError(f"{path}: checkpoint not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(str(archive["header"]))
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError, EOFError) as error:
        raise Bs4nnError(f"{path}: not a readable bs4nn checkpoint ({error})") from error
    if header.get("format") != FORMAT:
        raise Bs4nnError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("version") != VERSION:
        raise Bs4nnError(f"{path}: checkpoint version {header.get('version')}, this bs4nn reads {VERSION}")
    n_layers = len(header["sizes"]) - 1
    try:
        weights = [arrays[f"weight_{i}"] for i in range(n_layers)]
    except KeyError as error:
        raise Bs4nnError(f"{path}: missing weights {error}") from error
    state = {name.removeprefix("state_"): value for name, value in arrays.items() if name.startswith("state_")}
    fields = {key: value for key, value in header.items() if key not in ("format", "version")}
    try:
        return Checkpoint(weights=weights, state=state, **fields)
    except TypeError as error:
        raise Bs4nnError(f"{path}: malformed header ({error})") from error

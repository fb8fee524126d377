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
import zlib
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


MODELS = ("bs4nn", "b1")
"""The network families a checkpoint (and a bit-model folder) can hold."""

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


ZIP_MAGIC = b"PK\x03\x04"
ARCHIVE_FAULTS = (ValueError, KeyError, zipfile.BadZipFile, zlib.error, EOFError, RecursionError, NotImplementedError)
"""What NumPy and zipfile raise on a damaged or foreign ``.npz``: each is one line for the user."""

RUN_OUTPUTS = (*RUN_MODEL_FILES, "metrics.csv", "metrics.json", "summary.json")
"""Files a training run writes into its folder: a fresh run must not find any of them."""


def check_run_folder(
    run_dir: str | os.PathLike, resume: bool, remedy: str = "add --resume to continue it, or "
) -> None:
    """Refuse an output folder a fresh run would damage: a file, or a folder holding a run.

    A new run over a finished one would overwrite its ``best.npz`` epoch by epoch with a worse model.
    ``remedy``: what the refusal offers before a fresh folder (commands without ``--resume`` give "").
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise Bs4nnError(f"{run_dir}: is a file; --out needs a folder")
    if resume:
        return
    found = [name for name in RUN_OUTPUTS if (run_dir / name).exists()]
    if found:
        raise Bs4nnError(
            f"{run_dir}: holds a training run ({', '.join(found)}); {remedy}give a fresh folder with --out"
        )


@dataclass
class Checkpoint:
    """A trained (or partly trained) BS4NN; ``binary=False`` is the S4NN real-valued mode.

    ``model="b1"`` is a B1 network (train/b1_model.py): ``alphas`` are its per-layer scales
    ``exp(s)``, ``thetas`` its hidden windows ``K_l`` (a hidden neuron fires once its
    pre-activation plus the steps elapsed reaches ``K_l``; 0 for the output layer, which never
    fires), ``biases`` its real biases and ``weight_bits`` its weight width.
    """

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
    model: str = "bs4nn"  # or "b1"
    biases: list[np.ndarray] = field(default_factory=list)  # b1: per layer (fan_out,) float32
    weight_bits: int = 1

    def __post_init__(self) -> None:
        self._check_header_fields()
        n_layers = len(self.sizes) - 1
        if self.model == "b1" and [np.shape(b) for b in self.biases] != [(n,) for n in self.sizes[1:]]:
            raise Bs4nnError(f"a b1 checkpoint needs one bias per neuron of every layer, got {len(self.biases)} arrays")
        if n_layers < 1:
            raise Bs4nnError("a network needs at least an input and an output layer")
        if not (len(self.weights) == len(self.alphas) == len(self.thetas) == n_layers):
            raise Bs4nnError(
                f"{n_layers} layers but {len(self.weights)} weight matrices, "
                f"{len(self.alphas)} alphas, {len(self.thetas)} thetas"
            )
        for index, weight in enumerate(self.weights):
            if not isinstance(weight, np.ndarray) or weight.dtype.kind not in "fiu":
                raise Bs4nnError(f"layer {index} weights are not a numeric array")
            expected = (self.sizes[index + 1], self.sizes[index])
            if tuple(weight.shape) != expected:
                raise Bs4nnError(f"layer {index} weights are {tuple(weight.shape)}, expected {expected}")
            if not np.isfinite(weight).all():
                raise Bs4nnError(f"layer {index} weights hold NaN or inf")

    def _check_header_fields(self) -> None:
        """Types and ranges of the header: a resumed or exported run must not start from NaN or text."""

        def integer(value: Any, low: int) -> bool:
            return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= low

        def positive(value: Any) -> bool:
            number = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
            return number and bool(np.isfinite(value)) and value > 0

        checks = {
            "sizes": isinstance(self.sizes, list | tuple) and all(integer(n, 1) for n in self.sizes),
            "alphas": isinstance(self.alphas, list | tuple) and all(positive(a) for a in self.alphas),
            # b1: the hidden windows, then 0 for the output layer, which never fires
            "thetas": isinstance(self.thetas, list | tuple)
            and all(positive(t) for t in (self.thetas[:-1] if self.model == "b1" else self.thetas))
            and (self.model != "b1" or (len(self.thetas) > 0 and self.thetas[-1] == 0)),
            "model": self.model in MODELS,
            "weight_bits": integer(self.weight_bits, 1) and self.weight_bits <= 8,
            "tmax": integer(self.tmax, 1),
            "imax": integer(self.imax, 1),
            "binary": isinstance(self.binary, bool),
            "dataset": isinstance(self.dataset, str),
            "seed": integer(self.seed, 0),
            "epoch": integer(self.epoch, 0),
            "hyperparameters": isinstance(self.hyperparameters, dict),
            "metrics": isinstance(self.metrics, list) and all(isinstance(m, dict) for m in self.metrics),
            "weights": isinstance(self.weights, list | tuple),
        }
        wrong = [name for name, ok in checks.items() if not ok]
        if wrong:
            shown = ", ".join(f"{name} {getattr(self, name)!r}"[:80] for name in wrong if name != "weights")
            raise Bs4nnError(f"bad header field(s): {shown or 'weights'} (alphas and thetas must be positive)")

    def header(self) -> dict[str, Any]:
        fields = asdict(self)
        for key in ("weights", "state", "biases"):
            fields.pop(key)
        return {"format": FORMAT, "version": VERSION, **fields}


def checkpoint_bytes(checkpoint: Checkpoint) -> bytes:
    arrays = {f"weight_{i}": np.asarray(w, dtype=np.float32) for i, w in enumerate(checkpoint.weights)}
    arrays.update({f"bias_{i}": np.asarray(b, dtype=np.float32) for i, b in enumerate(checkpoint.biases)})
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
        with open(path, "rb") as handle:
            if handle.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
                raise ValueError("not an .npz archive: a checkpoint is a zip of .npy arrays")
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError("a single array, not an .npz archive")
            header = json.loads(str(archive["header"]))
            arrays = {name: archive[name] for name in archive.files}
    except OSError as error:
        raise Bs4nnError(f"{path}: cannot read ({error})") from error
    except ARCHIVE_FAULTS as error:
        raise Bs4nnError(f"{path}: not a readable bs4nn checkpoint ({error})") from error
    if not isinstance(header, dict):
        raise Bs4nnError(f"{path}: header is not a JSON object")
    if header.get("format") != FORMAT:
        raise Bs4nnError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("version") != VERSION:
        raise Bs4nnError(f"{path}: checkpoint version {header.get('version')}, this bs4nn reads {VERSION}")
    sizes = header.get("sizes")
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise Bs4nnError(f"{path}: header without sizes (neurons per layer, input first)")
    try:
        weights = [arrays[f"weight_{i}"] for i in range(len(sizes) - 1)]
    except KeyError as error:
        raise Bs4nnError(f"{path}: missing weights {error}") from error
    state = {name.removeprefix("state_"): value for name, value in arrays.items() if name.startswith("state_")}
    biases = [arrays[f"bias_{i}"] for i in range(len(sizes) - 1) if f"bias_{i}" in arrays]
    fields = {key: value for key, value in header.items() if key not in ("format", "version")}
    try:
        return Checkpoint(weights=weights, state=state, biases=biases, **fields)
    except TypeError as error:
        raise Bs4nnError(f"{path}: malformed header ({error})") from error
    except Bs4nnError as error:
        raise Bs4nnError(f"{path}: {error}") from error

"""One way to name a model: a shipped name, a checkpoint, a training run folder or a bit-model folder.

Every command that takes a model (``--model`` everywhere, ``--to-bits`` / ``--to-nir`` / ``--check`` in the
exporter) resolves it here, so ``bs4nn report mnist`` and ``bs4nn-export --to-bits mnist`` accept the same
words, and each command can say which form it used.  Paths win over names: a folder called ``mnist`` in the
current directory is that folder, not the shipped model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import MANIFEST
from bs4nn.train.checkpoint import PRETRAINED_DIR, run_model_path

PRETRAINED_ENV = "BS4NN_PRETRAINED"
"""Environment variable naming another folder of ``<name>.npz`` models to use instead."""
SHIPPED_NAMES = {
    "mnist": "mnist",
    "fashion": "fashion",
    "fashion-mnist": "fashion",
    "fmnist": "fashion",
    "mnist-b1": "mnist-b1",
    "fashion-b1": "fashion-b1",
    "mnist-early": "mnist-early",
    "mnist-early-1200": "mnist-early-1200",
    "fashion-early": "fashion-early",
}
"""Accepted names of the shipped models -> file stem in ``bs4nn/train/pretrained/``."""
BIT_MODEL, SHIPPED, RUN, CHECKPOINT = "bit-model folder", "shipped model", "run folder", "checkpoint"
MODEL_FORMS = "a shipped model name, a checkpoint .npz, a training run folder or a bit-model folder"


@dataclass(frozen=True)
class ModelName:
    """What a model's name on the command line turned out to be."""

    text: str  # as the user wrote it
    kind: str  # BIT_MODEL, SHIPPED, RUN or CHECKPOINT
    path: Path  # the bit-model folder, or the checkpoint file that stands for the model
    shipped: str | None = None  # the shipped name, lower case

    @property
    def is_bit_model(self) -> bool:
        return self.kind == BIT_MODEL

    @property
    def was_renamed(self) -> bool:
        """True when the name stood for another path (a shipped name, a run folder): worth saying which."""
        return self.path != Path(self.text)

    @property
    def stem(self) -> str:
        """A short name for default output folders (``report-<stem>``)."""
        if self.shipped:
            return self.shipped
        return self.path.parent.name if self.kind == RUN else self.path.name if self.is_bit_model else self.path.stem

    def __str__(self) -> str:
        label = f"{self.kind} {self.shipped}" if self.shipped else self.kind
        return f"{label} ({self.path})"


def shipped_model_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """File of a shipped pretrained model.

    Looked for in ``root`` if given, else in ``$BS4NN_PRETRAINED`` if set (a site-wide model
    folder, or a test's), else in the package folder ``bs4nn/train/pretrained``.
    """
    stem = SHIPPED_NAMES.get(name.lower())
    if stem is None:
        raise Bs4nnError(f"no shipped model named {name!r}; names: {', '.join(sorted(SHIPPED_NAMES))}")
    root = root if root is not None else os.environ.get(PRETRAINED_ENV) or None
    folder = Path(root) if root is not None else PRETRAINED_DIR
    path = folder / f"{stem}.npz"
    if not path.is_file():
        raise Bs4nnError(
            f"shipped model {name!r} is not installed ({path} is missing); "
            "train one with 'bs4nn train' and pass its checkpoint path instead"
        )
    return path


def resolve_model(text: str | os.PathLike, pretrained_root: str | os.PathLike | None = None) -> ModelName:
    """The one resolver: an existing path first (folder with a manifest, run folder, file), else a shipped name."""
    text = str(text)
    path = Path(text)
    if path.is_dir():
        if (path / MANIFEST).is_file():
            return ModelName(text, BIT_MODEL, path)
        return ModelName(text, RUN, run_model_path(path))
    if path.is_file():
        return ModelName(text, CHECKPOINT, path)
    if text.lower() in SHIPPED_NAMES:
        return ModelName(text, SHIPPED, shipped_model_path(text, pretrained_root), text.lower())
    raise Bs4nnError(
        f"{text}: no such file or folder, and not a shipped model ({', '.join(sorted(SHIPPED_NAMES))}); "
        f"a model is {MODEL_FORMS}"
    )

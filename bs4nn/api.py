"""The public Python API: what a notebook needs, without knowing the stage modules.

>>> import bs4nn
>>> model = bs4nn.load("mnist")                     # shipped name, checkpoint, run folder or bit-model folder
>>> images, labels = bs4nn.load_dataset("mnist", "test")
>>> result = model.run(images[:100])                # the golden model: what the hardware computes
>>> result.decision[:5].tolist(), labels[:5].tolist()
([7, 2, 1, 0, 4], [7, 2, 1, 0, 4])

The names stay clear of the stage packages (``bs4nn.train``, ``bs4nn.export``): ``train_preset`` and
``export_bits``.  Every function here is a thin door to the one piece of code that does the work (the resolver
:mod:`bs4nn.export.naming`, the golden models, the trainer loop, the exporter, the RTL generator), so
the API and the command line cannot disagree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import BitModel, load_bit_model
from bs4nn.export.exporter import resolve_source
from bs4nn.export.models import export_source, named_bit_model
from bs4nn.export.naming import ModelName
from bs4nn.sim.golden import run_model_images
from bs4nn.train.datasets import load_split

__all__ = ["Model", "export_bits", "load", "load_dataset", "train_preset"]


@dataclass(frozen=True)
class Model:
    """A deployable model: the integer network the hardware runs, and where it came from."""

    bits: BitModel
    name: ModelName | None = None

    @property
    def family(self) -> str:
        """``"bs4nn"`` or ``"b1"``."""
        return self.bits.model

    @property
    def network(self):
        """The integer network (:class:`~bs4nn.sim.golden.IntegerNetwork` or :class:`~bs4nn.sim.b1.B1Network`)."""
        return self.bits.network

    @property
    def dataset(self) -> str:
        return str(self.bits.manifest.get("dataset", "mnist"))

    @property
    def path(self) -> Path:
        """The bit-model folder."""
        return self.bits.path

    def run(self, images: np.ndarray, **kwargs: Any):
        """The golden model on 8-bit images ``(N, 28, 28)``: decisions, spike times (steps), spikes per layer."""
        return run_model_images(self.network, np.asarray(images), **kwargs)

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        """Share of ``images`` decided as ``labels``, ties broken as the hardware breaks them."""
        return float(np.mean(self.run(images).decision == np.asarray(labels)))

    def verilog(self, lanes: int | None = None, name: str = "bs4nn_core") -> str:
        """The Verilog of the core of this model's family (BS4NN or B1; ``lanes`` default: the folder's)."""
        from bs4nn.rtl.generate import generate_verilog  # Amaranth loads only when a core is wanted

        return generate_verilog(self.network, lanes or self.bits.lanes, name)


def load(model: str | os.PathLike, cache: str | os.PathLike | None = None) -> Model:
    """Any model name (as every command takes it); a checkpoint is exported to ``cache`` first."""
    bits, name = named_bit_model(str(model), cache)
    return Model(bits, name)


def load_dataset(name: str = "mnist", split: str = "test", data_dir: str | os.PathLike | None = None):
    """``(images (N, 28, 28) uint8, labels (N,) uint8)``, sha256-checked (downloaded if missing)."""
    return load_split(name, split, data_dir)


def export_bits(model: str | os.PathLike, out: str | os.PathLike, lanes: int = 16, evaluate: bool = True) -> Model:
    """The bit-model folder of a checkpoint, run folder or shipped name (as ``bs4nn-export --to-bits``)."""
    result = export_source(resolve_source(str(model)), out, lanes=lanes, evaluate_accuracy=evaluate)
    return Model(load_bit_model(result.path))


def train_preset(preset: str, out: str | os.PathLike, *, seed: int = 0, progress: bool = False, **fields: Any) -> dict:
    """Train a preset (``fields`` change preset fields, as ``--set``); return the run's summary.

    The run folder ``out`` then holds ``best.npz`` & co., which :func:`load` and :func:`export_bits` take.
    """
    from bs4nn.train.checkpoint import check_run_folder
    from bs4nn.train.presets import PRESETS
    from bs4nn.train.run import RunOptions
    from bs4nn.train.trainer import train as train_loop

    if preset not in PRESETS:
        raise Bs4nnError(f"no preset {preset!r}; presets: {', '.join(sorted(PRESETS))}")
    try:
        chosen = replace(PRESETS[preset], **fields)
    except TypeError as error:
        raise Bs4nnError(f"preset {preset}: {error}") from error
    check_run_folder(out, resume=False)
    return train_loop(chosen, RunOptions(out_dir=Path(out), seed=seed, progress=progress), log=lambda line: None)

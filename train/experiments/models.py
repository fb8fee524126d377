"""One view of a model for every experiment: the integer network, plus the real weights if known.

A checkpoint (``.npz``) carries the real-valued weights, alphas and thetas, so every experiment
applies to it; a bit-model folder carries only the signs and integer thresholds (plus, where
the exporter wrote them, the per-layer ``alpha_q`` and ``theta``), so experiments that need the
real weights (Fig. 6, real weights in place of ``alpha * B``, alpha rounding) refuse it with a
clear message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import MANIFEST, integer_network, load_bit_model, quantize_alpha
from bs4nn.sim.golden import IntegerLayer, IntegerNetwork
from bs4nn.train.checkpoint import Checkpoint, load_checkpoint

DEFAULT_DATASET = "mnist"


@dataclass(frozen=True)
class AnalysedModel:
    """What the experiments need to know about a trained model."""

    network: IntegerNetwork  # exactly what the hardware runs
    dataset: str
    source: Path
    checkpoint: Checkpoint | None = None  # real weights, only when loaded from a checkpoint
    alphas_q: tuple[Decimal, ...] | None = None  # per-layer alpha as deployed (rounded), if known
    thetas: tuple[float, ...] | None = None  # per-layer threshold in weight units, if known

    @property
    def name(self) -> str:
        return self.source.stem if self.source.suffix else self.source.name

    def require_checkpoint(self, what: str) -> Checkpoint:
        """The checkpoint, or one clear error saying why ``what`` needs it."""
        if self.checkpoint is None:
            raise Bs4nnError(f"{what} needs the real-valued weights: give a checkpoint (.npz), not a bit-model folder")
        return self.checkpoint

    def with_thresholds(self, threshold_counts: list[int]) -> IntegerNetwork:
        """The same signs with other integer thresholds (each clamped to at least 1 count)."""
        layers = tuple(
            IntegerLayer(layer.signs, max(1, int(count)))
            for layer, count in zip(self.network.layers, threshold_counts, strict=True)
        )
        return IntegerNetwork(layers, tmax=self.network.tmax, imax=self.network.imax)


def model_from_checkpoint(checkpoint: Checkpoint, source: str | os.PathLike = "checkpoint") -> AnalysedModel:
    """Analyse an in-memory checkpoint (the tests build tiny ones by hand)."""
    if not checkpoint.binary:
        raise Bs4nnError(f"{source}: a real-valued (S4NN, binary=False) checkpoint has no binary network to analyse")
    ck = checkpoint
    network = integer_network(ck.weights, ck.alphas, ck.thetas, ck.tmax, ck.imax)
    return AnalysedModel(
        network=network,
        dataset=checkpoint.dataset or DEFAULT_DATASET,
        source=Path(source),
        checkpoint=checkpoint,
        alphas_q=tuple(quantize_alpha(alpha) for alpha in checkpoint.alphas),
        thetas=tuple(float(theta) for theta in checkpoint.thetas),
    )


def load_model(path: str | os.PathLike) -> AnalysedModel:
    """A checkpoint file (``.npz``, or a folder holding ``checkpoint.npz``) or a bit-model folder."""
    path = Path(path)
    if not path.exists():
        raise Bs4nnError(f"{path}: no such model (give a checkpoint .npz or a bit-model folder)")
    if path.is_dir() and (path / MANIFEST).is_file():
        bit_model = load_bit_model(path)
        layers = bit_model.manifest.get("layers", [])
        alphas = [entry.get("alpha_q") for entry in layers]
        thetas = [entry.get("theta") for entry in layers]
        return AnalysedModel(
            network=bit_model.network,
            dataset=str(bit_model.manifest.get("dataset", DEFAULT_DATASET)),
            source=path,
            alphas_q=tuple(Decimal(str(a)) for a in alphas) if all(a is not None for a in alphas) else None,
            thetas=tuple(float(t) for t in thetas) if all(t is not None for t in thetas) else None,
        )
    return model_from_checkpoint(load_checkpoint(path), path)


def positive_fractions(model: AnalysedModel) -> list[float]:
    """Fraction of +1 weights per layer (the paper reports roughly half positive)."""
    return [float(np.mean(layer.signs)) for layer in model.network.layers]

"""Weight averaging: an exponential moving average of the learned parameters (Polyak averaging).

Why: a 1-bit network's deployed weights are the signs of its proxies, and near the end of a
run the proxies close to zero still flip from batch to batch, so the validation accuracy of
the last epochs wanders by half a point and the model chosen on validation is partly chance
(train/B1.md).  The average of the proxies over the last few thousand batches flips less and
usually generalises better (Polyak & Juditsky 1992; Izmailov et al. 2018's SWA is the same
idea with a uniform average).  The averaged network is the one validated, kept in ``best.npz``
and scored; the optimiser keeps stepping the raw parameters, which ``checkpoint.npz`` holds
beside the average so that ``--resume`` continues both exactly.

What is averaged: the weight proxies, the log-scales (B1: the deployed scale is ``exp`` of the
averaged log-scale), the biases, and, for rules whose alphas are stepped by the loop itself
(BS4NN), the alphas.  The average starts at the initial parameters (no bias correction is
needed: it is a weighted mean of actual parameter values from the first batch on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import numpy as np

from bs4nn.sim.semantics import Array, to_numpy
from bs4nn.train.checkpoint import Checkpoint
from bs4nn.train.network import WEIGHT_DTYPE

STATE_PREFIX = "average"
"""The checkpoint's ``state`` keys of the average: ``average_0``, ``average_1``, ..."""


def learned_arrays(
    weights: list[Array], log_scales: list[Array], biases: list[Array], alphas: list[float], xp: ModuleType
) -> list[Array]:
    """The parameters the average follows, in a fixed order: weights, log-scales, biases, and the
    alphas as one array when the rule has no log-scales."""
    arrays = [*weights, *log_scales, *biases]
    if not log_scales:
        arrays.append(xp.asarray(alphas, dtype=WEIGHT_DTYPE))
    return arrays


@dataclass
class ParameterAverage:
    """``average <- decay * average + (1 - decay) * parameter`` after every optimiser step."""

    decay: float
    arrays: list[Array]
    n_weights: int
    n_scales: int
    n_biases: int

    @classmethod
    def start(cls, decay: float, state: Any, xp: ModuleType) -> ParameterAverage:
        """A fresh average of a run's ``state`` (``trainer.RunState``), or the one its resumed
        checkpoint saved (its run signature, checked before, says it was made with this average)."""
        current = learned_arrays(state.weights, state.log_scales, state.biases, state.alphas, xp)
        saved = state.saved
        if saved:
            arrays = [xp.asarray(saved[f"{STATE_PREFIX}_{i}"], dtype=WEIGHT_DTYPE) for i in range(len(current))]
        else:
            arrays = [xp.array(array, dtype=WEIGHT_DTYPE, copy=True) for array in current]
        return cls(decay, arrays, len(state.weights), len(state.log_scales), len(state.biases))

    def update(self, state: Any, xp: ModuleType) -> None:
        """Fold the parameters after one optimiser step into the average, in place."""
        current = learned_arrays(state.weights, state.log_scales, state.biases, state.alphas, xp)
        keep = WEIGHT_DTYPE(self.decay)
        for average, value in zip(self.arrays, current, strict=True):
            average *= keep
            average += (1 - keep) * value

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The average for ``checkpoint.npz``'s state (``--resume``)."""
        return {f"{STATE_PREFIX}_{i}": to_numpy(array) for i, array in enumerate(self.arrays)}

    def averaged(self, checkpoint: Checkpoint) -> Checkpoint:
        """``checkpoint`` with its parameters replaced by the average: the network validated and kept."""
        arrays = [to_numpy(array).astype(WEIGHT_DTYPE) for array in self.arrays]
        weights = arrays[: self.n_weights]
        after = self.n_weights + self.n_scales
        if self.n_scales:
            alphas = [math.exp(float(s[0])) for s in arrays[self.n_weights : after]]
        else:
            alphas = [float(a) for a in arrays[-1]]
        biases = arrays[after : after + self.n_biases]
        return replace(checkpoint, weights=weights, alphas=alphas, biases=biases)

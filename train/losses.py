"""The softmax cross-entropy that every softmax-trained network here shares (snapshot-ce, B1, the ReLU reference)."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from bs4nn.sim.semantics import Array


def softmax_cross_entropy(logits: Array, labels: Array, xp: ModuleType = np) -> tuple[float, Array]:
    """The batch's summed cross-entropy and its gradient with respect to ``logits`` (of the sum).

    The logits are shifted by their row maximum first, so ``exp`` cannot overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    rows = xp.arange(logits.shape[0])
    grad = xp.exp(log_probs)
    grad[rows, labels] -= 1
    return float(-log_probs[rows, labels].sum()), grad

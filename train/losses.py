"""The softmax cross-entropy that every softmax-trained network here shares (snapshot-ce, B1, the ReLU reference)."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from bs4nn.sim.semantics import Array


def softmax_cross_entropy(logits: Array, labels: Array, xp: ModuleType = np) -> tuple[float, Array]:
    """The batch's summed cross-entropy and its gradient with respect to ``logits`` (of the sum).

    The logits are shifted by their row maximum first, so ``exp`` cannot overflow."""
    log_probs = _log_softmax(logits, xp)
    rows = xp.arange(logits.shape[0])
    grad = xp.exp(log_probs)
    grad[rows, labels] -= 1
    return float(-log_probs[rows, labels].sum()), grad


def distilled_cross_entropy(
    logits: Array, labels: Array, teacher_logits: Array, weight: float, temperature: float, xp: ModuleType = np
) -> tuple[float, Array]:
    """``(1 - weight) CE(labels) + weight T^2 KL(teacher_T || student_T)`` summed over the batch, and its
    gradient with respect to ``logits`` (Hinton, Vinyals & Dean 2015: the teacher's softened outputs).

    Why: a 1-bit network learns from a float teacher's full distribution over the classes (which
    wrong class is nearly right) what one-hot labels do not say.  The ``T^2`` keeps the soft term's
    gradient on the scale of the hard one's whatever ``T``; ``weight`` 0 is the plain cross-entropy."""
    hard_loss, hard_grad = softmax_cross_entropy(logits, labels, xp)
    if not weight:
        return hard_loss, hard_grad
    student = _log_softmax(logits / temperature, xp)
    teacher = _log_softmax(teacher_logits.astype(logits.dtype) / temperature, xp)
    teacher_probs = xp.exp(teacher)
    soft_loss = float((teacher_probs * (teacher - student)).sum()) * temperature**2
    soft_grad = (xp.exp(student) - teacher_probs) * temperature
    return (1 - weight) * hard_loss + weight * soft_loss, (1 - weight) * hard_grad + weight * soft_grad


@dataclass(frozen=True)
class Distillation:
    """A float teacher's logits for the batch and how much of the loss is matching them
    (:func:`distilled_cross_entropy`); B1 and snapshot-ce distil alike."""

    teacher_logits: Array  # (batch, n_out)
    weight: float
    temperature: float


def classification_loss(
    logits: Array, labels: Array, distillation: Distillation | None, xp: ModuleType = np
) -> tuple[float, Array]:
    """The summed cross-entropy of ``logits`` and its gradient: distilled from a teacher, if given."""
    if distillation is None:
        return softmax_cross_entropy(logits, labels, xp)
    return distilled_cross_entropy(
        logits, labels, distillation.teacher_logits, distillation.weight, distillation.temperature, xp
    )


def _log_softmax(logits: Array, xp: ModuleType) -> Array:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))

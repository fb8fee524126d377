"""``backward="snapshot"`` (not the paper's): a hinge on the output counters at the decision step.

The forward pass is the exact one; only the gradients differ (``fashion-snapshot``,
``fashion-2x600``, and the readout epochs of every rule, which train the output layer alone with
it; train/README.md).  DECISION: alphas stay put; this rule works in counts, and alpha only sets
the integer count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.sim.semantics import Array
from bs4nn.train.network import binary_weights, layer_thresholds
from bs4nn.train.rules.base import Batch, BatchResult, Bs4nnFamily, Parameters
from bs4nn.train.rules.temporal import exact_race, normalise_rows


@dataclass(frozen=True)
class SnapshotOptions:
    """The snapshot rule's options (``Preset`` fields of the same names)."""

    tmax: int
    count_margin: int = 4  # counts by which the outputs must clear their threshold
    surrogate_width: float = 40.0  # half-width (counts) of the hidden surrogate
    decision_deadline: int = 256  # the hinge looks no later than step decision_deadline - 1 (tmax: no deadline)

    def __post_init__(self) -> None:
        if not 1 <= self.decision_deadline <= self.tmax:
            raise Bs4nnError(f"decision_deadline must be in 1..tmax ({self.tmax}), not {self.decision_deadline}")


def counter_hinge(
    out: Array, labels: Array, count: float, count_margin: int, xp: ModuleType = np
) -> tuple[Array, Array]:
    """By how many counts each output misses a first-spike decision for its label at ``count``.

    ``out``: output counters, ``(..., batch, n_out)``.  ``short``: the correct output's shortfall
    from ``count + count_margin`` (it must have spiked with a margin); ``over``: every other
    output's excess over ``count - 1 - count_margin`` (it must not have spiked, with a margin);
    zero where met.  One hinge for the readout epochs (:func:`snapshot_gradients`) and the
    snapshot-ce deadline term (``snapshot_ce.deadline_hinge``).
    """
    is_label = xp.arange(out.shape[-1]) == labels[:, None]
    short = xp.where(is_label, xp.maximum(count + count_margin - out, 0), 0)
    over = xp.where(is_label, 0, xp.maximum(out - (count - 1 - count_margin), 0))
    return short, over


def snapshot_gradients(
    times: Sequence[Array],
    decision_time: Array,
    labels: Array,
    weights: Sequence[Array],
    threshold_counts: Sequence[int],
    alive: Array,
    *,
    tmax: int,
    count_margin: int,
    surrogate_width: float,
    decision_deadline: int | None = None,
    xp: ModuleType = np,
) -> tuple[list[Array], float]:
    """Weight gradients of a hinge on the output counters at the decision step (``backward="snapshot"``).

    Why: the temporal backward (eqs. 9-16) moves spike times, but where the inputs arrive in
    bursts (Fashion-MNIST's uniform regions, MNIST's saturated strokes) a decision is a count
    race inside one step, and pulling a time by one step says little about the counts.  Here the
    network is frozen at the decision step ``s`` (the first output spike; ``tmax - 1`` if none):
    every layer is then a binary network, ``fired = [t <= s]`` and counter ``= fired @ sign(W).T``.
    The correct output's counter must reach ``count + margin``, every other output's must stay at
    ``count - 1 - margin`` or below (a hinge, gradient -1 / +1 per violated output).  The gradient
    reaches the proxy weights straight through the signs (``dL/dW = delta.T @ fired``) and the
    hidden layers through a triangular surrogate of ``[counter >= count]`` of half-width
    ``surrogate_width`` counts.  Deltas are normalised per sample and layer, as in eq. (12).
    Returns the per-layer gradients summed over the batch and the hinge loss (in counts).

    ``decision_deadline`` D (early first-spike decisions): the snapshot is taken no later than step
    ``D - 1``, so a sample decided late, or by the fallback at ``tmax``, is trained as if it had to
    be decided by a first spike of the correct output by ``D - 1`` with the margin: its counter is
    pushed up there and the others' down.  ``D = tmax`` (default) is the decision step itself.
    """
    last = tmax if decision_deadline is None else decision_deadline
    snapshot = xp.minimum(decision_time, last - 1)[:, None]
    fired = [(layer_times <= snapshot).astype(xp.float32) for layer_times in times]
    signs = [binary_weights(weight, xp).astype(xp.float32) for weight in weights]
    counters = [fired[layer] @ signs[layer].T for layer in range(len(weights))]
    short, over = counter_hinge(counters[-1], labels, float(threshold_counts[-1]), count_margin, xp)
    short, over = short * alive[:, None], over * alive[:, None]
    loss = float(short.sum() + over.sum())
    delta = normalise_rows((over > 0).astype(xp.float32) - (short > 0).astype(xp.float32), xp)
    weight_grads: list[Array] = [None] * len(weights)
    for layer in range(len(weights) - 1, -1, -1):
        weight_grads[layer] = delta.T @ fired[layer]
        if layer > 0:
            centre = float(threshold_counts[layer - 1]) - 0.5
            surrogate = xp.maximum(0, 1 - xp.abs(counters[layer - 1] - centre) / surrogate_width)
            delta = normalise_rows((delta @ signs[layer]) * surrogate, xp)
    return weight_grads, loss


class SnapshotRule(Bs4nnFamily):
    """A hinge on the output counters at the decision step, straight through the signs."""

    name: ClassVar[str] = "snapshot"
    options_type: ClassVar[type] = SnapshotOptions
    binary_only: ClassVar[bool] = True
    extra_parameters: ClassVar[tuple[str, ...]] = ()
    loss_title: ClassVar[str] = "training hinge loss (counts, per sample)"
    figures_from_forward: ClassVar[bool] = True

    def batch_gradients(self, batch: Batch, params: Parameters, options: Any, xp: ModuleType) -> BatchResult:
        times, first_time, alive, figures = exact_race(batch, params, options.tmax, xp)
        weight_grads, loss = snapshot_gradients(
            times,
            first_time,
            batch.labels,
            params.weights,
            layer_thresholds(params.alphas, params.thetas, params.binary),
            alive,
            tmax=options.tmax,
            count_margin=options.count_margin,
            surrogate_width=options.surrogate_width,
            decision_deadline=options.decision_deadline,
            xp=xp,
        )
        return BatchResult(weight_grads=weight_grads, alpha_grads=[0.0] * len(params.weights), loss=loss, **figures)

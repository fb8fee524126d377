"""``backward="snapshot-ce"`` (the shipped rule, not the paper's): every layer a binarized layer.

A cross-entropy on the output counters summed over fixed snapshot steps; the exact forward pass
is never run during training (the figures are those of the rule's own readout).  Presets
``mnist``, ``mnist-early``, ``mnist-early-1200`` (distilled), ``fashion``, ``fashion-2x600-ce``, ``tiny-ce``;
measurements in train/README.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.sim.semantics import Array
from bs4nn.train.losses import Distillation, classification_loss
from bs4nn.train.network import binary_weights, layer_thresholds
from bs4nn.train.rules.base import Batch, BatchResult, Bs4nnFamily, Parameters
from bs4nn.train.rules.snapshot import counter_hinge


@dataclass(frozen=True)
class SnapshotCeOptions:
    """The snapshot-ce rule's options (``Preset`` fields of the same names)."""

    tmax: int
    snapshot_steps: tuple[int, ...] = ()  # the steps s whose "spiked by s" bits are trained on
    surrogate_width: float = 40.0  # half-width (counts) of the hidden threshold's triangle
    hidden_dropout: float = 0.0  # fraction of hidden neurons silenced per training image and batch
    deadline_weight: float = 0.0  # weight of the deadline hinge (early first-spike decisions; 0: off)
    decision_deadline: int = 256  # the correct output must have spiked by the last snapshot step before this
    count_margin: int = 4  # counts by which the outputs must clear their threshold in the deadline hinge
    distill_weight: float = 0.0  # share of the cross-entropy that matches the teacher's softened outputs
    distill_temperature: float = 4.0

    def __post_init__(self) -> None:
        steps = self.snapshot_steps
        if not steps or list(steps) != sorted(set(steps)) or not 0 <= steps[0] <= steps[-1] < self.tmax:
            raise Bs4nnError(f"snapshot-ce needs snapshot_steps ascending, distinct, in [0, {self.tmax}), got {steps}")
        if self.deadline_weight and not steps[0] < self.decision_deadline <= self.tmax:
            raise Bs4nnError(
                f"deadline_weight needs a decision_deadline in {steps[0] + 1}..{self.tmax} (after the first "
                f"snapshot step, {steps[0]}), got {self.decision_deadline}"
            )


def snapshot_ce_gradients(
    in_times: Array,
    labels: Array,
    weights: Sequence[Array],
    threshold_counts: Sequence[int],
    readout_scale: float,
    *,
    snapshot_steps: Sequence[int],
    surrogate_width: float,
    keep_masks: Sequence[Array] | None = None,
    deadline_weight: float = 0.0,
    decision_deadline: int = 256,
    count_margin: int = 0,
    distillation: Distillation | None = None,
    xp: ModuleType = np,
) -> tuple[list[Array], float, float, int]:
    """Gradients of a cross-entropy on the output counters summed over fixed snapshot steps
    (``backward="snapshot-ce"``, not the paper's).

    Why: the temporal backward fits the MNIST hidden layer to only 92-93 % of the training
    images, and a float readout of the shipped hidden layer's "spiked by step s" bits reaches
    96.0 % validation where its own first-spike race reaches 94.6 % (train/README.md).  Here
    every layer is trained as a binarized layer on those bits: at each snapshot step ``s`` the
    inputs are ``[t <= s]``, a hidden neuron counts as spiked from the first snapshot at which
    its counter ``bits @ sign(W).T`` reaches its threshold count (an OR over the earlier
    snapshots, as a spike is final), and the class score is ``readout_scale`` times the output
    counters summed over the snapshots -- larger for an output whose counter rises earlier, so
    it ranks the outputs as the first-spike race does.  Softmax cross-entropy on the scores;
    straight through the signs to the proxy weights; through each hidden threshold by a
    triangle of half-width ``surrogate_width`` counts around ``count - 1/2`` (the OR is passed
    straight through).  The output layer's threshold is not used: it is chosen afterwards on
    validation (``readout_epochs``, ``calibrate_thresholds``).

    ``keep_masks`` (hidden dropout, one ``(batch, n_l)`` array per hidden layer, from
    :func:`keep_masks`): each hidden layer's bits are multiplied by its mask at every snapshot,
    so a dropped neuron is silent for that sample throughout, and its gradient is masked alike.

    ``deadline_weight`` (early first-spike decisions): plus this weight times
    :func:`deadline_hinge` on the output counters of every snapshot, at the preset's output count.

    ``distillation`` (a float teacher's logits): the cross-entropy is distilled from them
    (:func:`~bs4nn.train.losses.distilled_cross_entropy`) on the same scores.  Why: the 1-bit
    network learns from the teacher which wrong class is nearly right, which the one-hot labels do
    not say (fashion-b1 gained ~0.5 points from it, train/B1.md); the hinge is unchanged.

    Returns the per-layer weight gradients and the readout scale's gradient (summed over the
    batch), the summed loss and the number of samples whose highest score is their label.
    """
    n_steps, batch = len(snapshot_steps), in_times.shape[0]
    steps = xp.asarray(snapshot_steps, dtype=in_times.dtype)
    signs = [binary_weights(weight, xp).astype(xp.float32) for weight in weights]
    # spiked[l]: (n_steps * batch, n_l) bits "layer l spiked by snapshot step s", the snapshots stacked
    spiked = [(in_times[None, :, :] <= steps[:, None, None]).reshape(n_steps * batch, -1).astype(xp.float32)]
    counters = []
    for layer in range(len(weights) - 1):
        counter = spiked[layer] @ signs[layer].T
        counters.append(counter)
        reached = (counter >= threshold_counts[layer]).reshape(n_steps, batch, -1)
        spiked.append((xp.cumsum(reached, axis=0) > 0).reshape(n_steps * batch, -1).astype(xp.float32))
        if keep_masks is not None:
            spiked[-1] *= xp.tile(keep_masks[layer], (n_steps, 1))
    spiked_sum = spiked[-1].reshape(n_steps, batch, -1).sum(axis=0)
    summed_counters = spiked_sum @ signs[-1].T  # the output counters, summed over the snapshots
    scores = readout_scale * summed_counters
    loss, grad_scores = classification_loss(scores, labels, distillation, xp)
    correct = int((scores.argmax(axis=1) == labels).sum())
    weight_grads: list[Array] = [None] * len(weights)
    weight_grads[-1] = readout_scale * (grad_scores.T @ spiked_sum)
    scale_grad = float((grad_scores * summed_counters).sum())
    delta = xp.tile(readout_scale * (grad_scores @ signs[-1]), (n_steps, 1))  # dL/d(spiked bits), per snapshot
    if deadline_weight:
        out_steps = (spiked[-1] @ signs[-1].T).reshape(n_steps, batch, -1)
        hinge_grad, hinge_loss = deadline_hinge(
            out_steps, labels, snapshot_steps, float(threshold_counts[-1]), count_margin, decision_deadline, xp
        )
        hinge_grad = deadline_weight * hinge_grad.reshape(n_steps * batch, -1)
        loss += deadline_weight * hinge_loss
        weight_grads[-1] += hinge_grad.T @ spiked[-1]
        delta += hinge_grad @ signs[-1]
    for layer in range(len(weights) - 2, -1, -1):
        if keep_masks is not None:
            delta = delta * xp.tile(keep_masks[layer], (n_steps, 1))
        centre = float(threshold_counts[layer]) - 0.5
        delta = delta * xp.maximum(0, 1 - xp.abs(counters[layer] - centre) / surrogate_width)
        weight_grads[layer] = delta.T @ spiked[layer]
        if layer > 0:
            delta = delta @ signs[layer]
    return weight_grads, scale_grad, loss, correct


def deadline_hinge(
    out_steps: Array,
    labels: Array,
    snapshot_steps: Sequence[int],
    count: float,
    count_margin: int,
    decision_deadline: int,
    xp: ModuleType = np,
) -> tuple[Array, float]:
    """A hinge asking for a first-spike decision by ``decision_deadline``: the correct output's
    counter at ``count + count_margin`` by the last snapshot step before the deadline, every other
    output's at ``count - 1 - count_margin`` or below at every snapshot step before it.

    Why: the cross-entropy on the summed counters ranks the outputs, but the hardware decides by
    the first output whose counter reaches its count, and only a model whose correct output gets
    there early -- before any other -- decides early by a first spike (issue 28); otherwise the
    decision waits, or falls back to the largest counter at ``tmax``.  A wrong output that reached
    the count before the deadline would have won the race, so it is held down at every snapshot
    before it; after the deadline nothing is asked (the decision is made by then).
    ``out_steps``: ``(n_steps, batch, n_out)`` output counters at the snapshot steps.  Returns
    ``dL/d(out_steps)`` (+1 per count-violating wrong output and snapshot, -1 for a short correct
    output, not normalised: its weight sets its share beside the cross-entropy) and the loss in
    counts, summed over the batch.
    """
    before = [index for index, step in enumerate(snapshot_steps) if step < decision_deadline]
    short, over = counter_hinge(out_steps, labels, count, count_margin, xp)
    short = short[before[-1]]
    over = over * xp.asarray([step < decision_deadline for step in snapshot_steps], dtype=xp.float32)[:, None, None]
    grad = (over > 0).astype(xp.float32)
    grad[before[-1]] -= (short > 0).astype(xp.float32)
    return grad, float(short.sum() + over.sum())


class SnapshotCeRule(Bs4nnFamily):
    """Cross-entropy on the summed snapshot counters; learns a readout scale besides the weights."""

    name: ClassVar[str] = "snapshot-ce"
    options_type: ClassVar[type] = SnapshotCeOptions
    binary_only: ClassVar[bool] = True
    extra_parameters: ClassVar[tuple[str, ...]] = ("readout_scale",)
    loss_title: ClassVar[str] = "training loss (cross-entropy / readout hinge)"
    figures_from_forward: ClassVar[bool] = False

    def batch_gradients(self, batch: Batch, params: Parameters, options: Any, xp: ModuleType) -> BatchResult:
        """``correct``: highest summed score; ``output_time_sum``: NaN (no output spike times)."""
        weight_grads, scale_grad, loss, correct = snapshot_ce_gradients(
            batch.in_times,
            batch.labels,
            params.weights,
            layer_thresholds(params.alphas, params.thetas, params.binary),
            params.extras["readout_scale"],
            snapshot_steps=options.snapshot_steps,
            surrogate_width=options.surrogate_width,
            keep_masks=batch.keep_masks,
            deadline_weight=options.deadline_weight,
            decision_deadline=options.decision_deadline,
            count_margin=options.count_margin,
            distillation=batch.distillation(options),
            xp=xp,
        )
        return BatchResult(
            weight_grads=weight_grads,
            alpha_grads=[0.0] * len(params.weights),
            loss=loss,
            correct=correct,
            output_time_sum=math.nan,
            trained=batch.size,
            silent=0,
            extra_grads={"readout_scale": scale_grad},
        )

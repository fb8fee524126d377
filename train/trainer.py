"""The BS4NN trainer: binary weights, relative temporal targets, S4NN-style backward.

One source for NumPy and CuPy (``xp``); every function is vectorised over a mini-batch.

Forward: layer ``l`` uses ``B = sign(W)`` (+1 for ``w >= 0``, the exporter's rule) and the
integer threshold ``threshold_count(theta_l, alpha_l)``, i.e. exactly ``alpha_l * count >= theta_l``,
through :func:`bs4nn.sim.semantics.layer_spike_times` -- the same code the golden model runs, so
with alphas rounded to two decimals the trainer's spike times ARE the golden model's.
A neuron that never fires has time ``tmax`` (the S4NN "fake spike").

Backward (paper eqs. 5-16, decisions where the paper is open are marked DECISION):

* targets eq. (6) and errors ``e_j = (T_j - t_j) / tmax`` eq. (5); loss ``0.5 * sum_j e_j^2`` (7);
* ``delta_j = e_j`` at the output (``dt/dV = -1``); hidden
  ``delta_i = sum_j delta_j * w_ji * [t_i <= t_j]`` with the real-valued ``W``;
* every layer's deltas are divided by their L2 norm, per sample;
* ``dL/dw_ji = delta_j * [t_i <= t_j]`` (straight-through: the gradient of ``B`` goes to ``W``);
  ``W -= eta * (dL/dW + lambda * W)``: a too-late neuron (``e_j < 0``) grows its weights from
  the inputs that came before it;
* ``dL/dalpha_l = mean_j(delta_j * count_j(t_j))`` (eq. 16: ``dV_j/dalpha = count``),
  ``alpha -= mu * dL/dalpha``;
* DECISION: a preset may bound a layer's proxy weights to ``[-c, c]`` after every update
  (``weight_clip``, BinaryConnect's clip; binary mode only), so that every sign stays a bounded
  number of updates from flipping.

DECISION: a preset may instead use ``backward="snapshot"`` (:func:`snapshot_gradients`, not the
paper's): a hinge on the output counters at the decision step, straight through the signs.  The
forward pass is the same; only the gradients differ (``fashion`` uses it, train/README.md).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import quantize_alpha
from bs4nn.fileio import atomic_write_bytes, atomic_write_text
from bs4nn.sim.semantics import Array, decide, encode_images, layer_spike_times, threshold_count, to_numpy
from bs4nn.train.checkpoint import PRETRAINED_DIR, Checkpoint, load_checkpoint, run_model_path, save_checkpoint
from bs4nn.train.optimizers import Adam, make_optimizer
from bs4nn.train.presets import BACKWARDS, COUNTER_BACKWARDS, TARGET_RULES, Preset

MIN_ALPHA = 0.01
"""Alphas are clamped here: the exporter rounds them to two decimals and needs them positive."""

WEIGHT_DTYPE = np.float32
"""The proxy weights live in float32 during training, as in the checkpoint (bitwise resume)."""

MOVE_STREAM = 1
"""Third word of the augmentation RNG's seed, so its stream is not epoch_batches' (seed, epoch) one."""

DROPOUT_STREAM = 2
"""Third word of the hidden-dropout RNG's seed (``keep_masks``), another stream again."""


# --------------------------------------------------------------------------------------------
# array module
# --------------------------------------------------------------------------------------------


def get_xp(device: str = "auto") -> ModuleType:
    """NumPy, or CuPy for ``device="gpu"`` (and for ``"auto"`` when a CUDA GPU is usable)."""
    if device not in ("auto", "cpu", "gpu"):
        raise Bs4nnError(f"unknown device {device!r}; choose auto, cpu or gpu")
    if device == "cpu":
        return np
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception as error:  # ImportError, or CUDA present but unusable
        if device == "gpu":
            raise Bs4nnError(f"--device gpu needs CuPy and a CUDA GPU ({error})") from error
        return np
    if device == "gpu":
        raise Bs4nnError("--device gpu: CuPy found no CUDA GPU")
    return np


# --------------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------------


def binary_weights(weights: Array, xp: ModuleType = np) -> Array:
    """``sign(W)`` as int8 +1/-1, with ``w >= 0 -> +1`` (the exporter's sign rule)."""
    return xp.where(weights >= 0, 1, -1).astype(xp.int8)


def layer_thresholds(alphas: Sequence[float], thetas: Sequence[float], binary: bool) -> list[float | int]:
    """Per-layer thresholds for ``layer_spike_times``: exact integer counts, or theta (S4NN)."""
    if not binary:
        return [float(theta) for theta in thetas]
    return [threshold_count(float(theta), float(alpha)) for alpha, theta in zip(alphas, thetas, strict=True)]


def forward(
    in_times: Array,
    weights: Sequence[Array],
    alphas: Sequence[float],
    thetas: Sequence[float],
    tmax: int,
    binary: bool = True,
    xp: ModuleType = np,
) -> tuple[list[Array], Array]:
    """Spike times of every layer (input first) and the output layer's final counters."""
    times = [in_times]
    counts = None
    for weight, threshold in zip(weights, layer_thresholds(alphas, thetas, binary), strict=True):
        effective = binary_weights(weight, xp) if binary else weight
        spikes, counts = layer_spike_times(times[-1], effective, threshold, tmax, xp)
        times.append(spikes)
    return times, counts


# --------------------------------------------------------------------------------------------
# targets and errors
# --------------------------------------------------------------------------------------------


def relative_targets(
    out_times: Array, labels: Array, gamma: float, tmax: int, xp: ModuleType = np, rule: str = "eq6"
) -> Array:
    """Relative target times of the output neurons (eq. 6 and its hardware-aware variant).

    ``tau = min_j t_j``.  Wrong neurons: ``tau + gamma`` if they fired before that (capped at
    ``tmax``), else their own time (no error).  All outputs silent: ``tmax - gamma`` for the
    correct one, ``tmax`` for the others.  The correct neuron:

    * ``eq6``: ``tau - gamma``, clipped at 0 (a spike time cannot be negative; otherwise a correct
      neuron that already fires alone at t = 0 keeps an error and its weights grow without bound).
      It is pulled earlier on every sample, so decisions drift to t = 0..3, where MNIST's bright
      strokes put every output in the same step (ties).
    * ``hardware`` (DECISION, measured in train/README.md): ``tau`` -- no error while the correct
      neuron is among the earliest, as in the authors' reference code -- or ``tau - 1`` (clipped
      at 0) when a lower-index output fires at ``tau``, since the hardware's tie rule picks that
      one.  The correct neuron is pulled exactly when, and as far as, it would otherwise lose.
    """
    if rule not in TARGET_RULES:
        raise Bs4nnError(f"unknown target rule {rule!r}; choose one of {', '.join(TARGET_RULES)}")
    out_times = out_times.astype(xp.float32)
    tau = out_times.min(axis=1, keepdims=True)
    silent = tau >= tmax
    wrong = xp.where(out_times < tau + gamma, xp.minimum(tau + gamma, tmax), out_times)
    wrong = xp.where(silent, float(tmax), wrong)
    index = xp.arange(out_times.shape[1])[None, :]
    if rule == "eq6":
        leader = xp.maximum(tau - gamma, 0)
    else:
        loses_tie = ((out_times == tau) & (index < labels[:, None])).any(axis=1, keepdims=True)
        leader = xp.where(loses_tie, xp.maximum(tau - 1, 0), tau)
    correct = xp.where(silent, tmax - gamma, leader)
    return xp.where(index == labels[:, None], correct, wrong)


def output_errors(out_times: Array, targets: Array, tmax: int) -> Array:
    """Eq. (5): ``e_j = (T_j - t_j) / tmax``."""
    return (targets - out_times.astype(targets.dtype)) / tmax


def normalise_rows(delta: Array, xp: ModuleType = np) -> Array:
    """Each sample's deltas divided by their L2 norm (all-zero rows stay zero)."""
    norms = xp.sqrt((delta * delta).sum(axis=1, keepdims=True))
    return delta / xp.where(norms > 0, norms, 1)


# --------------------------------------------------------------------------------------------
# backward
# --------------------------------------------------------------------------------------------


@dataclass
class LayerGradient:
    """What the backward pass of one layer returns."""

    weights: Array  # (n_out, n_in) dL/dW, summed over the batch
    delta_in: Array | None  # (batch, n_in) un-normalised deltas of the presynaptic layer


def layer_backward(
    in_times: Array,
    out_times: Array,
    delta: Array,
    weights: Array,
    tmax: int,
    *,
    pixel_inputs: bool,
    propagate: bool = False,
    xp: ModuleType = np,
) -> LayerGradient:
    """Gradients of one layer from its (normalised) deltas.

    ``dL/dw_ji = sum_b delta_bj [t_bi <= t_bj]`` and ``delta_bi = sum_j delta_bj w_ji [t_bi <= t_bj]``.
    The mask is a dense ``(batch, n_in, n_out)`` boolean reduced by ``einsum`` (measured fastest
    on NumPy: 19 ms for 32 x 784 x 600, against 80+ ms for an event-sorted scatter-add).

    DECISION: pixels that never spike (black) take no gradient (they are not neurons and never
    reach the counter); hidden neurons that never fired keep their fake spike at ``tmax``, so
    they take part in ``[t_i <= t_j]`` for silent postsynaptic neurons (as in S4NN).
    """
    if pixel_inputs:
        in_times = xp.where(in_times < tmax, in_times, tmax + 1)
    before = in_times[:, :, None] <= out_times[:, None, :]  # (batch, n_in, n_out)
    delta = delta.astype(xp.float32)
    grad_t = xp.einsum("bij,bj->ij", before, delta)
    delta_in = None
    if propagate:
        if pixel_inputs:
            raise ValueError("the input layer has no deltas to propagate to")
        delta_in = xp.einsum("bij,bj,ji->bi", before, delta, weights.astype(xp.float32))
    return LayerGradient(xp.ascontiguousarray(grad_t.T), delta_in)


@dataclass
class BatchResult:
    """One mini-batch's gradients and figures."""

    weight_grads: list[Array]  # per layer, summed over the batch
    alpha_grads: list[float]  # per layer, summed over the batch (the update divides by the batch size)
    loss: float  # summed over the batch
    correct: int
    output_time_sum: float  # sum of the first output spike times (tmax when silent)
    trained: int  # samples that took part (not silent)
    silent: int  # samples skipped: a hidden layer without any spike
    readout_scale_grad: float = 0.0  # snapshot-ce: dL/d(readout scale), summed over the batch


def batch_gradients(
    in_times: Array,
    labels: Array,
    weights: Sequence[Array],
    alphas: Sequence[float],
    thetas: Sequence[float],
    *,
    tmax: int,
    gamma: float,
    target_rule: str = "eq6",
    binary: bool = True,
    backward: str = "temporal",
    count_margin: int = 4,
    surrogate_width: float = 40.0,
    snapshot_steps: Sequence[int] = (),
    readout_scale: float = 1.0,
    keep_masks: Sequence[Array] | None = None,
    xp: ModuleType = np,
) -> BatchResult:
    """Forward, targets, backward for one mini-batch (no update).

    ``keep_masks``: hidden dropout, ``snapshot-ce`` only (:func:`snapshot_ce_gradients`).

    ``snapshot-ce`` never runs the exact forward: its figures are those of its own readout
    (``correct``: highest summed score; ``output_time_sum``: NaN, it has no output spike times).
    """
    if backward in COUNTER_BACKWARDS and not binary:
        raise Bs4nnError(f"the {backward} backward works on the binary counters: it needs binary weights")
    if keep_masks is not None and backward != "snapshot-ce":
        raise Bs4nnError(f"hidden dropout is a snapshot-ce option, not the {backward} backward's")
    if backward == "snapshot-ce":
        weight_grads, scale_grad, loss, correct = snapshot_ce_gradients(
            in_times,
            labels,
            weights,
            layer_thresholds(alphas, thetas, binary),
            readout_scale,
            snapshot_steps=snapshot_steps,
            surrogate_width=surrogate_width,
            keep_masks=keep_masks,
            xp=xp,
        )
        batch = in_times.shape[0]
        return BatchResult(
            weight_grads=weight_grads,
            alpha_grads=[0.0] * len(weights),
            loss=loss,
            correct=correct,
            output_time_sum=math.nan,
            trained=batch,
            silent=0,
            readout_scale_grad=scale_grad,
        )
    times, final_counts = forward(in_times, weights, alphas, thetas, tmax, binary, xp)
    decision, first_time = decide(times[-1], final_counts, tmax, xp)
    # A sample whose hidden layer is completely silent has no path for a gradient: skip it.
    alive = xp.ones(in_times.shape[0], dtype=bool)
    for hidden in times[1:-1]:
        alive &= (hidden < tmax).any(axis=1)
    n_alive = int(alive.sum())
    figures = {
        "correct": int((decision == labels).sum()),
        "output_time_sum": float(first_time.sum()),
        "trained": n_alive,
        "silent": in_times.shape[0] - n_alive,
    }
    if backward == "snapshot":
        weight_grads, loss = snapshot_gradients(
            times,
            first_time,
            labels,
            weights,
            layer_thresholds(alphas, thetas, binary),
            alive,
            tmax=tmax,
            count_margin=count_margin,
            surrogate_width=surrogate_width,
            xp=xp,
        )
        # DECISION: alphas stay put; this rule works in counts, and alpha only sets the integer count.
        return BatchResult(weight_grads=weight_grads, alpha_grads=[0.0] * len(weights), loss=loss, **figures)
    if backward != "temporal":
        raise Bs4nnError(f"unknown backward {backward!r}; choose one of {', '.join(BACKWARDS)}")
    targets = relative_targets(times[-1], labels, gamma, tmax, xp, target_rule)
    errors = output_errors(times[-1], targets, tmax) * alive[:, None]
    loss = float(0.5 * (errors * errors).sum())
    delta = normalise_rows(errors, xp)
    n_layers = len(weights)
    weight_grads: list[Array] = [None] * n_layers
    alpha_grads = [0.0] * n_layers
    for layer in range(n_layers - 1, -1, -1):
        gradient = layer_backward(
            times[layer],
            times[layer + 1],
            delta,
            weights[layer],
            tmax,
            pixel_inputs=layer == 0,
            propagate=layer > 0,
            xp=xp,
        )
        weight_grads[layer] = gradient.weights
        if binary:
            # eq. (16), straight-through: dL/dalpha = sum_ji B_ji dL/d(alpha B_ji) = sum_j delta_j count_j(t_j);
            # DECISION (as the reference code): the mean over the layer's weight entries, batch-averaged.
            signs = binary_weights(weights[layer], xp)
            alpha_grads[layer] = float((signs * gradient.weights).mean())
        if gradient.delta_in is not None:
            delta = normalise_rows(gradient.delta_in, xp)
    return BatchResult(weight_grads=weight_grads, alpha_grads=alpha_grads, loss=loss, **figures)


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
    """
    snapshot = xp.minimum(decision_time, tmax - 1)[:, None]
    fired = [(layer_times <= snapshot).astype(xp.float32) for layer_times in times]
    signs = [binary_weights(weight, xp).astype(xp.float32) for weight in weights]
    counters = [fired[layer] @ signs[layer].T for layer in range(len(weights))]
    out = counters[-1]
    count = float(threshold_counts[-1])
    is_label = xp.arange(out.shape[1])[None, :] == labels[:, None]
    short = xp.where(is_label, xp.maximum(count + count_margin - out, 0), 0) * alive[:, None]
    over = xp.where(is_label, 0, xp.maximum(out - (count - 1 - count_margin), 0)) * alive[:, None]
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
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    rows = xp.arange(batch)
    loss = float(-log_probs[rows, labels].sum())
    correct = int((scores.argmax(axis=1) == labels).sum())
    grad_scores = xp.exp(log_probs)
    grad_scores[rows, labels] -= 1
    weight_grads: list[Array] = [None] * len(weights)
    weight_grads[-1] = readout_scale * (grad_scores.T @ spiked_sum)
    scale_grad = float((grad_scores * summed_counters).sum())
    delta = xp.tile(readout_scale * (grad_scores @ signs[-1]), (n_steps, 1))  # dL/d(spiked bits), per snapshot
    for layer in range(len(weights) - 2, -1, -1):
        if keep_masks is not None:
            delta = delta * xp.tile(keep_masks[layer], (n_steps, 1))
        centre = float(threshold_counts[layer]) - 0.5
        delta = delta * xp.maximum(0, 1 - xp.abs(counters[layer] - centre) / surrogate_width)
        weight_grads[layer] = delta.T @ spiked[layer]
        if layer > 0:
            delta = delta @ signs[layer]
    return weight_grads, scale_grad, loss, correct


def parallel_batch_gradients(
    pool: ThreadPoolExecutor | None, in_times: Array, labels: Array, *args: Any, **kwargs: Any
) -> BatchResult:
    """:func:`batch_gradients` on the two halves of a batch in two threads (NumPy releases the GIL).

    Samples are independent until the update, so the sums equal the whole batch's up to float
    summation order (fixed: the split is deterministic).  BLAS is held to one thread meanwhile:
    the two halves already use both cores, and OpenBLAS's own threads on top made the snapshot
    backward's matrix products contend (fashion, batch 32, two halves: 371 images/s without the
    limit, 656 with it; tests/benchmarks/bench_train.py).  The one-thread path (``pool=None``,
    ``--threads 1``) is held to one BLAS thread too, so that no run depends on the machine's core
    count: with two hidden layers the snapshot backward's gradients change with OpenBLAS's thread
    count (fashion-2x600, 10 batches of 16: 1.4 million entries differ between 1 and 2 threads).
    """
    keep = kwargs.pop("keep_masks", None)  # per sample, like the images: split with them

    def gradients(rows: slice) -> BatchResult:
        masks = None if keep is None else [mask[rows] for mask in keep]
        return batch_gradients(in_times[rows], labels[rows], *args, keep_masks=masks, **kwargs)

    with threadpool_limits(limits=1, user_api="blas"):
        if pool is None or in_times.shape[0] < 2:
            return gradients(slice(None))
        half = in_times.shape[0] // 2
        parts = list(pool.map(gradients, (slice(0, half), slice(half, None))))
    first, second = parts
    return BatchResult(
        weight_grads=[a + b for a, b in zip(first.weight_grads, second.weight_grads, strict=True)],
        alpha_grads=[a + b for a, b in zip(first.alpha_grads, second.alpha_grads, strict=True)],
        loss=first.loss + second.loss,
        correct=first.correct + second.correct,
        output_time_sum=first.output_time_sum + second.output_time_sum,
        trained=first.trained + second.trained,
        silent=first.silent + second.silent,
        readout_scale_grad=first.readout_scale_grad + second.readout_scale_grad,
    )


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def evaluate(
    weights: Sequence[np.ndarray],
    alphas: Sequence[float],
    thetas: Sequence[float],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    tmax: int,
    imax: int,
    binary: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Accuracy, mean decision time, spikes per layer up to the decision.

    Binary networks are scored by the golden model on the exported integer network (alphas
    rounded to two decimals, hardware tie rule): the number the hardware will produce.
    """
    from bs4nn.export.bitmodel import integer_network
    from bs4nn.sim.golden import golden_summary, run_golden, run_network

    start = time.perf_counter()
    input_times = encode_images(images, tmax, imax)
    if binary:
        network = integer_network([np.asarray(w) for w in weights], alphas, thetas, tmax, imax)
        result = run_golden(network, input_times, progress=progress)
        extra = {
            "threshold_counts": [layer.threshold_count for layer in network.layers],
            "scored_by": "golden model (alphas rounded to 2 decimals)",
        }
    else:
        real = [np.asarray(w, dtype=np.float64) for w in weights]
        result = run_network(input_times, real, [float(t) for t in thetas], tmax, progress=progress, desc="S4NN")
        extra = {"scored_by": "float S4NN forward (real weights)"}
    return {**golden_summary(result, labels, tmax, time.perf_counter() - start), **extra}


# --------------------------------------------------------------------------------------------
# the training run
# --------------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    """How to run a preset: where, on what, and which knobs the user changed."""

    out_dir: Path
    data_dir: str | None = None
    seed: int = 0
    binary: bool = True
    device: str = "auto"
    resume: bool = False
    plot: bool = False
    progress: bool = True
    test: bool = True  # score best.npz on the test split at the end
    threads: int = 2  # NumPy: each batch split over this many threads (1 or 2)


def split_data(preset: Preset, data_dir: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train = the first ``train_images`` of the 60,000; validation = the LAST 5,000 (never test)."""
    from bs4nn.train.datasets import load_split

    images, labels = load_split(preset.dataset, "train", data_dir)
    n_val = preset.validation_images
    limit = len(images) - 5_000
    if preset.train_images > limit:
        raise Bs4nnError(f"at most {limit} training images: the last 5,000 are the validation split")
    val_start = len(images) - 5_000
    return {
        "train": (images[: preset.train_images], labels[: preset.train_images]),
        "validation": (images[val_start : val_start + n_val], labels[val_start : val_start + n_val]),
    }


def initial_weights(preset: Preset, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, 0xB54])
    return [
        rng.uniform(low, high, size=(n_out, n_in)).astype(WEIGHT_DTYPE)
        for (low, high), n_in, n_out in zip(preset.init_ranges, preset.sizes[:-1], preset.sizes[1:], strict=True)
    ]


def effective_weight_clip(preset: Preset, binary: bool) -> tuple[float | None, ...] | None:
    """The preset's per-layer clip as a run applies it: none for real weights (S4NN mode), whose
    magnitudes are the weights themselves."""
    return preset.weight_clip if binary else None


def clip_proxy_weights(weights: Sequence[Array], clips: Sequence[float | None] | None, xp: ModuleType = np) -> None:
    """Keep each layer's proxy weights in ``[-c, c]``, in place (BinaryConnect's clip).

    Only ``sign(W)`` reaches the forward pass, so a proxy weight that has drifted far from 0 can
    no longer flip; the bound keeps every weight a bounded number of updates from a sign change.
    """
    if clips is None:
        return
    for weight, clip in zip(weights, clips, strict=True):
        if clip is not None:
            xp.clip(weight, -clip, clip, out=weight)


def epoch_batches(
    seed: int, epoch: int, spike_counts: np.ndarray, batch_size: int, bucket_batches: int = 1
) -> list[np.ndarray]:
    """The mini-batches of one epoch, a function of (seed, epoch) only, so resume is exact.

    A random permutation cut into batches.  With ``bucket_batches > 1`` the permutation is cut
    into buckets of that many batches, each sorted by input spike count before being cut, and
    the batch order shuffled again: the forward pads every row to the batch's largest spike
    count, so this is ~1.5x faster, but a batch then holds digits of similar ink (e.g. mostly
    "1"s) and the summed update is biased: measured 75-76 % validation against 78-80 % without.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(spike_counts))
    batches = []
    bucket = batch_size * bucket_batches
    for begin in range(0, len(order), bucket):
        members = order[begin : begin + bucket]
        if bucket_batches > 1:
            members = members[np.argsort(spike_counts[members], kind="stable")]
        batches.extend(members[i : i + batch_size] for i in range(0, len(members), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def epoch_moves(seed: int, epoch: int, n_images: int, max_shift: int, mirror: bool = False) -> np.ndarray:
    """Each training image's move in one epoch: (row shift, column shift, mirrored) per row.

    Shifts uniform in [-max_shift, max_shift]; mirrored 0 or 1 with probability 1/2 when
    ``mirror``, else 0.  A function of (seed, epoch) only, like :func:`epoch_batches`, so resume
    stays exact; the shifts are drawn first, so turning mirroring on leaves them as they were.
    """
    rng = np.random.default_rng([seed, epoch, MOVE_STREAM])
    shifts = rng.integers(-max_shift, max_shift + 1, size=(n_images, 2))
    mirrored = rng.integers(0, 2, size=(n_images, 1)) if mirror else np.zeros((n_images, 1), dtype=shifts.dtype)
    return np.concatenate([shifts, mirrored], axis=1)


def move_images(times: Array, moves: Array, tmax: int, xp: ModuleType = np) -> Array:
    """Spike times of square images mirrored left-right where ``moves[:, 2]`` is 1, then shifted
    by ``moves[:, :2]`` (rows, columns); pixels moved in are silent.

    Augmentation on the coded input: a moved digit is the same digit, so the network learns a
    little invariance that the 55,000 fixed images do not teach it (MNIST: test 96.13 -> 97.17 %;
    on Fashion-MNIST, whose shoes all face one way, shifts and mirrors lowered it; train/README.md).
    """
    n_images, n_pixels = times.shape
    side = math.isqrt(n_pixels)
    if side * side != n_pixels:
        raise Bs4nnError(f"moving needs square images, not {n_pixels} pixels")
    grid = xp.arange(side)
    source_rows = grid[None, :, None] - moves[:, 0, None, None]  # output (r, c) reads input (r - dy, c - dx),
    source_cols = grid[None, None, :] - moves[:, 1, None, None]  # mirrored: (r - dy, side - 1 - (c - dx))
    source_cols = xp.where(moves[:, 2, None, None] == 1, side - 1 - source_cols, source_cols)
    inside = (source_rows >= 0) & (source_rows < side) & (source_cols >= 0) & (source_cols < side)
    source = xp.clip(source_rows, 0, side - 1) * side + xp.clip(source_cols, 0, side - 1)
    moved = xp.take_along_axis(times, source.reshape(n_images, n_pixels), axis=1)
    return xp.where(inside.reshape(n_images, n_pixels), moved, tmax).astype(times.dtype)


def keep_masks(
    seed: int, epoch: int, batch_index: int, batch: int, hidden_sizes: Sequence[int], rate: float
) -> list[np.ndarray]:
    """Hidden dropout for one mini-batch: per hidden layer a ``(batch, n)`` float32 mask, 0 for a
    dropped neuron (probability ``rate``), ``1 / (1 - rate)`` for a kept one (inverted dropout:
    the next layer's counters keep their mean, so the trained thresholds hold without dropout).

    A function of (seed, epoch, batch index) only, so resume stays exact.  Why: the Fashion-MNIST
    hidden layer fits its training images far better than the validation ones (train/README.md).
    """
    rng = np.random.default_rng([seed, epoch, DROPOUT_STREAM, batch_index])
    keep = np.float32(1 / (1 - rate))
    return [np.where(rng.random((batch, n)) < rate, np.float32(0), keep) for n in hidden_sizes]


def learning_rates(preset: Preset, epoch: int) -> tuple[float, float]:
    """``(eta, mu)`` of a 1-based epoch: x decay_factor every decay_every epochs."""
    factor = preset.decay_factor ** ((epoch - 1) // preset.decay_every)
    return preset.eta * factor, preset.mu * factor


def check_finite(arrays: Sequence[Array], alphas: Sequence[float], where: str, xp: ModuleType) -> None:
    for index, array in enumerate(arrays):
        if not bool(xp.isfinite(array).all()):
            raise Bs4nnError(f"{where}: layer {index} gradients or weights hold NaN/inf; training stopped")
    for index, alpha in enumerate(alphas):
        if not math.isfinite(alpha):
            raise Bs4nnError(f"{where}: alpha of layer {index} is {alpha}; training stopped")


def check_not_silent(times: Sequence[Array], tmax: int, what: str) -> None:
    """Refuse to train a network whose hidden layers never fire: there is no gradient path."""
    for layer, spikes in enumerate(times[1:-1], start=1):
        if not bool((spikes < tmax).any()):
            raise Bs4nnError(
                f"{what}: hidden layer {layer} never fires on {spikes.shape[0]} images "
                "(silent network); lower theta, raise alpha or the initial weights"
            )


METRIC_FIELDS = (
    "epoch",
    "phase",
    "eta",
    "mu",
    "loss",
    "train_accuracy",
    "train_mean_output_time",
    "silent_samples",
    "validation_accuracy",
    "validation_mean_decision_time",
    "validation_spikes_until_decision",
    "validation_tie_rate",
    "alphas",
    "threshold_counts",
    "readout_scale",
    "train_seconds",
    "synaptic_events_per_second",
)


def write_metrics(out_dir: Path, history: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({key: json.dumps(value) if isinstance(value, list) else value for key, value in row.items()})
    atomic_write_text(out_dir / "metrics.csv", buffer.getvalue())
    atomic_write_text(out_dir / "metrics.json", json.dumps(history, indent=1) + "\n")


LOSS_TITLES = {
    "temporal": "training loss (eq. 7, per sample)",
    "snapshot": "training hinge loss (counts, per sample)",
    "snapshot-ce": "training loss (cross-entropy / readout hinge)",
}
"""What the ``loss`` column measures under each backward."""


def plot_metrics(out_dir: Path, history: list[dict[str, Any]], backward: str = "temporal") -> Path:
    """Learning curves (loss, accuracies, mean output time) as ``learning_curves.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(epochs, [row["loss"] for row in history], marker="o")
    axes[0].set(title=LOSS_TITLES[backward], xlabel="epoch")
    axes[1].plot(epochs, [100 * row["train_accuracy"] for row in history], marker="o", label="train (float alphas)")
    axes[1].plot(epochs, [100 * row["validation_accuracy"] for row in history], marker="o", label="validation")
    axes[1].set(title="accuracy %", xlabel="epoch")
    axes[1].legend()
    first_outputs = [row["train_mean_output_time"] for row in history]  # None under snapshot-ce
    axes[2].plot(epochs, [math.nan if t is None else t for t in first_outputs], marker="o", label="train first output")
    axes[2].plot(epochs, [row["validation_mean_decision_time"] for row in history], marker="o", label="val decision")
    axes[2].set(title="mean output spike time (steps)", xlabel="epoch")
    axes[2].legend()
    readout = [row["epoch"] for row in history if row.get("phase") == "readout"]
    if readout:  # the switch to the readout epochs (the loss and the train figures change meaning there)
        for axis in axes:
            axis.axvline(readout[0] - 0.5, color="grey", linestyle="--", linewidth=1)
        axes[0].annotate("readout epochs", (readout[0] - 0.5, 0.95), xycoords=("data", "axes fraction"), ha="right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return atomic_write_bytes(out_dir / "learning_curves.png", buffer.getvalue())


PRESET_DEFAULTS = {field.name: field.default for field in fields(Preset)}


def _run_signature(preset: Preset, options: RunOptions) -> dict[str, Any]:
    """What must match for ``--resume`` to continue the same run."""
    settings = preset.as_dict()
    settings.pop("epochs")  # a resumed run may be extended
    settings.pop("calibrate_thresholds")  # after training: resuming a finished run only calibrates
    settings.pop("weight_clip")
    if preset.backward == "temporal":  # the snapshot knobs do not matter: runs made before them still resume
        for key in ("backward", "count_margin", "surrogate_width"):
            settings.pop(key)
    # absent at their defaults: runs made before them still resume
    for key in (
        "optimizer",
        "snapshot_steps",
        "readout_scale",
        "readout_eta",
        "shift_pixels",
        "mirror_images",
        "hidden_dropout",
    ):
        if getattr(preset, key) == PRESET_DEFAULTS[key]:
            settings.pop(key)
    settings.pop("readout_epochs")  # may be extended, like epochs
    clips = effective_weight_clip(preset, options.binary)
    if clips is not None:  # absent when unbounded: older runs, and S4NN runs of a clipping preset, still resume
        settings["weight_clip"] = list(clips)
    return {"preset": settings, "seed": options.seed, "binary": options.binary}


def train(preset: Preset, options: RunOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``preset``; checkpoint every epoch; return the run summary (also ``summary.json``).

    Epochs ``1..preset.epochs`` train every layer with ``preset.backward``; the ``readout_epochs``
    after them (if any) train the output layer alone with the snapshot hinge and Adam, from the
    output count chosen on validation at the switch (:func:`choose_readout_count`).
    """
    from tqdm import tqdm

    if preset.backward in COUNTER_BACKWARDS and not options.binary:  # before the data are loaded
        raise Bs4nnError(f"--backward {preset.backward} works on the binary counters; it cannot train real weights")
    xp = get_xp(options.device)
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    signature = _run_signature(preset, options)
    data = split_data(preset, options.data_dir)
    train_images, train_labels = data["train"]
    val_images, val_labels = data["validation"]
    encoded = encode_images(train_images, preset.tmax, preset.imax)
    spike_counts = (encoded < preset.tmax).sum(axis=1)
    train_times = xp.asarray(encoded.astype(np.int16))
    train_labels_xp = xp.asarray(train_labels.astype(np.int64))

    history: list[dict[str, Any]] = []
    start_epoch = 1
    weights_np = initial_weights(preset, options.seed)
    alphas = [float(a) for a in preset.alphas]
    thetas = [float(t) for t in preset.thetas]
    readout_scale = np.array([preset.readout_scale], dtype=WEIGHT_DTYPE)
    phase = "train"
    state: dict[str, np.ndarray] = {}
    if options.resume:
        latest = out_dir / "checkpoint.npz"
        checkpoint = load_checkpoint(latest)
        if checkpoint.hyperparameters.get("run") != signature:
            raise Bs4nnError(f"{latest}: was made with other settings; use another --out or drop --resume")
        phase = checkpoint.hyperparameters.get("phase", "train")
        if phase == "readout" and checkpoint.hyperparameters.get("train_epochs") != preset.epochs:
            raise Bs4nnError(
                f"{latest}: its readout epochs followed {checkpoint.hyperparameters.get('train_epochs')} training "
                f"epochs; --epochs {preset.epochs} would train every layer again after them"
            )
        weights_np = [np.asarray(w, dtype=WEIGHT_DTYPE) for w in checkpoint.weights]
        alphas = [float(a) for a in checkpoint.alphas]
        thetas = [float(t) for t in checkpoint.thetas]
        state = checkpoint.state
        readout_scale = np.asarray(state.get("readout_scale", readout_scale), dtype=WEIGHT_DTYPE)
        history = list(checkpoint.metrics)
        start_epoch = checkpoint.epoch + 1
        log(f"resuming {latest} after epoch {checkpoint.epoch}")
    weights = [xp.asarray(w) for w in weights_np]
    readout_scale = xp.asarray(readout_scale)
    clips = effective_weight_clip(preset, options.binary)
    clip_proxy_weights(weights, clips, xp)
    snapshot_ce = preset.backward == "snapshot-ce"
    optimizer = make_optimizer(preset.optimizer, [*weights, readout_scale] if snapshot_ce else weights, xp)
    readout_optimizer = Adam(weights[-1:], xp)
    if options.resume and phase == "train":
        optimizer.load_state(state, "optimizer")
    elif options.resume:
        readout_optimizer.load_state(state, "readout_optimizer")

    probe = train_times[: min(256, train_times.shape[0])].astype(xp.int32)
    probe_times, _ = forward(probe, weights, alphas, thetas, preset.tmax, options.binary, xp)
    check_not_silent(probe_times, preset.tmax, "initial network" if start_epoch == 1 else "resumed network")

    best_accuracy = max((row["validation_accuracy"] for row in history), default=-1.0)
    pool = ThreadPoolExecutor(max_workers=2) if xp is np and options.threads > 1 else None
    n_train = train_times.shape[0]
    total_epochs = preset.epochs + preset.readout_epochs
    readout_inputs = None  # the last hidden layer's spike times on the training images, in the readout epochs
    for epoch in range(start_epoch, total_epochs + 1):
        eta, mu = learning_rates(preset, epoch)
        gradient_options = preset.gradient_options()
        trained = slice(None)  # the layers this epoch trains
        if epoch > preset.epochs:
            if phase == "train":
                thetas = choose_readout_count(weights, alphas, thetas, val_images, val_labels, preset, log)
                phase = "readout"
            if readout_inputs is None:  # the hidden layers are frozen from here: their spike times, once
                readout_inputs = last_hidden_times(train_times, weights, alphas, thetas, preset.tmax, xp)
            eta, mu = preset.readout_eta, 0.0
            gradient_options["backward"] = "snapshot"
            trained = slice(-1, None)
        batches = epoch_batches(options.seed, epoch, spike_counts, preset.batch_size, preset.bucket_batches)
        moves = None
        if (preset.shift_pixels or preset.mirror_images) and phase == "train":
            moves = xp.asarray(epoch_moves(options.seed, epoch, n_train, preset.shift_pixels, preset.mirror_images))
        totals = {"loss": 0.0, "correct": 0, "time": 0.0, "trained": 0, "silent": 0, "seen": 0, "events": 0}
        started = time.perf_counter()
        bar = tqdm(
            batches,
            desc=f"epoch {epoch}/{total_epochs}" + (" (readout)" if phase == "readout" else ""),
            unit="batch",
            disable=not options.progress,
            leave=True,
        )
        for batch_index, batch in enumerate(bar):
            rows = xp.asarray(batch)
            in_times = (train_times if phase == "train" else readout_inputs)[rows].astype(xp.int32)
            if moves is not None:
                in_times = move_images(in_times, moves[rows], preset.tmax, xp)
            labels = train_labels_xp[rows]
            if preset.hidden_dropout and phase == "train":
                masks = keep_masks(
                    options.seed, epoch, batch_index, len(batch), preset.sizes[1:-1], preset.hidden_dropout
                )
                gradient_options["keep_masks"] = [xp.asarray(mask) for mask in masks]
            result = parallel_batch_gradients(
                pool,
                in_times,
                labels,
                weights[trained],
                alphas[trained],
                thetas[trained],
                binary=options.binary,
                readout_scale=float(readout_scale[0]),
                xp=xp,
                **gradient_options,
            )
            where = f"epoch {epoch}, batch {batch_index}"
            check_finite(result.weight_grads, result.alpha_grads, where, xp)
            decay = preset.weight_decay * result.trained
            grads = [grad + decay * weight for grad, weight in zip(result.weight_grads, weights[trained], strict=True)]
            if phase == "readout":
                weights[trained] = readout_optimizer.step(weights[trained], grads, eta)
            elif snapshot_ce:
                scale_grad = xp.asarray([result.readout_scale_grad], dtype=WEIGHT_DTYPE)
                *updated, readout_scale = optimizer.step([*weights, readout_scale], [*grads, scale_grad], eta)
                weights[:] = updated
                readout_scale = readout_scale.astype(WEIGHT_DTYPE)
            else:
                weights[:] = optimizer.step(weights, grads, eta)
            weights[:] = [weight.astype(WEIGHT_DTYPE, copy=False) for weight in weights]
            clip_proxy_weights(weights, clips, xp)
            if options.binary and phase == "train":
                alphas = [
                    max(MIN_ALPHA, a - mu * g / len(batch)) for a, g in zip(alphas, result.alpha_grads, strict=True)
                ]
            check_finite(weights, alphas, where, xp)
            totals["loss"] += result.loss
            totals["correct"] += result.correct
            totals["time"] += result.output_time_sum
            totals["trained"] += result.trained
            totals["silent"] += result.silent
            totals["seen"] += in_times.shape[0]
            totals["events"] += int((in_times < preset.tmax).sum()) * result.weight_grads[0].shape[0]
            seen = totals["seen"]
            postfix = {"loss": f"{totals['loss'] / seen:.4f}", "acc": f"{100 * totals['correct'] / seen:.2f}"}
            if not math.isnan(totals["time"]):
                postfix["t_out"] = f"{totals['time'] / seen:.1f}"
            bar.set_postfix(postfix)
        bar.close()
        train_seconds = time.perf_counter() - started
        weights_np = [to_numpy(w).astype(WEIGHT_DTYPE) for w in weights]
        validation = evaluate(
            weights_np,
            alphas,
            thetas,
            val_images,
            val_labels,
            tmax=preset.tmax,
            imax=preset.imax,
            binary=options.binary,
        )
        row = {
            "epoch": epoch,
            "phase": phase,
            "eta": eta,
            "mu": mu,
            "loss": totals["loss"] / n_train,
            "train_accuracy": totals["correct"] / n_train,
            "train_mean_output_time": None if math.isnan(totals["time"]) else totals["time"] / n_train,
            "silent_samples": totals["silent"],
            "validation_accuracy": validation["accuracy"],
            "validation_mean_decision_time": validation["mean_decision_time"],
            "validation_spikes_until_decision": validation["mean_spikes_until_decision"],
            "validation_tie_rate": validation["tied_decisions"] / validation["images"],
            "alphas": list(alphas),
            "threshold_counts": validation["threshold_counts"] if options.binary else None,
            "train_seconds": train_seconds,
            "synaptic_events_per_second": totals["events"] / train_seconds,
        }
        if snapshot_ce:
            row["readout_scale"] = float(readout_scale[0])
        history.append(row)
        state = {"learning_rates": np.array([eta, mu]), "readout_scale": to_numpy(readout_scale)}
        state.update(optimizer.state_arrays("optimizer") if phase == "train" else {})
        state.update(readout_optimizer.state_arrays("readout_optimizer") if phase == "readout" else {})
        checkpoint = Checkpoint(
            sizes=list(preset.sizes),
            weights=weights_np,
            alphas=list(alphas),
            thetas=list(thetas),
            tmax=preset.tmax,
            imax=preset.imax,
            binary=options.binary,
            dataset=preset.dataset,
            seed=options.seed,
            epoch=epoch,
            hyperparameters={"run": signature, "phase": phase, "train_epochs": preset.epochs},
            metrics=history,
            state=state,
        )
        # best.npz first: a kill between the two writes then re-runs this epoch, never loses a best.
        if validation["accuracy"] > best_accuracy:
            best_accuracy = validation["accuracy"]
            save_checkpoint(out_dir / "best.npz", checkpoint)
        save_checkpoint(out_dir / "checkpoint.npz", checkpoint)
        write_metrics(out_dir, history)
        if options.plot:
            plot_metrics(out_dir, history, preset.backward)
        log(
            f"epoch {epoch}{' (readout)' if phase == 'readout' else ''}: loss {row['loss']:.4f}, "
            f"train {100 * row['train_accuracy']:.2f} %, "
            f"validation {100 * row['validation_accuracy']:.2f} % ({validation['scored_by']}), "
            f"{train_seconds:.1f} s, alphas {', '.join(f'{a:.3f}' for a in alphas)}"
        )

    if pool is not None:
        pool.shutdown()
    return finish_run(preset, options, history, log)


def last_hidden_times(
    in_times: Array,
    weights: Sequence[Array],
    alphas: Sequence[float],
    thetas: Sequence[float],
    tmax: int,
    xp: ModuleType = np,
    chunk: int = 128,
) -> Array:
    """The last hidden layer's spike times (int16) for every row of ``in_times``, in chunks.

    ``chunk`` as the golden model's: ``layer_spike_times`` holds a (rows, input spikes, neurons)
    array (chunks of 2,000 Fashion-MNIST images took 14 GB).

    Why: the readout epochs train the output layer alone, so the layers below give the same
    spike times in every epoch; computed once, each readout epoch runs only the output layer
    (mnist-ce: 42 s per readout epoch before, with the whole network's forward in every batch).
    """
    parts = []
    for begin in range(0, in_times.shape[0], chunk):
        rows = in_times[begin : begin + chunk].astype(xp.int32)
        times, _ = forward(rows, weights[:-1], alphas[:-1], thetas[:-1], tmax, True, xp)
        parts.append(times[-1].astype(xp.int16))
    return xp.concatenate(parts)


def choose_readout_count(
    weights: Sequence[Array],
    alphas: Sequence[float],
    thetas: Sequence[float],
    images: np.ndarray,
    labels: np.ndarray,
    preset: Preset,
    log: Callable[[str], None],
) -> list[float]:
    """The thetas with the output layer's count chosen on validation over a wide range.

    Why: ``snapshot-ce`` never uses the output threshold, so before the readout epochs train
    against it, it is searched at ``READOUT_COUNT_SCALES`` times the preset's count (golden
    model, hardware tie rule; the hidden counts stay as trained).
    """
    from bs4nn.train.calibration import READOUT_COUNT_SCALES, calibrate_thresholds

    output = len(weights) - 1
    calibration = calibrate_thresholds(
        [to_numpy(w) for w in weights],
        alphas,
        thetas,
        images,
        labels,
        tmax=preset.tmax,
        imax=preset.imax,
        scales=READOUT_COUNT_SCALES,
        layers=[output],
        passes=1,
    )
    log(
        f"output count {calibration.counts[output]} chosen on validation over a wide range (was "
        f"{calibration.trained_counts[output]}): validation {100 * calibration.trained_accuracy:.2f} % -> "
        f"{100 * calibration.accuracy:.2f} %"
    )
    return list(calibration.thetas)


def finish_run(preset: Preset, options: RunOptions, history: list[dict[str, Any]], log: Callable[[str], None]) -> dict:
    """Calibrate ``best.npz``'s thresholds on validation (if the preset says so), score the run's
    model on the test split, write ``summary.json``."""
    out_dir = Path(options.out_dir)
    if options.plot and history:
        log(f"learning curves: {plot_metrics(out_dir, history, preset.backward)}")
    summary: dict[str, Any] = {"preset": preset.name, "seed": options.seed, "binary": options.binary}
    best_path = out_dir / "best.npz"
    if not best_path.is_file():
        return summary
    best = load_checkpoint(best_path)
    summary.update(
        best_epoch=best.epoch,
        validation_accuracy=best.metrics[-1]["validation_accuracy"],
        alphas=best.alphas,
        total_train_seconds=sum(row["train_seconds"] for row in history),
        epochs=len(history),
    )
    model = best
    if options.binary and preset.calibrate_thresholds:
        model = calibrate_run(preset, options, best, summary, log)
    if options.test:
        from bs4nn.train.datasets import load_split

        images, labels = load_split(preset.dataset, "test", options.data_dir)
        test = evaluate(
            model.weights,
            model.alphas,
            model.thetas,
            images,
            labels,
            tmax=model.tmax,
            imax=model.imax,
            binary=model.binary,
        )
        summary["test"] = test
        log(
            f"best epoch {best.epoch}: validation {100 * summary['validation_accuracy']:.2f} %, "
            f"test {100 * test['accuracy']:.2f} % ({test['scored_by']}), mean decision time "
            f"{test['mean_decision_time']:.1f}, spikes per layer up to the decision "
            f"{', '.join(f'{v:.1f}' for v in test['mean_spikes_until_decision'])}; "
            f"{test['tied_decisions']} test images decided by the tie rule (scored as the hardware "
            f"breaks them; {100 * test['accuracy_ties_lenient']:.2f} % if such ties counted as correct, "
            "the authors' scoring)"
        )
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def calibrate_run(
    preset: Preset, options: RunOptions, best: Checkpoint, summary: dict[str, Any], log: Callable[[str], None]
) -> Checkpoint:
    """``best`` with its thresholds chosen on the validation split, saved as ``calibrated.npz``.

    The calibrated model keeps the trained alphas and gets ``theta = (count - 1/2) * alpha`` with
    the alphas rounded to two decimals, as the exporter rounds them (``theta_for_count``): the
    deployed counters are exactly the chosen counts.  The search and its figures go into its
    hyperparameters and into ``summary["calibration"]``.  A ``snapshot-ce`` model from before the
    readout epochs first gets its output count from the wide search (:func:`choose_readout_count`).
    """
    from bs4nn.train.calibration import calibrate_thresholds

    images, labels = split_data(preset, options.data_dir)["validation"]
    started = time.perf_counter()
    thetas = best.thetas
    if preset.backward == "snapshot-ce" and best.hyperparameters.get("phase") == "train":
        # its output threshold was never trained: search it widely first, as the readout epochs do
        thetas = choose_readout_count(best.weights, best.alphas, thetas, images, labels, preset, log)
    calibration = calibrate_thresholds(
        best.weights, best.alphas, thetas, images, labels, tmax=best.tmax, imax=best.imax
    )
    figures = {key: value for key, value in calibration.as_dict().items() if key != "tried"}
    figures["seconds"] = time.perf_counter() - started
    model = replace(
        best,
        thetas=calibration.thetas,
        hyperparameters={**best.hyperparameters, "calibration": calibration.as_dict()},
    )
    save_checkpoint(Path(options.out_dir) / "calibrated.npz", model)
    summary["calibration"] = figures
    log(
        f"thresholds calibrated on validation: counts {calibration.trained_counts} -> {calibration.counts}, "
        f"validation {100 * calibration.trained_accuracy:.2f} % -> {100 * calibration.accuracy:.2f} % "
        f"({figures['seconds']:.0f} s)"
    )
    return model


def default_out_dir(preset: Preset) -> Path:
    return Path(os.environ.get("BS4NN_RUNS", "runs")) / preset.name


def ship_pretrained(
    run_dir: str | os.PathLike, name: str, command: str, dest_dir: str | os.PathLike = PRETRAINED_DIR
) -> Path:
    """Copy a run's model (``run_model_path``: calibrated, else best) to ``train/pretrained/NAME.npz``
    with a JSON of its provenance.

    The JSON holds the exact command, seed, wall time, the validation accuracy that selected it,
    the threshold calibration and the golden-model test figures from the run's ``summary.json``.
    The optimiser state is left out: a shipped model is deployed, not resumed (Adam's moments
    tripled the Fashion-MNIST file, 3.3 -> 9.6 MB).
    """
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise Bs4nnError(f"{summary_path}: not found; the run has not finished")
    summary = json.loads(summary_path.read_text())
    best = replace(load_checkpoint(run_model_path(run_dir)), state={})
    dest_dir = Path(dest_dir)
    target = save_checkpoint(dest_dir / f"{name}.npz", best)
    info = {
        "command": command,
        "dataset": best.dataset,
        "sizes": best.sizes,
        "seed": best.seed,
        "best_epoch": best.epoch,
        "epochs_run": summary.get("epochs"),
        "train_wall_seconds": summary.get("total_train_seconds"),
        "validation_accuracy": summary.get("validation_accuracy"),
        "validation_split": "last 5,000 of the 60,000 training images (trained on the first 55,000)",
        "alphas": best.alphas,
        "alphas_rounded": [float(quantize_alpha(a)) for a in best.alphas],
        "thetas": best.thetas,
        "calibration": summary.get("calibration"),
        "test": summary.get("test"),
    }
    atomic_write_text(dest_dir / f"{name}.json", json.dumps(info, indent=2) + "\n")
    return target

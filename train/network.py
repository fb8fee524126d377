"""The forward pass of a BS4NN (nanoGPT's ``model.py``): sign weights, integer thresholds, spike times.

Layer ``l`` uses ``B = sign(W)`` (+1 for ``w >= 0``, the exporter's rule) and the integer
threshold ``threshold_count(theta_l, alpha_l)``, i.e. exactly ``alpha_l * count >= theta_l``,
through :func:`bs4nn.sim.semantics.layer_spike_times` -- the same code the golden model runs, so
with alphas rounded to two decimals the trainer's spike times ARE the golden model's.  A neuron
that never fires has time ``tmax`` (the S4NN "fake spike").  S4NN mode (``binary=False``) uses
the real weights and theta itself.

One source for NumPy and CuPy (``xp``, :func:`get_xp`); every function is vectorised over a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.sim.semantics import Array, layer_spike_times, threshold_count

WEIGHT_DTYPE = np.float32
"""The proxy weights live in float32 during training, as in the checkpoint (bitwise resume)."""


@dataclass(frozen=True)
class ProxyNetwork:
    """A network as training holds it: real proxy weights, alphas, thetas and its time coding.

    Why one type: evaluation, the threshold calibration and the readout-count search all take
    the same seven things (weights, alphas, thetas, images, labels, tmax, imax); this is the
    network half, :class:`LabelledImages` the data half.
    """

    weights: Sequence[np.ndarray]  # per layer (n_out, n_in) real proxy weights; sign(W) is what runs
    alphas: Sequence[float]
    thetas: Sequence[float]
    tmax: int
    imax: int
    binary: bool = True  # False: S4NN mode, real weights and theta itself


@dataclass(frozen=True)
class LabelledImages:
    """Images (uint8, one row per image) and their labels: a split, or part of one."""

    images: np.ndarray
    labels: np.ndarray


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


def check_not_silent(times: Sequence[Array], tmax: int, what: str) -> None:
    """Refuse to train a network whose hidden layers never fire: there is no gradient path."""
    for layer, spikes in enumerate(times[1:-1], start=1):
        if not bool((spikes < tmax).any()):
            raise Bs4nnError(
                f"{what}: hidden layer {layer} never fires on {spikes.shape[0]} images "
                "(silent network); lower theta, raise alpha or the initial weights"
            )

"""The time semantics of bs4nn: the one contract that every stage obeys.

The trainer's forward pass, the golden model, the RTL generator's tests and the C runtime's
tests all call this module; nothing else in the project re-implements these rules.

Rules (README, "Time semantics"):

* Discrete steps ``t = 0 .. tmax-1``.  Pixel ``I`` in ``0..imax`` spikes once, at
  ``t = floor((imax - I) * tmax / imax)``.  A time ``>= tmax`` means "never", so black pixels
  (``I = 0``) do not spike.
* A neuron's counter adds its synaptic weight (+1/-1 for the binary network) for each
  presynaptic spike.  At step ``t`` every spike of step ``t`` is integrated first, layer by
  layer, then the threshold is tested: a neuron crossing at ``t`` spikes at ``t`` and that spike
  is integrated by the next layer in the same step ``t`` (no synaptic delay).
* A neuron fires once, at the first step where ``count >= threshold``.  It is never reset;
  its counter keeps integrating to the end.  A neuron that never fires has spike time ``tmax``.
* Decision: the output with the earliest spike, ties to the lowest index.  If no output fires,
  the output with the largest final counter, ties to the lowest index; decision time ``tmax``.

All array functions take the array module ``xp`` (NumPy or CuPy) and are vectorised over the
batch; no Python loop runs over neurons, pixels or time steps.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from types import ModuleType
from typing import Any

import numpy as np

TMAX = 256
"""Default number of time steps (the paper's tmax)."""

IMAX = 255
"""Largest pixel intensity of 8-bit images."""

CODING_RULE = "t = floor((imax - I) * tmax / imax); t >= tmax: no spike"
"""The input coding, as written into every manifest."""

Array = Any  # numpy.ndarray or cupy.ndarray


def to_numpy(array: Array) -> np.ndarray:
    """A NumPy copy of a NumPy or CuPy array (CuPy's ``get`` copies device to host)."""
    return np.asarray(array.get() if hasattr(array, "get") else array)


def encode_images(images: Array, tmax: int = TMAX, imax: int = IMAX, xp: ModuleType = np) -> Array:
    """Time-to-first-spike code of a batch of images: bright pixels first, black never.

    ``images`` is an integer array ``(batch, ...)`` with values in ``0..imax``; the result is
    ``(batch, n_pixels)`` int32 spike times, where ``tmax`` means "no spike".
    """
    images = xp.asarray(images)
    if images.ndim < 1:
        raise ValueError("images must have a batch axis")
    if images.dtype.kind not in "iu":
        raise ValueError(f"images must be integers 0..{imax}, got dtype {images.dtype}")
    if images.size and (int(images.min()) < 0 or int(images.max()) > imax):
        raise ValueError(f"pixel values must lie in 0..{imax}")
    flat = images.reshape(images.shape[0], -1).astype(xp.int32)
    return ((imax - flat) * tmax) // imax


def exact_decimal(value: float | int | str | Decimal) -> Decimal:
    """The decimal a number is written as: ``0.3`` is 3/10, not the binary float near it."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float | np.floating):
        return Decimal(repr(float(value)))
    return Decimal(str(value))


def threshold_count(theta: float | str | Decimal, alpha: float | str | Decimal) -> int:
    """Integer counter threshold equivalent to ``alpha * count >= theta``: ``ceil(theta/alpha)``.

    Computed exactly on the decimal values (no float rounding at the boundary), so the trainer,
    the exporter and the golden model agree for every alpha written with two decimals.
    """
    alpha_d, theta_d = exact_decimal(alpha), exact_decimal(theta)
    if not alpha_d.is_finite() or alpha_d <= 0:
        raise ValueError(f"alpha must be a positive number, got {alpha}")
    if not theta_d.is_finite() or theta_d <= 0:
        raise ValueError(f"theta must be a positive number, got {theta}")
    return math.ceil(Fraction(theta_d) / Fraction(alpha_d))


def sorted_spikes(times: Array, tmax: int, xp: ModuleType = np) -> tuple[Array, Array, Array]:
    """Each row's presynaptic spikes in time order, padded to the longest row.

    Returns ``(order, sorted_times, valid)``, each ``(batch, n_events)``: ``order`` holds the
    presynaptic indices, ``sorted_times`` their times (``tmax`` where padded), ``valid`` marks
    real spikes.  ``n_events`` is the largest spike count of the batch (at least 1).
    """
    order = xp.argsort(times, axis=1, kind="stable")
    sorted_times = xp.take_along_axis(times, order, axis=1)
    n_events = max(int((sorted_times < tmax).sum(axis=1).max(initial=0)), 1)
    order, sorted_times = order[:, :n_events], sorted_times[:, :n_events]
    return order, sorted_times, sorted_times < tmax


def address_events(input_times: np.ndarray, tmax: int) -> np.ndarray:
    """One image's input spikes as ``(n_events, 2)`` int32 ``(pixel, time)``: the address-event order rule.

    Time order; pixels that spike at the same step come lowest index first; pixels that never
    spike (``time >= tmax``) are left out.  The one definition of the stream the core takes, that
    a host sends in an ``EVENTS`` frame and the board's pixel coder produces.
    """
    input_times = np.asarray(input_times).reshape(1, -1)
    order, times, valid = sorted_spikes(input_times, tmax)
    keep = valid[0]
    return np.stack([order[0][keep], times[0][keep]], axis=1).astype(np.int32)


def layer_spike_times(
    in_times: Array,
    weights: Array,
    threshold: Array | float | int,
    tmax: int = TMAX,
    xp: ModuleType = np,
) -> tuple[Array, Array]:
    """Spike times and final counters of one layer of non-leaky integrate-and-fire neurons.

    ``in_times`` ``(batch, n_in)`` int presynaptic spike times (``tmax`` = never); ``weights``
    ``(n_out, n_in)``, integer (+1/-1: the binary network, exact) or float (S4NN mode);
    ``threshold`` a scalar or ``(n_out,)``.  Returns ``(spike_times (batch, n_out) int32,
    final_counts (batch, n_out))``: the first step whose integrated count reaches the
    threshold (``tmax`` if none) and the count after the last step.

    Event-driven: each row's spikes are sorted in time, the weight columns they select are
    accumulated, and the threshold is tested only where a time step ends (so spikes of one
    step are all integrated before the test).
    """
    n_in = in_times.shape[1]
    if weights.shape[1] != n_in:
        raise ValueError(f"weights are {weights.shape}, inputs have {n_in} neurons")
    integer = weights.dtype.kind in "iub"
    acc_dtype = xp.int32 if integer else xp.float64
    order, sorted_times, valid = sorted_spikes(in_times, tmax, xp)
    # (batch, n_events, n_out): the weight each spike adds to each postsynaptic counter.
    contributions = xp.asarray(weights, dtype=acc_dtype).T[order]
    contributions *= valid[:, :, None]
    counts = xp.cumsum(contributions, axis=1, out=contributions)
    step_ends = xp.ones_like(valid)
    step_ends[:, :-1] = sorted_times[:, 1:] != sorted_times[:, :-1]
    crossed = (counts >= xp.asarray(threshold, dtype=acc_dtype)) & (step_ends & valid)[:, :, None]
    first = xp.argmax(crossed, axis=1)  # (batch, n_out): first event index that crossed
    fired = xp.take_along_axis(crossed, first[:, None, :], axis=1)[:, 0, :]
    spike_times = xp.where(fired, xp.take_along_axis(sorted_times, first, axis=1), tmax)
    return spike_times.astype(xp.int32), counts[:, -1, :]


def decide(out_times: Array, final_counts: Array, tmax: int = TMAX, xp: ModuleType = np) -> tuple[Array, Array]:
    """The network's answer: earliest output spike (ties: lowest index), else largest counter.

    Returns ``(decision, decision_time)``; the time is ``tmax`` when no output fired.
    """
    first_time = out_times.min(axis=1)
    by_time = xp.argmin(out_times, axis=1)
    by_count = xp.argmax(final_counts, axis=1)
    fired = first_time < tmax
    return xp.where(fired, by_time, by_count).astype(xp.int32), first_time.astype(xp.int32)

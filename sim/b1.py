"""The B1 network family's contract in discrete integer time, and its golden model.

B1 (Stanojevic et al., Nature Communications 2024) is a time-to-first-spike network exactly
equivalent to a ReLU network.  Written once here, as :mod:`bs4nn.sim.semantics` is for BS4NN;
the trainer's forward pass, the exporter and the golden model all call these functions.

* Input: the BS4NN coding (:func:`bs4nn.sim.semantics.encode_images`), pixel spike step ``k``;
  its value is ``x = tmax - k``, and 0 when it never spikes.  The input's window is ``tmax``.
* Hidden layer (integer weights ``w``, integer bias ``D``, ramp ``rho >= 1``, window ``K``):
  during the previous layer's window every presynaptic spike adds ``w_ij`` to the neuron's
  slope and the potential grows by the slope each step, so at the window's end
  ``V_i = D_i + sum_j w_ij x_j``.  In its own window the slope is ``rho`` and the neuron fires
  at the first step ``k`` in ``0..K-1`` with ``V_i + k rho >= K rho``: its value is
  ``x_i = clip(floor(V_i / rho), 0, K)``, its spike step ``K - x_i`` (no spike when ``x_i = 0``).
* Output layer: ``score_i = D_i + sum_j w_ij x_j``, no spike; the decision is the argmax, ties
  to the lowest index, at step ``tmax + sum of the hidden windows`` (the decision latency).

Every function takes the array module ``xp`` and is vectorised over the batch.  The network
types validate what a manifest may declare (weight widths, ramps, windows, potential widths).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from bs4nn.sim.semantics import IMAX, TMAX, Array, encode_images, to_numpy

MODEL = "b1"
"""The ``model`` field of a B1 manifest (BS4NN manifests say ``"bs4nn"``)."""

MAX_WEIGHT_BITS = 8


def input_values(input_times: Array, tmax: int, xp: ModuleType = np) -> Array:
    """Value of each input spike: ``tmax - k`` for a spike at step ``k < tmax``, else 0."""
    input_times = xp.asarray(input_times)
    return xp.where(input_times < tmax, tmax - input_times, 0).astype(xp.int32)


def fire_values(potentials: Array, ramp: int, window: int, xp: ModuleType = np) -> Array:
    """A hidden layer's values from its potentials at the end of phase 1: ``clip(floor(V/rho), 0, K)``."""
    return xp.clip(xp.floor_divide(potentials, ramp), 0, window).astype(xp.int32)


def spike_steps(values: Array, window: int, xp: ModuleType = np) -> Array:
    """Spike step of each hidden neuron inside its window: ``K - x``; ``K`` means no spike."""
    return (window - values).astype(xp.int32)


def weight_range(bits: int) -> tuple[int, int]:
    """Smallest and largest integer weight of a width: 1 bit is -1/+1, b bits two's complement."""
    if not 1 <= bits <= MAX_WEIGHT_BITS:
        raise ValueError(f"weight_bits must be in 1..{MAX_WEIGHT_BITS}, got {bits}")
    return (-1, 1) if bits == 1 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def signed_bits(low: int, high: int) -> int:
    """Width of the smallest two's-complement integer that holds every value in ``low..high``."""
    bits = 1
    while not (-(1 << (bits - 1)) <= low and high <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


@dataclass(frozen=True)
class B1Layer:
    """One B1 layer as deployed: integer weights, biases, and for hidden layers ramp and window.

    ``potential_bits`` is the declared width of the potential ``V``; ``None`` takes the width
    that every input can reach (:meth:`potential_range`), a declared one must hold it.
    """

    weights: np.ndarray  # (fan_out, fan_in) integers in weight_range(weight_bits)
    bias: np.ndarray  # (fan_out,) integers D
    weight_bits: int
    ramp: int | None = None  # hidden layers: rho >= 1; the output layer: None
    window: int | None = None  # hidden layers: K >= 1 steps; the output layer: None
    potential_bits: int | None = None

    def __post_init__(self) -> None:
        weights, bias = np.asarray(self.weights), np.asarray(self.bias)
        if weights.ndim != 2 or weights.size == 0 or weights.dtype.kind not in "iu":
            raise ValueError(f"weights must be a non-empty 2-D integer matrix, got {weights.dtype} {weights.shape}")
        low, high = weight_range(int(self.weight_bits))
        if int(weights.min()) < low or int(weights.max()) > high or (self.weight_bits == 1 and (weights == 0).any()):
            raise ValueError(
                f"{self.weight_bits}-bit weights must lie in {low}..{high}" + (" (no 0)" if low == -1 else "")
            )
        if bias.shape != (weights.shape[0],) or bias.dtype.kind not in "iu":
            raise ValueError(f"bias must be {weights.shape[0]} integers, got {bias.dtype} {bias.shape}")
        if (self.ramp is None) != (self.window is None):
            raise ValueError("a hidden layer needs both ramp and window, the output layer neither")
        if self.ramp is not None and int(self.ramp) < 1:
            raise ValueError(f"ramp must be >= 1, got {self.ramp}")
        if self.window is not None and int(self.window) < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        object.__setattr__(self, "weights", weights.astype(np.int16))
        object.__setattr__(self, "bias", bias.astype(np.int64))
        object.__setattr__(self, "weight_bits", int(self.weight_bits))

    @property
    def fan_out(self) -> int:
        return self.weights.shape[0]

    @property
    def fan_in(self) -> int:
        return self.weights.shape[1]

    @property
    def hidden(self) -> bool:
        return self.ramp is not None

    @property
    def signs(self) -> np.ndarray:
        """1-bit weights as BS4NN sign bits (1 = +1, 0 = -1): the rows the core's weight memories
        lay out exactly as BS4NN's (:func:`bs4nn.export.layout.network_weight_words`)."""
        if self.weight_bits != 1:
            raise ValueError(f"only 1-bit weights are sign bits, this layer has {self.weight_bits}-bit weights")
        return (self.weights > 0).astype(np.uint8)

    def potential_range(self, input_max: int) -> tuple[int, int]:
        """Lowest and highest potential any input values in ``0..input_max`` can give."""
        negative = np.minimum(self.weights, 0).astype(np.int64).sum(axis=1) * input_max
        positive = np.maximum(self.weights, 0).astype(np.int64).sum(axis=1) * input_max
        return int((self.bias + negative).min()), int((self.bias + positive).max())

    def needed_potential_bits(self, input_max: int) -> int:
        return signed_bits(*self.potential_range(input_max))


@dataclass(frozen=True)
class B1Network:
    """A whole B1 network: hidden layers with ramp and window, then an output layer without."""

    layers: tuple[B1Layer, ...]
    tmax: int = TMAX
    imax: int = IMAX

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise ValueError("a network needs at least one layer")
        if self.tmax < 1 or self.imax < 1:
            raise ValueError("tmax and imax must be positive")
        for index, layer in enumerate(layers):
            if layer.hidden != (index < len(layers) - 1):
                raise ValueError(f"layer {index}: only hidden layers (not the output layer) have ramp and window")
            if index and layer.fan_in != layers[index - 1].fan_out:
                raise ValueError(
                    f"layer {index} has fan-in {layer.fan_in}, layer {index - 1} has {layers[index - 1].fan_out}"
                )
            needed = layer.needed_potential_bits(self.input_window(index))
            if layer.potential_bits is not None and layer.potential_bits < needed:
                raise ValueError(
                    f"layer {index}: potentials reach {layer.potential_range(self.input_window(index))}, "
                    f"which overflow the declared {layer.potential_bits} bits (need {needed})"
                )

    def input_window(self, index: int) -> int:
        """Largest input value of layer ``index``: ``tmax`` for the first, else the previous window."""
        return self.tmax if index == 0 else int(self.layers[index - 1].window)

    @property
    def sizes(self) -> list[int]:
        return [self.layers[0].fan_in] + [layer.fan_out for layer in self.layers]

    @property
    def latency(self) -> int:
        """Steps from the first input step to the decision: ``tmax`` plus every hidden window."""
        return self.tmax + sum(int(layer.window) for layer in self.layers[:-1])


@dataclass
class B1Result:
    """Everything the B1 golden model says about a batch of images."""

    values: list[np.ndarray]  # per layer, input first: (batch, n) int32; hidden spike step = window - value
    scores: np.ndarray  # (batch, n_out) int64 output potentials
    decision: np.ndarray  # (batch,) argmax, ties to the lowest index

    def accuracy(self, labels: np.ndarray) -> float:
        return float(np.mean(self.decision == np.asarray(labels)))

    def spikes_per_neuron(self) -> list[float]:
        """Mean spikes per neuron of every layer with spikes (input first; the output never spikes)."""
        return [float((values > 0).mean()) for values in self.values]


def b1_summary(result: B1Result, labels: np.ndarray, latency: int, seconds: float) -> dict:
    """The figures every report of a B1 golden-model run quotes (``bs4nn sim golden``)."""
    return {
        "model": MODEL,
        "images": len(labels),
        "accuracy": result.accuracy(labels),
        "spikes_per_neuron": result.spikes_per_neuron(),
        "decision_latency": latency,
        "seconds": seconds,
        "images_per_second": len(labels) / seconds if seconds > 0 else float("inf"),
    }


def layer_potentials(values: Array, layer: B1Layer, xp: ModuleType = np) -> Array:
    """``D + w @ x`` for a batch, exact: float64 products of integers below 2**53, rounded back."""
    weights = xp.asarray(layer.weights, dtype=xp.float64)
    sums = xp.asarray(values, dtype=xp.float64) @ weights.T
    return xp.rint(sums).astype(xp.int64) + xp.asarray(layer.bias)


def forward_values(network: B1Network, input_times: Array, xp: ModuleType = np) -> tuple[list[Array], Array]:
    """The closed form: every layer's values (input first) and the output scores."""
    values = [input_values(input_times, network.tmax, xp)]
    for layer in network.layers[:-1]:
        values.append(fire_values(layer_potentials(values[-1], layer, xp), layer.ramp, layer.window, xp))
    return values, layer_potentials(values[-1], network.layers[-1], xp)


def run_b1(network: B1Network, input_times: Array, chunk: int = 1000, xp: ModuleType = np) -> B1Result:
    """The golden model of a B1 network on spike-coded inputs ``(batch, n_in)``, in chunks."""
    input_times = np.asarray(input_times)
    if input_times.ndim != 2 or input_times.shape[1] != network.layers[0].fan_in:
        raise ValueError(f"inputs must be (batch, {network.layers[0].fan_in}), got {input_times.shape}")
    parts: list[tuple[list[np.ndarray], np.ndarray]] = []
    for begin in range(0, max(len(input_times), 1), chunk):
        values, scores = forward_values(network, xp.asarray(input_times[begin : begin + chunk]), xp)
        parts.append(([to_numpy(v) for v in values], to_numpy(scores)))
    values = [np.concatenate([part[0][layer] for part in parts]) for layer in range(len(network.layers))]
    scores = np.concatenate([part[1] for part in parts])
    return B1Result(values, scores, np.argmax(scores, axis=1).astype(np.int32))


def run_b1_images(network: B1Network, images: np.ndarray, **kwargs) -> B1Result:
    """Spike-code 8-bit images with the network's ``tmax``/``imax`` and run them."""
    return run_b1(network, encode_images(images, network.tmax, network.imax), **kwargs)


def random_b1_network(
    sizes: Sequence[int],
    weight_bits: int,
    ramps: Sequence[int],
    windows: Sequence[int],
    seed: int = 0,
    tmax: int = TMAX,
) -> B1Network:
    """A reproducible random B1 network, for tests and benchmarks (biases up to a window's worth)."""
    rng = np.random.default_rng(seed)
    low, high = weight_range(weight_bits)
    layers = []
    for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        weights = rng.integers(low, high + 1, size=(n_out, n_in))
        if weight_bits == 1:
            weights = np.where(weights >= 0, 1, -1)
        hidden = index < len(sizes) - 2
        ramp, window = (int(ramps[index]), int(windows[index])) if hidden else (None, None)
        bias = rng.integers(-4 * (ramp or 1) * (window or 4), 4 * (ramp or 1) * (window or 4) + 1, size=n_out)
        layers.append(B1Layer(weights, bias, weight_bits, ramp, window))
    return B1Network(tuple(layers), tmax=tmax)

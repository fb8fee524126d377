"""The B1 network as the ReLU network it is equivalent to: forward, straight-through backward.

Training a B1 network is training its ReLU network (Stanojevic et al. 2024), here with the
forward pass EXACTLY the integer contract of :mod:`bs4nn.sim.b1`: the floats only hold the
proxies that the gradients move.  Per layer ``l`` the real parameters are the proxy weights
``W`` (float32), a log-scale ``s`` and biases ``b``; the deployed integers follow from them by
:func:`layer_integers`, the one conversion (the exporter calls it too):

* weights: 1 bit ``n = sign(W)`` (``W >= 0 -> +1``); ``b`` bits ``n = clip(round(W / q), lo, hi)``
  two's complement, with the step ``q = 2 mean|W| / sqrt(2**(b-1) - 1 or 1)`` (LSQ's start rule);
* the layer's real pre-activation ``a = c (n @ x) + b`` with ``c = exp(s) g``, where the gain
  ``g = K_l / X_l`` (``K_l`` the layer's window, ``X_l`` its largest input: ``tmax`` or the previous
  window; the output layer ``1 / X_l``) keeps ``a`` in steps whatever the sizes;
* hidden layers: ``c`` is rounded to ``1 / rho`` with the integer ramp ``rho = max(1, round(1/c))``
  and ``b`` to ``D / rho`` with the integer bias ``D = round(b rho)``, so that
  ``clip(floor(a), 0, K) = clip(floor((n @ x + D) / rho), 0, K)`` -- the contract, computed by
  :func:`bs4nn.sim.b1.fire_values` on the integers;
* output layer: ``D = round(b / c)`` and the logits are ``c (n @ x + D)``: their argmax is the
  integer network's decision (``c > 0``).

Backward, straight through the rounding of ``n``, ``rho`` and ``D`` and through the floor; the
clip passes gradient only inside the window (``0 <= a < K``).  The activity penalty
``lambda * mean(x_hidden)`` (per hidden layer, in steps) pushes the neurons' values towards 0,
and a neuron with value 0 does not spike: the accuracy/sparsity trade-off of train/README.md.

One source for NumPy and CuPy (``xp``); nothing here loops over neurons or samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from bs4nn.sim.b1 import B1Layer, B1Network, fire_values, input_values, weight_range
from bs4nn.sim.semantics import Array
from bs4nn.train.losses import Distillation, classification_loss

EXACT_FLOAT32 = 1 << 24
"""float32 holds every integer below this: sums of products that stay below it are exact."""


@dataclass(frozen=True)
class B1Shape:
    """What fixes a B1 network's integer grid: its input window, hidden windows, weight width."""

    sizes: tuple[int, ...]  # input first
    tmax: int
    windows: tuple[int, ...]  # one per hidden layer
    weight_bits: int

    def __post_init__(self) -> None:
        if len(self.windows) != len(self.sizes) - 2:
            raise ValueError(f"{len(self.sizes) - 2} hidden layers need as many windows, got {self.windows}")
        weight_range(self.weight_bits)  # raises outside 1..8

    def input_max(self, layer: int) -> int:
        return self.tmax if layer == 0 else self.windows[layer - 1]

    def gain(self, layer: int) -> float:
        """``g``: what turns the scale into the pre-activation's factor (see the module docstring)."""
        hidden = layer < len(self.sizes) - 2
        return (self.windows[layer] if hidden else 1) / self.input_max(layer)


def weight_step(weights: Array, bits: int, xp: ModuleType = np) -> float:
    """The quantisation step of b-bit weights (1 bit: the sign carries no step)."""
    if bits == 1:
        return 1.0
    q_high = max((1 << (bits - 1)) - 1, 1)
    return max(float(2 * xp.abs(weights).mean() / math.sqrt(q_high)), 1e-8)


def integer_weights(weights: Array, bits: int, xp: ModuleType = np) -> Array:
    """The deployed integer weights of real proxies, as float32 (exact small integers)."""
    if bits == 1:
        return xp.where(weights >= 0, 1, -1).astype(xp.float32)
    low, high = weight_range(bits)
    return xp.clip(xp.rint(weights / weight_step(weights, bits, xp)), low, high).astype(xp.float32)


@dataclass
class LayerIntegers:
    """A layer's deployed integers and the real factor ``c`` that the training forward uses."""

    weights: Array  # (fan_out, fan_in) float32 holding integers
    bias: Array  # (fan_out,) int64
    ramp: int | None  # hidden layers only
    factor: float  # c: 1/rho for hidden layers, exp(s) g for the output layer


def layer_integers(
    weights: Array, scale: float, bias: Array, shape: B1Shape, layer: int, xp: ModuleType = np
) -> LayerIntegers:
    """The one conversion from a layer's real parameters to its integers (trainer and exporter).

    ``scale`` is ``exp(s)`` as a Python float: the checkpoint stores it (``alphas``), so the
    exporter converts the very number the trainer did."""
    factor = float(scale) * shape.gain(layer)
    if layer < len(shape.sizes) - 2:
        ramp = max(1, round(1 / factor))
        return LayerIntegers(
            integer_weights(weights, shape.weight_bits, xp), xp.rint(bias * ramp).astype(xp.int64), ramp, 1 / ramp
        )
    return LayerIntegers(
        integer_weights(weights, shape.weight_bits, xp), xp.rint(bias / factor).astype(xp.int64), None, factor
    )


@dataclass
class Parameters:
    """The trained real parameters, per layer."""

    weights: list[Array]  # float32 (fan_out, fan_in)
    log_scales: list[Array]  # float32 (1,)
    biases: list[Array]  # float32 (fan_out,)

    def scales(self) -> list[float]:
        """``exp(s)`` per layer: the checkpoint's alphas."""
        return [math.exp(float(log_scale[0])) for log_scale in self.log_scales]

    def arrays(self) -> list[Array]:
        """In the optimiser's order."""
        return [*self.weights, *self.log_scales, *self.biases]

    @classmethod
    def from_arrays(cls, arrays: Sequence[Array]) -> Parameters:
        n = len(arrays) // 3
        return cls(list(arrays[:n]), list(arrays[n : 2 * n]), list(arrays[2 * n :]))


def initial_parameters(shape: B1Shape, seed: int) -> Parameters:
    """Uniform ``±1/sqrt(fan_in)`` proxies; the scale their mean magnitude (hidden) or 1 (output)."""
    rng = np.random.default_rng([seed, 0xB1])
    weights, scales, biases = [], [], []
    for n_in, n_out in zip(shape.sizes[:-1], shape.sizes[1:], strict=True):
        bound = 1 / math.sqrt(n_in)
        weight = rng.uniform(-bound, bound, size=(n_out, n_in)).astype(np.float32)
        hidden = len(weights) < len(shape.sizes) - 2
        scale = float(np.abs(weight).mean()) if hidden else 4 / math.sqrt(n_in)
        if shape.weight_bits > 1:
            scale *= weight_step(weight, shape.weight_bits) / max(float(np.abs(weight).mean()), 1e-8)
        weights.append(weight)
        scales.append(np.array([math.log(scale)], dtype=np.float32))
        biases.append(np.zeros(n_out, dtype=np.float32))
    return Parameters(weights, scales, biases)


@dataclass
class Forward:
    """What the forward pass keeps for the backward pass."""

    values: list[Array]  # per layer, input first: int32 values (the contract's x)
    integers: list[LayerIntegers]
    sums: list[Array]  # per layer n @ x (float32, exact integers)
    pre: list[Array]  # hidden layers' real pre-activations a = (n @ x + D) / rho
    logits: Array  # c (n @ x + D) of the output layer
    scores: Array  # n @ x + D of the output layer (int64): the integer network's (without dropout)
    keep_masks: Sequence[Array] | None = None  # hidden dropout, per hidden layer


def matmul_dtype(shape: B1Shape, layer: int, fan_in: int, xp: ModuleType) -> type:
    """float32 where every sum of products is an exact float32 integer, else float64."""
    high = max(abs(v) for v in weight_range(shape.weight_bits))
    return xp.float32 if high * shape.input_max(layer) * fan_in < EXACT_FLOAT32 else xp.float64


def forward(
    params: Parameters,
    input_times: Array,
    shape: B1Shape,
    xp: ModuleType = np,
    keep_masks: Sequence[Array] | None = None,
) -> Forward:
    """The integer network's forward pass on spike-coded inputs, with what the backward needs.

    ``keep_masks`` (training only: hidden dropout, ``train/epochs.keep_masks``): each hidden
    layer's values times its mask feed the next layer, which then sees non-integer inputs.
    """
    values = [input_values(input_times, shape.tmax, xp)]
    integers, all_sums, pre = [], [], []
    n_layers = len(params.weights)
    for layer, scale in enumerate(params.scales()):
        ints = layer_integers(params.weights[layer], scale, params.biases[layer], shape, layer, xp)
        integers.append(ints)
        if keep_masks is not None and layer > 0:
            sums = (values[-1] * keep_masks[layer - 1]).astype(xp.float32) @ ints.weights.T
        else:
            dtype = matmul_dtype(shape, layer, ints.weights.shape[1], xp)
            sums = xp.rint(values[-1].astype(dtype) @ ints.weights.astype(dtype).T).astype(xp.int64)
        all_sums.append(sums.astype(xp.float32))
        potentials = sums + ints.bias
        if layer < n_layers - 1:
            pre.append(potentials.astype(xp.float32) / ints.ramp)
            values.append(fire_values(potentials, ints.ramp, shape.windows[layer], xp))
    logits = (potentials * integers[-1].factor).astype(xp.float32)
    return Forward(values, integers, all_sums, pre, logits, potentials, keep_masks)


@dataclass
class Gradients:
    """Gradients of the mean loss, in :meth:`Parameters.arrays` order, and the batch's figures."""

    arrays: list[Array]
    loss: float  # cross-entropy, summed over the batch
    penalty: float  # activity penalty, summed over the batch
    correct: int
    hidden_spikes: list[float]  # per hidden layer: spikes per neuron, summed over the batch


def backward(
    params: Parameters,
    run: Forward,
    labels: Array,
    shape: B1Shape,
    activity_penalty: float,
    xp: ModuleType = np,
    distillation: Distillation | None = None,
) -> Gradients:
    """Softmax cross-entropy (distilled from a teacher, if given) plus the activity penalty,
    straight through to the proxies."""
    batch = run.logits.shape[0]
    loss, grad = classification_loss(run.logits, labels, distillation, xp)
    grad /= batch  # dL/d(logits) of the batch mean
    n_layers = len(params.weights)
    grads_w, grads_s, grads_b = [None] * n_layers, [None] * n_layers, [None] * n_layers
    penalty = 0.0
    scales = params.scales()
    for layer in range(n_layers - 1, -1, -1):
        ints = run.integers[layer]
        x = run.values[layer].astype(xp.float32)
        if run.keep_masks is not None and layer > 0:
            x = x * run.keep_masks[layer - 1]
        factor = scales[layer] * shape.gain(layer)  # a = c (n @ x) + b, c = exp(s) g: dL/ds = c sum(grad n @ x)
        grads_s[layer] = xp.asarray([(grad * run.sums[layer]).sum() * factor], dtype=xp.float32)
        grads_b[layer] = grad.sum(axis=0).astype(xp.float32)
        grad_w = (grad * ints.factor).T @ x
        if shape.weight_bits > 1:
            grad_w /= weight_step(params.weights[layer], shape.weight_bits, xp)
        grads_w[layer] = grad_w.astype(xp.float32)
        if layer == 0:
            break
        window = shape.windows[layer - 1]
        hidden = run.pre[layer - 1]
        grad = (grad * ints.factor) @ ints.weights  # dL/dx of the layer below
        if run.keep_masks is not None:
            grad = grad * run.keep_masks[layer - 1]
        if activity_penalty:
            n_hidden = hidden.shape[1]
            penalty += activity_penalty * float(run.values[layer].sum()) / n_hidden
            grad = grad + activity_penalty / (n_hidden * batch)
        grad = grad * ((hidden >= 0) & (hidden < window))
    correct = int((xp.argmax(run.scores, axis=1) == labels).sum())
    return Gradients(
        [*grads_w, *grads_s, *grads_b],
        loss=loss,
        penalty=penalty,
        correct=correct,
        hidden_spikes=[float((values > 0).sum()) / values.shape[1] for values in run.values[1:]],
    )


def b1_network(
    weights: Sequence[Array], scales: Sequence[float], biases: Sequence[Array], shape: B1Shape, imax: int
) -> B1Network:
    """The deployed :class:`~bs4nn.sim.b1.B1Network` of real parameters (the trainer's validation,
    the exporter): :func:`layer_integers` per layer, as NumPy integers."""
    layers = []
    for layer, (weight, scale, bias) in enumerate(zip(weights, scales, biases, strict=True)):
        ints = layer_integers(np.asarray(weight), scale, np.asarray(bias), shape, layer)
        window = shape.windows[layer] if ints.ramp is not None else None
        layers.append(B1Layer(ints.weights.astype(np.int16), ints.bias, shape.weight_bits, ints.ramp, window))
    return B1Network(tuple(layers), tmax=shape.tmax, imax=imax)

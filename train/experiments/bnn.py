"""The paper's non-spiking baseline: a binarized neural network (BNN) of the same architecture.

As in BinaryNet (Courbariaux, Hubara et al. 2016), which the paper compares against: binary
weights ``sign(W)`` in the forward pass, binary activations ``sign(z)`` in the hidden layers
(straight-through estimator, gradient passed where ``|z| <= 1``), batch normalisation before
each sign and on the output scores, squared hinge loss on targets +-1, Adam with the learning
rate decayed exponentially from 1e-3 to 1e-4, real weights initialised from
``U[-1/sqrt(n), 1/sqrt(n)]`` (``n`` = fan-in) and clipped to ``[-1, 1]``.  Inputs are the
pixel intensities scaled to ``[0, 1]``.  The training loop, model selection on the last 5,000
training images and the result files are the baselines' (:mod:`bs4nn.train.experiments.baseline`).

At inference, batch normalisation followed by ``sign`` is a per-neuron threshold on the
integer sum of +-1 weights, so the deployed network is binary throughout, like BS4NN's.

Everything takes ``xp`` (NumPy or CuPy).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bs4nn.sim.semantics import to_numpy
from bs4nn.train.optimizers import Adam

BN_EPS = 1e-4
BN_MOMENTUM = 0.1  # running statistics: new = (1 - m) * old + m * batch


@dataclass
class BnnLayer:
    """Real proxy weights, batch-norm affine parameters and running statistics of one layer."""

    weights: Any  # (fan_out, fan_in) real, in [-1, 1]
    gamma: Any  # (fan_out,)
    beta: Any
    running_mean: Any
    running_var: Any

    def binary_weights(self, xp: ModuleType) -> Any:
        return xp.where(self.weights >= 0, 1.0, -1.0).astype(xp.float32)

    def copy(self) -> BnnLayer:
        return BnnLayer(
            *(array.copy() for array in (self.weights, self.gamma, self.beta, self.running_mean, self.running_var))
        )


def init_layers(sizes: list[int], rng: np.random.Generator, xp: ModuleType = np) -> list[BnnLayer]:
    """Weights from ``U[-1/sqrt(fan_in), 1/sqrt(fan_in)]``; batch norm as identity."""
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1.0 / np.sqrt(fan_in)
        weights = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)
        ones, zeros = np.ones(fan_out, np.float32), np.zeros(fan_out, np.float32)
        layers.append(BnnLayer(*(xp.asarray(a) for a in (weights, ones, zeros.copy(), zeros.copy(), ones.copy()))))
    return layers


def forward(layers: list[BnnLayer], inputs: Any, xp: ModuleType, training: bool) -> tuple[Any, list[dict[str, Any]]]:
    """Output scores ``(batch, n_out)`` and, when training, what backpropagation needs per layer."""
    activation = inputs
    caches = []
    for index, layer in enumerate(layers):
        binary = layer.binary_weights(xp)
        pre = activation @ binary.T
        if training:
            mean, var = pre.mean(axis=0), pre.var(axis=0)
            layer.running_mean = (1 - BN_MOMENTUM) * layer.running_mean + BN_MOMENTUM * mean
            layer.running_var = (1 - BN_MOMENTUM) * layer.running_var + BN_MOMENTUM * var
        else:
            mean, var = layer.running_mean, layer.running_var
        inv_std = 1.0 / xp.sqrt(var + BN_EPS)
        normalised = (pre - mean) * inv_std
        scores = layer.gamma * normalised + layer.beta
        caches.append(
            {"input": activation, "binary": binary, "normalised": normalised, "inv_std": inv_std, "z": scores}
        )
        hidden = index < len(layers) - 1
        activation = xp.where(scores >= 0, 1.0, -1.0).astype(xp.float32) if hidden else scores
    return activation, caches


def squared_hinge(scores: Any, labels: Any, xp: ModuleType) -> tuple[float, Any]:
    """Mean of ``max(0, 1 - y * s)^2`` over batch and classes (y = +1 for the label, -1 else) and its gradient."""
    targets = -xp.ones_like(scores)
    targets[xp.arange(scores.shape[0]), labels] = 1.0
    margin = xp.maximum(0.0, 1.0 - targets * scores)
    loss = float((margin**2).mean())
    return loss, (-2.0 * targets * margin / scores.size).astype(xp.float32)


def backward(
    layers: list[BnnLayer], caches: list[dict[str, Any]], grad_scores: Any, xp: ModuleType
) -> list[dict[str, Any]]:
    """Gradients for every layer's real weights, gamma and beta (straight-through estimators)."""
    grads: list[dict[str, Any]] = [{} for _ in layers]
    grad = grad_scores
    for index in range(len(layers) - 1, -1, -1):
        layer, cache = layers[index], caches[index]
        if index < len(layers) - 1:
            grad = grad * (xp.abs(cache["z"]) <= 1.0)  # STE of sign: hard-tanh derivative
        normalised = cache["normalised"]
        batch = normalised.shape[0]
        grads[index]["gamma"] = (grad * normalised).sum(axis=0)
        grads[index]["beta"] = grad.sum(axis=0)
        grad_norm = grad * layer.gamma
        grad_pre = (cache["inv_std"] / batch) * (
            batch * grad_norm - grad_norm.sum(axis=0) - normalised * (grad_norm * normalised).sum(axis=0)
        )
        grads[index]["weights"] = grad_pre.T @ cache["input"]  # STE of sign(W): passed straight
        if index > 0:
            grad = grad_pre @ cache["binary"]
    return grads


TRAINED = ("weights", "gamma", "beta")
"""The arrays of a layer that Adam updates (the running statistics are not trained)."""


def trained_arrays(layers: list[BnnLayer]) -> list[Any]:
    return [getattr(layer, name) for layer in layers for name in TRAINED]


def adam_step(optimiser: Adam, layers: list[BnnLayer], grads: list[dict[str, Any]], lr: float, xp: ModuleType) -> None:
    """Adam on every trained array; the real weights are clipped to [-1, 1] after each step."""
    updated = iter(optimiser.step(trained_arrays(layers), [grad[name] for grad in grads for name in TRAINED], lr))
    for layer in layers:
        for name in TRAINED:
            value = next(updated)
            setattr(layer, name, xp.clip(value, -1.0, 1.0) if name == "weights" else value)


def scale_images(images: np.ndarray, xp: ModuleType) -> Any:
    """``(N, 28, 28)`` uint8 -> ``(N, 784)`` float32 in [0, 1]."""
    return xp.asarray(images.reshape(len(images), -1), dtype=xp.float32) / np.float32(255)


class Bnn:
    """The BNN as a :class:`~bs4nn.train.experiments.baseline.BaselineNet`: pixels / 255 in,
    squared hinge, Adam with the real weights clipped to [-1, 1]."""

    name = "bnn"
    title = "BNN baseline"

    def inputs(self, images: np.ndarray, xp: ModuleType) -> Any:
        return scale_images(images, xp)

    def init_layers(self, sizes: list[int], rng: np.random.Generator, xp: ModuleType) -> list[BnnLayer]:
        return init_layers(sizes, rng, xp)

    def train_step(
        self, optimiser: Adam, layers: list[BnnLayer], x: Any, labels: Any, lr: float, xp: ModuleType
    ) -> float:
        scores, caches = forward(layers, x, xp, training=True)
        loss, grad_scores = squared_hinge(scores, labels, xp)
        adam_step(optimiser, layers, backward(layers, caches, grad_scores, xp), lr, xp)
        return loss

    def scores(self, layers: list[BnnLayer], x: Any, xp: ModuleType) -> Any:
        """Binary weights, sign activations and the running batch-norm statistics."""
        return forward(layers, x, xp, training=False)[0]

    def trained_arrays(self, layers: list[BnnLayer]) -> list[Any]:
        return trained_arrays(layers)

    def copy(self, layers: list[BnnLayer]) -> list[BnnLayer]:
        return [layer.copy() for layer in layers]

    def write_extra(self, layers: list[BnnLayer], out_dir: Path) -> list[Path]:
        return []  # bnn.npz holds everything

    def saved_arrays(self, layers: list[BnnLayer]) -> dict[str, np.ndarray]:
        """Per layer its signs (the deployed weights) and every real array."""
        arrays: dict[str, np.ndarray] = {}
        for index, layer in enumerate(layers):
            arrays[f"signs_{index}"] = (to_numpy(layer.weights) >= 0).astype(np.uint8)
            for name in ("weights", "gamma", "beta", "running_mean", "running_var"):
                arrays[f"{name}_{index}"] = to_numpy(getattr(layer, name)).astype(np.float32)
        return arrays


BNN = Bnn()

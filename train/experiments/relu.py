"""The float reference of a B1 network: the same ReLU MLP with real weights and real activations.

A B1 network (Stanojevic et al. 2024) is exactly a ReLU network whose weights are 1 (or b) bits
and whose activations sit on the integer grid of its windows.  What those two cost is measured
against this network: real weights, ReLU activations without clip or floor, the B1 inputs
(the coded value ``tmax - k`` of each pixel, :func:`bs4nn.sim.b1.input_values`, over ``tmax``),
softmax cross-entropy, Adam; the baselines' loop (:mod:`bs4nn.train.experiments.baseline`).

Its selected weights are also written as ``W0.npy b0.npy W1.npy b1.npy ...``: the files that
``bs4nn-export --from-relu`` quantises into a B1 folder (post-training quantisation, the way to
deploy a ReLU MLP trained elsewhere).

Everything takes ``xp`` (NumPy or CuPy).
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.fileio import atomic_write_bytes
from bs4nn.npyfiles import load_relu_mlp, relu_mlp_files
from bs4nn.sim.b1 import input_values
from bs4nn.sim.semantics import IMAX, TMAX, encode_images, to_numpy
from bs4nn.train.checkpoint import PRETRAINED_DIR
from bs4nn.train.losses import softmax_cross_entropy
from bs4nn.train.optimizers import Adam


@dataclass
class ReluLayer:
    weights: Any  # (fan_out, fan_in) float32
    bias: Any  # (fan_out,) float32

    def copy(self) -> ReluLayer:
        return ReluLayer(self.weights.copy(), self.bias.copy())


def forward(layers: list[ReluLayer], inputs: Any, xp: ModuleType) -> tuple[Any, list[Any]]:
    """Logits ``(batch, n_out)`` and every layer's input (what the backward pass needs)."""
    activations = [inputs]
    for layer in layers[:-1]:
        activations.append(xp.maximum(activations[-1] @ layer.weights.T + layer.bias, 0))
    return activations[-1] @ layers[-1].weights.T + layers[-1].bias, activations


def backward(layers: list[ReluLayer], activations: list[Any], grad: Any, xp: ModuleType) -> list[Any]:
    """Gradients ``[dW0, db0, dW1, db1, ...]`` for ``grad`` = dL/d(logits)."""
    grads: list[Any] = [None] * (2 * len(layers))
    for index in range(len(layers) - 1, -1, -1):
        grads[2 * index] = grad.T @ activations[index]
        grads[2 * index + 1] = grad.sum(axis=0)
        if index:
            grad = (grad @ layers[index].weights) * (activations[index] > 0)
    return grads


def scaled_inputs(input_times: Any, tmax: int, xp: ModuleType) -> Any:
    """The float network's inputs of spike-coded images: the B1 input values over ``tmax``, in [0, 1]."""
    return input_values(input_times, tmax, xp).astype(xp.float32) / np.float32(tmax)


SHIPPED_TEACHERS = PRETRAINED_DIR / "teachers"
"""Float references shipped for distillation, one folder each as ``bs4nn experiment relu`` wrote it."""


def teacher_files(teacher: str) -> list[Path]:
    """The ``W0.npy b0.npy ...`` of a preset's ``teacher``: a folder, or the name of a shipped one
    (``train/pretrained/teachers/NAME``), so a preset that distils reproduces on a fresh clone."""
    if Path(teacher).exists():
        return relu_mlp_files(teacher)
    if (SHIPPED_TEACHERS / teacher).is_dir():
        return relu_mlp_files(SHIPPED_TEACHERS / teacher)
    shipped = sorted(path.name for path in SHIPPED_TEACHERS.glob("*") if path.is_dir()) or ["none"]
    raise Bs4nnError(f"teacher {teacher}: no such folder, nor a shipped teacher ({', '.join(shipped)})")


TEACHER_SEPARATOR = ","
"""Between the teachers of an ensemble in a preset's ``teacher`` (``fashion-relu,runs/relu-s1``)."""


def teacher_names(teacher: str) -> list[str]:
    """The teachers a preset's ``teacher`` names: one, or an ensemble whose logits are averaged.

    Why an ensemble: the student learns from the teacher's whole distribution over the classes,
    and the mean of two independently trained float networks' logits is a better-calibrated,
    more accurate distribution than either's, for one more float forward pass per batch."""
    names = [name.strip() for name in teacher.split(TEACHER_SEPARATOR)]
    if not all(names):
        raise Bs4nnError(f"teacher {teacher!r}: an empty name in the list (teachers are separated by ',')")
    return names


def load_relu_layers(teacher: str, xp: ModuleType) -> list[ReluLayer]:
    """A distillation teacher's layers (:func:`teacher_files`), as :meth:`Relu.write_extra` wrote them."""
    weights, biases = load_relu_mlp(teacher_files(teacher), what="teacher")
    return [
        ReluLayer(xp.asarray(weight, dtype=xp.float32), xp.asarray(bias, dtype=xp.float32))
        for weight, bias in zip(weights, biases, strict=True)
    ]


class Relu:
    """The float ReLU MLP as a :class:`~bs4nn.train.experiments.baseline.BaselineNet`."""

    name = "relu"
    title = "float ReLU reference"

    def __init__(self, tmax: int = TMAX, imax: int = IMAX) -> None:
        self.tmax, self.imax = tmax, imax

    def inputs(self, images: np.ndarray, xp: ModuleType) -> Any:
        """The B1 network's input values over ``tmax``: in [0, 1], on the coding's grid."""
        return scaled_inputs(
            xp.asarray(encode_images(images.reshape(len(images), -1), self.tmax, self.imax)), self.tmax, xp
        )

    def init_layers(self, sizes: list[int], rng: np.random.Generator, xp: ModuleType) -> list[ReluLayer]:
        """Weights from ``U[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, biases 0 (as the B1 trainer's proxies)."""
        layers = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = 1.0 / np.sqrt(fan_in)
            weights = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)
            layers.append(ReluLayer(xp.asarray(weights), xp.zeros(fan_out, dtype=xp.float32)))
        return layers

    def train_step(
        self, optimiser: Adam, layers: list[ReluLayer], x: Any, labels: Any, lr: float, xp: ModuleType
    ) -> float:
        logits, activations = forward(layers, x, xp)
        loss, grad = softmax_cross_entropy(logits, labels, xp)
        grads = backward(layers, activations, grad / logits.shape[0], xp)
        updated = iter(optimiser.step(self.trained_arrays(layers), grads, lr))
        for layer in layers:  # float32 kept: Adam's float64 step factor would promote them
            layer.weights, layer.bias = (next(updated).astype(xp.float32, copy=False) for _ in range(2))
        return loss / logits.shape[0]

    def scores(self, layers: list[ReluLayer], x: Any, xp: ModuleType) -> Any:
        return forward(layers, x, xp)[0]

    def trained_arrays(self, layers: list[ReluLayer]) -> list[Any]:
        return [array for layer in layers for array in (layer.weights, layer.bias)]

    def copy(self, layers: list[ReluLayer]) -> list[ReluLayer]:
        return [layer.copy() for layer in layers]

    def write_extra(self, layers: list[ReluLayer], out_dir: Path) -> list[Path]:
        """``W{l}.npy`` and ``b{l}.npy`` per layer, in the order ``bs4nn-export --from-relu`` takes them."""
        written = []
        for name, array in self.saved_arrays(layers).items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            written.append(atomic_write_bytes(Path(out_dir) / f"{name}.npy", buffer.getvalue()))
        return written

    def saved_arrays(self, layers: list[ReluLayer]) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for index, layer in enumerate(layers):
            arrays[f"W{index}"] = to_numpy(layer.weights).astype(np.float32)
            arrays[f"b{index}"] = to_numpy(layer.bias).astype(np.float32)
        return arrays

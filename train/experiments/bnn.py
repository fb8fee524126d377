"""The paper's non-spiking baseline: a binarized neural network (BNN) of the same architecture.

As in BinaryNet (Courbariaux, Hubara et al. 2016), which the paper compares against: binary
weights ``sign(W)`` in the forward pass, binary activations ``sign(z)`` in the hidden layers
(straight-through estimator, gradient passed where ``|z| <= 1``), batch normalisation before
each sign and on the output scores, squared hinge loss on targets +-1, Adam with the learning
rate decayed exponentially from 1e-3 to 1e-4, real weights initialised from
``U[-1/sqrt(n), 1/sqrt(n)]`` (``n`` = fan-in) and clipped to ``[-1, 1]``.  Inputs are the
pixel intensities scaled to ``[0, 1]``.  Model selection on the last 5,000 training images;
the reported test accuracy is that of the epoch with the best validation accuracy.

At inference, batch normalisation followed by ``sign`` is a per-neuron threshold on the
integer sum of +-1 weights, so the deployed network is binary throughout, like BS4NN's.

Everything takes ``xp`` (NumPy or CuPy).
"""

from __future__ import annotations

import io
import itertools
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.fileio import atomic_write_bytes
from bs4nn.sim.semantics import to_numpy
from bs4nn.train.experiments.plots import new_figure, save_figure, write_json
from bs4nn.train.optimizers import Adam

VALIDATION_IMAGES = 5000
N_CLASSES = 10
BN_EPS = 1e-4
BN_MOMENTUM = 0.1  # running statistics: new = (1 - m) * old + m * batch
EVAL_BATCH = 2000
DEFAULT_HIDDEN = {"mnist": 600, "fashion-mnist": 1000}  # the paper's architectures


@dataclass
class BnnConfig:
    """Hyperparameters of one BNN run (all recorded in the result)."""

    sizes: list[int]  # input first: [784, 600, 10]
    epochs: int = 50
    batch_size: int = 100
    lr_start: float = 1e-3
    lr_end: float = 1e-4
    seed: int = 0
    validation: int = VALIDATION_IMAGES

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise Bs4nnError(f"sizes must be at least [inputs, outputs], all positive; got {self.sizes}")
        if self.epochs < 1 or self.batch_size < 2:
            raise Bs4nnError("epochs must be >= 1 and batch size >= 2 (batch normalisation needs a batch)")
        if not 0 < self.lr_end <= self.lr_start:
            raise Bs4nnError(f"need 0 < lr_end <= lr_start, got {self.lr_start} -> {self.lr_end}")

    def learning_rate(self, epoch: int) -> float:
        """Exponential decay from ``lr_start`` (first epoch) to ``lr_end`` (last epoch)."""
        if self.epochs == 1:
            return self.lr_start
        return self.lr_start * (self.lr_end / self.lr_start) ** (epoch / (self.epochs - 1))


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


@dataclass
class BnnResult:
    config: BnnConfig
    layers: list[BnnLayer]  # the selected (best validation) parameters
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0
    dataset: str = ""
    seconds: float = 0.0


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


def predict(layers: list[BnnLayer], inputs: Any, xp: ModuleType = np) -> np.ndarray:
    """Class decisions with binary weights, sign activations and the running batch-norm statistics."""
    decisions = []
    for start in range(0, inputs.shape[0], EVAL_BATCH):
        scores, _ = forward(layers, inputs[start : start + EVAL_BATCH], xp, training=False)
        decisions.append(to_numpy(xp.argmax(scores, axis=1)))
    return np.concatenate(decisions) if decisions else np.empty(0, np.int64)


def accuracy(layers: list[BnnLayer], inputs: Any, labels: np.ndarray, xp: ModuleType = np) -> float:
    return float(np.mean(predict(layers, inputs, xp) == np.asarray(labels)))


def train_bnn(
    config: BnnConfig,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    xp: ModuleType = np,
    progress: bool = False,
    dataset: str = "",
) -> BnnResult:
    """Train on all but the last ``config.validation`` training images, select by validation accuracy."""
    if not 0 < config.validation < len(train_images):
        raise Bs4nnError(f"validation split {config.validation} must be smaller than the {len(train_images)} images")
    start_time = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    fit_count = len(train_images) - config.validation
    fit_x, fit_y = scale_images(train_images[:fit_count], xp), xp.asarray(train_labels[:fit_count].astype(np.int64))
    val_x, val_y = scale_images(train_images[fit_count:], xp), train_labels[fit_count:]
    test_x = scale_images(test_images, xp)
    layers = init_layers(config.sizes, rng, xp)
    optimiser = Adam(trained_arrays(layers), xp)
    result = BnnResult(config, [layer.copy() for layer in layers], dataset=dataset)
    best = -1.0
    epochs = range(config.epochs)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc="bnn", unit="epoch")
    for epoch in epochs:
        lr = config.learning_rate(epoch)
        order = xp.asarray(rng.permutation(fit_count))
        losses = []
        for begin in range(0, fit_count - config.batch_size + 1, config.batch_size):
            rows = order[begin : begin + config.batch_size]
            scores, caches = forward(layers, fit_x[rows], xp, training=True)
            loss, grad_scores = squared_hinge(scores, fit_y[rows], xp)
            adam_step(optimiser, layers, backward(layers, caches, grad_scores, xp), lr, xp)
            losses.append(loss)
        val_accuracy = accuracy(layers, val_x, val_y, xp)
        record = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(np.mean(losses)),
            "validation_accuracy": val_accuracy,
        }
        result.history.append(record)
        if val_accuracy > best:
            best = val_accuracy
            result.layers = [layer.copy() for layer in layers]
            result.best_epoch, result.validation_accuracy = epoch + 1, val_accuracy
        if progress:
            epochs.set_postfix(loss=f"{record['train_loss']:.4f}", val=f"{100 * val_accuracy:.2f}%")
    result.test_accuracy = accuracy(result.layers, test_x, test_labels, xp)
    result.seconds = time.perf_counter() - start_time
    return result


def write_bnn_result(result: BnnResult, out_dir: str | os.PathLike) -> list[Path]:
    """``bnn.json`` (config, history, accuracies), ``bnn.npz`` (selected parameters), ``bnn.png`` (curves)."""
    out_dir = Path(out_dir)
    summary = {
        "experiment": "bnn-baseline",
        "dataset": result.dataset,
        "config": asdict(result.config),
        "best_epoch": result.best_epoch,
        "validation_accuracy": result.validation_accuracy,
        "test_accuracy": result.test_accuracy,
        "seconds": result.seconds,
        "history": result.history,
    }
    arrays: dict[str, np.ndarray] = {}
    for index, layer in enumerate(result.layers):
        arrays[f"signs_{index}"] = (to_numpy(layer.weights) >= 0).astype(np.uint8)
        for name in ("weights", "gamma", "beta", "running_mean", "running_var"):
            arrays[f"{name}_{index}"] = to_numpy(getattr(layer, name)).astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    written = [write_json(out_dir / "bnn.json", summary), atomic_write_bytes(out_dir / "bnn.npz", buffer.getvalue())]
    fig, ax = new_figure()
    epochs = [r["epoch"] for r in result.history]
    ax.plot(epochs, [100 * r["validation_accuracy"] for r in result.history], "o-", label="validation")
    ax.axhline(100 * result.test_accuracy, color="tab:red", linestyle="--", label=f"test (epoch {result.best_epoch})")
    ax.set(xlabel="epoch", ylabel="accuracy (%)", title=f"BNN baseline, {result.dataset}")
    ax.legend()
    ax.grid(alpha=0.3)
    written.append(save_figure(fig, out_dir / "bnn.png"))
    return written

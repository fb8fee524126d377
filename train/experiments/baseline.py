"""The non-spiking baselines' one training loop: the BNN of the BS4NN paper, the float ReLU MLP of B1.

Each baseline is a :class:`BaselineNet` (its inputs, layers, training step and scores); the
loop is the same for all: mini-batches in a seeded order, Adam with the learning rate decayed
exponentially from ``lr_start`` to ``lr_end``, the epoch chosen by the accuracy on the last
``validation`` training images, its test accuracy reported.  Results: ``NAME.json`` (config,
history, accuracies), ``NAME.npz`` (the selected parameters), ``NAME.png`` (the curves).

Everything takes ``xp`` (NumPy or CuPy).
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.fileio import atomic_write_bytes
from bs4nn.sim.semantics import to_numpy
from bs4nn.train.experiments.plots import new_figure, save_figure, write_json
from bs4nn.train.optimizers import Adam

VALIDATION_IMAGES = 5000
N_CLASSES = 10
EVAL_BATCH = 2000
DEFAULT_HIDDEN = {"mnist": 600, "fashion-mnist": 1000}  # the papers' architectures


@dataclass
class BaselineConfig:
    """Hyperparameters of one baseline run (all recorded in the result)."""

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


class BaselineNet(Protocol):
    """What a baseline defines; :func:`train_baseline` does the rest."""

    name: str  # file stem and experiment name: "bnn", "relu"
    title: str  # for plots and summaries

    def inputs(self, images: np.ndarray, xp: ModuleType) -> Any: ...
    def init_layers(self, sizes: list[int], rng: np.random.Generator, xp: ModuleType) -> list[Any]: ...
    def train_step(self, optimiser: Adam, layers: list[Any], x: Any, labels: Any, lr: float, xp: ModuleType) -> float:
        """One Adam step on a batch (updates ``layers`` in place); the batch's loss."""
        ...

    def scores(self, layers: list[Any], x: Any, xp: ModuleType) -> Any: ...
    def trained_arrays(self, layers: list[Any]) -> list[Any]: ...
    def copy(self, layers: list[Any]) -> list[Any]: ...
    def saved_arrays(self, layers: list[Any]) -> dict[str, np.ndarray]: ...
    def write_extra(self, layers: list[Any], out_dir: Path) -> list[Path]:
        """Files beside the result that other tools read (the ReLU net's ``.npy`` weights)."""
        ...


@dataclass
class BaselineResult:
    config: BaselineConfig
    layers: list[Any]  # the selected (best validation) parameters
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0
    dataset: str = ""
    seconds: float = 0.0


def predict(net: BaselineNet, layers: list[Any], inputs: Any, xp: ModuleType = np) -> np.ndarray:
    """Class decisions (argmax of the scores, ties to the lowest index), in batches."""
    decisions = []
    for start in range(0, inputs.shape[0], EVAL_BATCH):
        decisions.append(to_numpy(xp.argmax(net.scores(layers, inputs[start : start + EVAL_BATCH], xp), axis=1)))
    return np.concatenate(decisions) if decisions else np.empty(0, np.int64)


def accuracy(net: BaselineNet, layers: list[Any], inputs: Any, labels: np.ndarray, xp: ModuleType = np) -> float:
    return float(np.mean(predict(net, layers, inputs, xp) == np.asarray(labels)))


def train_baseline(
    net: BaselineNet,
    config: BaselineConfig,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    xp: ModuleType = np,
    progress: bool = False,
    dataset: str = "",
) -> BaselineResult:
    """Train on all but the last ``config.validation`` training images, select by validation accuracy."""
    if not 0 < config.validation < len(train_images):
        raise Bs4nnError(f"validation split {config.validation} must be smaller than the {len(train_images)} images")
    start_time = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    fit_count = len(train_images) - config.validation
    fit_x, fit_y = net.inputs(train_images[:fit_count], xp), xp.asarray(train_labels[:fit_count].astype(np.int64))
    val_x, val_y = net.inputs(train_images[fit_count:], xp), train_labels[fit_count:]
    layers = net.init_layers(config.sizes, rng, xp)
    optimiser = Adam(net.trained_arrays(layers), xp)
    result = BaselineResult(config, net.copy(layers), dataset=dataset)
    best = -1.0
    epochs = range(config.epochs)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc=net.name, unit="epoch")
    for epoch in epochs:
        lr = config.learning_rate(epoch)
        order = xp.asarray(rng.permutation(fit_count))
        losses = []
        for begin in range(0, fit_count - config.batch_size + 1, config.batch_size):
            rows = order[begin : begin + config.batch_size]
            losses.append(net.train_step(optimiser, layers, fit_x[rows], fit_y[rows], lr, xp))
        val_accuracy = accuracy(net, layers, val_x, val_y, xp)
        record = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(np.mean(losses)),
            "validation_accuracy": val_accuracy,
        }
        result.history.append(record)
        if val_accuracy > best:
            best = val_accuracy
            result.layers = net.copy(layers)
            result.best_epoch, result.validation_accuracy = epoch + 1, val_accuracy
        if progress:
            epochs.set_postfix(loss=f"{record['train_loss']:.4f}", val=f"{100 * val_accuracy:.2f}%")
    result.test_accuracy = accuracy(net, result.layers, net.inputs(test_images, xp), test_labels, xp)
    result.seconds = time.perf_counter() - start_time
    return result


def write_baseline_result(net: BaselineNet, result: BaselineResult, out_dir: str | os.PathLike) -> list[Path]:
    """``NAME.json`` (config, history, accuracies), ``NAME.npz`` (selected parameters), ``NAME.png``, and
    what the net writes for other tools (:meth:`BaselineNet.write_extra`)."""
    out_dir = Path(out_dir)
    summary = {
        "experiment": f"{net.name}-baseline",
        "dataset": result.dataset,
        "config": asdict(result.config),
        "best_epoch": result.best_epoch,
        "validation_accuracy": result.validation_accuracy,
        "test_accuracy": result.test_accuracy,
        "seconds": result.seconds,
        "history": result.history,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **net.saved_arrays(result.layers))
    written = [
        write_json(out_dir / f"{net.name}.json", summary),
        atomic_write_bytes(out_dir / f"{net.name}.npz", buffer.getvalue()),
    ]
    fig, ax = new_figure()
    epochs = [r["epoch"] for r in result.history]
    ax.plot(epochs, [100 * r["validation_accuracy"] for r in result.history], "o-", label="validation")
    ax.axhline(100 * result.test_accuracy, color="tab:red", linestyle="--", label=f"test (epoch {result.best_epoch})")
    ax.set(xlabel="epoch", ylabel="accuracy (%)", title=f"{net.title}, {result.dataset}")
    ax.legend()
    ax.grid(alpha=0.3)
    written.append(save_figure(fig, out_dir / f"{net.name}.png"))
    return written + net.write_extra(result.layers, out_dir)

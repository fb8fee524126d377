"""``backward="b1"``: B1 networks (train/B1.md), trained as the ReLU network they are equivalent to.

The forward pass is exactly the integer network of :mod:`bs4nn.sim.b1` and the backward goes
straight through its roundings (:mod:`bs4nn.train.b1_model`); what this module adds is the rule
object through which the shared loop (``train/trainer.py``) trains it: per-layer biases and
log-scales stepped by the preset's optimiser with the weights, no silent-network probe,
validation and the test score by the B1 golden model.  Presets ``mnist-b1``, ``fashion-b1``,
``tiny-b1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.sim.b1 import run_b1
from bs4nn.sim.semantics import encode_images
from bs4nn.train.b1_model import B1Shape, b1_network, backward, forward, initial_parameters
from bs4nn.train.b1_model import Parameters as B1Parameters
from bs4nn.train.checkpoint import Checkpoint
from bs4nn.train.network import LabelledImages
from bs4nn.train.rules.base import Batch, BatchResult, Parameters


@dataclass(frozen=True)
class B1Options:
    """The B1 rule's options (``Preset`` fields of the same names)."""

    sizes: tuple[int, ...]
    tmax: int
    windows: tuple[int, ...] = ()  # per hidden layer, steps
    weight_bits: int = 1
    activity_penalty: float = 0.0  # lambda of the mean hidden value (in steps)
    hidden_dropout: float = 0.0
    distill_weight: float = 0.0  # share of the loss that matches the teacher's softened outputs
    distill_temperature: float = 4.0

    def __post_init__(self) -> None:
        try:
            self.shape  # noqa: B018 (validates the windows and the weight width)
        except ValueError as error:
            raise Bs4nnError(f"b1: {error}") from None
        if any(window < 1 for window in self.windows):
            raise Bs4nnError(f"b1: windows must be >= 1 step, got {self.windows}")

    @property
    def shape(self) -> B1Shape:
        return B1Shape(tuple(self.sizes), self.tmax, tuple(self.windows), self.weight_bits)


def b1_checkpoint_network(checkpoint: Checkpoint):
    """The deployed integer network of a B1 checkpoint (``alphas`` its scales, ``thetas`` its windows)."""
    windows = tuple(int(window) for window in checkpoint.thetas[:-1])
    shape = B1Shape(tuple(checkpoint.sizes), checkpoint.tmax, windows, checkpoint.weight_bits)
    return b1_network(checkpoint.weights, checkpoint.alphas, checkpoint.biases, shape, checkpoint.imax)


class B1Rule:
    """Softmax cross-entropy on the integer network's scores plus the activity penalty."""

    name: ClassVar[str] = "b1"
    options_type: ClassVar[type] = B1Options
    binary_only: ClassVar[bool] = True  # the weights are the integers of the contract, never real
    extra_parameters: ClassVar[tuple[str, ...]] = ()
    loss_title: ClassVar[str] = "cross-entropy of the integer scores"
    figures_from_forward: ClassVar[bool] = True
    model: ClassVar[str] = "b1"
    layer_biases: ClassVar[bool] = True
    scales_by_optimiser: ClassVar[bool] = True
    probes_silence: ClassVar[bool] = False  # a silent hidden neuron is a ReLU at 0, not a dead network
    mean_gradients: ClassVar[bool] = True
    metric_fields: ClassVar[tuple[str, ...]] = (
        "train_penalty",
        "train_spikes_per_neuron",
        "validation_spikes_per_neuron",
    )

    def check_preset(self, preset: Any) -> None:
        """Refuse settings the B1 rule cannot train (one error line); its options check the rest."""
        if preset.readout_epochs or preset.calibrate_thresholds:  # both act on BS4NN thresholds
            raise Bs4nnError("b1: readout_epochs and calibrate_thresholds are BS4NN steps; B1 has no thresholds")
        if preset.weight_bits > 1 and preset.weight_clip is not None:
            raise Bs4nnError("b1: b-bit weights are quantised on their mean magnitude; set weight_clip=None")

    def initial_parameters(self, preset: Any, seed: int) -> tuple[list[np.ndarray], list[float], list[float]]:
        """Proxies, scales ``exp(s)`` and the checkpoint's thetas (the hidden windows, 0 for the output)."""
        shape = B1Shape(tuple(preset.sizes), preset.tmax, tuple(preset.windows), preset.weight_bits)
        params = initial_parameters(shape, seed)
        return params.weights, params.scales(), [float(window) for window in preset.windows] + [0.0]

    def batch_gradients(self, batch: Batch, params: Parameters, options: B1Options, xp: ModuleType) -> BatchResult:
        """Gradients of the batch MEAN loss (``mean_gradients``); ``alpha_grads`` are dL/d(log-scale)."""
        log_scales = [xp.asarray([math.log(alpha)], dtype=xp.float32) for alpha in params.alphas]
        model = B1Parameters(list(params.weights), log_scales, list(params.biases))
        run = forward(model, batch.in_times, options.shape, xp, batch.keep_masks)
        distillation = batch.distillation(options)
        grads = backward(model, run, batch.labels, options.shape, options.activity_penalty, xp, distillation)
        n = len(params.weights)
        return BatchResult(
            weight_grads=grads.arrays[:n],
            alpha_grads=[float(g[0]) for g in grads.arrays[n : 2 * n]],
            loss=grads.loss,
            correct=grads.correct,
            output_time_sum=math.nan,
            trained=batch.size,
            silent=0,
            bias_grads=grads.arrays[2 * n :],
            figures={"penalty": np.array(grads.penalty), "spikes_per_neuron": np.array(grads.hidden_spikes)},
        )

    def evaluate(self, checkpoint: Checkpoint, data: LabelledImages) -> dict[str, Any]:
        """Accuracy and spikes per hidden neuron of the deployed integer network (the golden model)."""
        network = b1_checkpoint_network(checkpoint)
        result = run_b1(network, encode_images(data.images, checkpoint.tmax, checkpoint.imax))
        return {
            "images": len(data.labels),
            "accuracy": result.accuracy(data.labels),
            "spikes_per_neuron": result.spikes_per_neuron()[1:],
            "decision_latency": network.latency,
            "scored_by": "golden model (integer B1 network)",
        }

    def validation_row(self, validation: dict[str, Any]) -> dict[str, Any]:
        return {"validation_spikes_per_neuron": validation["spikes_per_neuron"]}

    def epoch_note(self, row: dict[str, Any]) -> str:
        return "spikes per neuron " + ", ".join(f"{s:.3f}" for s in row["validation_spikes_per_neuron"])

    def test_line(self, test: dict[str, Any]) -> str:
        spikes = ", ".join(f"{s:.3f}" for s in test["spikes_per_neuron"])
        return f"({test['scored_by']}), spikes per hidden neuron {spikes}"

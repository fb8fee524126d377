"""What a run measures and shows: the hardware's accuracy on a split, the metrics files, the plots.

Binary networks are scored by the golden model on the exported integer network (alphas rounded
to two decimals, hardware tie rule): the number the hardware will produce, never the trainer's
own readout.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from bs4nn.export.bitmodel import integer_network
from bs4nn.fileio import atomic_write_bytes, atomic_write_text
from bs4nn.sim.golden import golden_summary, run_golden, run_network
from bs4nn.sim.semantics import encode_images
from bs4nn.train.network import LabelledImages, ProxyNetwork


def evaluate(network: ProxyNetwork, data: LabelledImages, *, progress: bool = False) -> dict[str, Any]:
    """Accuracy, mean decision time, spikes per layer up to the decision, of ``network`` on ``data``.

    Binary networks: the golden model on the exported integer network (what the hardware scores);
    S4NN mode (real weights): the float S4NN forward.
    """
    start = time.perf_counter()
    tmax = network.tmax
    input_times = encode_images(data.images, tmax, network.imax)
    if network.binary:
        weights = [np.asarray(w) for w in network.weights]
        integer = integer_network(weights, network.alphas, network.thetas, tmax, network.imax)
        result = run_golden(integer, input_times, progress=progress)
        extra = {
            "threshold_counts": [layer.threshold_count for layer in integer.layers],
            "scored_by": "golden model (alphas rounded to 2 decimals)",
        }
    else:
        real = [np.asarray(w, dtype=np.float64) for w in network.weights]
        thetas = [float(t) for t in network.thetas]
        result = run_network(input_times, real, thetas, tmax, progress=progress, desc="S4NN")
        extra = {"scored_by": "float S4NN forward (real weights)"}
    return {**golden_summary(result, data.labels, tmax, time.perf_counter() - start), **extra}


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
    "validation_first_spike_decisions",
    "validation_p95_decision_time",
    "alphas",
    "threshold_counts",
    "readout_scale",
    "train_seconds",
    "synaptic_events_per_second",
)


def write_metrics(out_dir: Path, history: list[dict[str, Any]], rule_fields: tuple[str, ...] = ()) -> None:
    """``metrics.csv`` (the columns of every rule, then the rule's own ``metric_fields``) and ``metrics.json``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=(*METRIC_FIELDS, *rule_fields), extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({key: json.dumps(value) if isinstance(value, list) else value for key, value in row.items()})
    atomic_write_text(out_dir / "metrics.csv", buffer.getvalue())
    atomic_write_text(out_dir / "metrics.json", json.dumps(history, indent=1) + "\n")


def plot_metrics(out_dir: Path, history: list[dict[str, Any]], loss_title: str) -> Path:
    """Learning curves (loss, accuracies, mean output time) as ``learning_curves.png``.

    ``loss_title``: what the loss column measures, the training rule's ``loss_title``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(epochs, [row["loss"] for row in history], marker="o")
    axes[0].set(title=loss_title, xlabel="epoch")
    axes[1].plot(epochs, [100 * row["train_accuracy"] for row in history], marker="o", label="train (float alphas)")
    axes[1].plot(epochs, [100 * row["validation_accuracy"] for row in history], marker="o", label="validation")
    axes[1].set(title="accuracy %", xlabel="epoch")
    axes[1].legend()
    first_outputs = [row["train_mean_output_time"] for row in history]  # None under snapshot-ce
    axes[2].plot(epochs, [math.nan if t is None else t for t in first_outputs], marker="o", label="train first output")
    decisions = [row.get("validation_mean_decision_time", math.nan) for row in history]  # none for B1: fixed latency
    axes[2].plot(epochs, decisions, marker="o", label="val decision")
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

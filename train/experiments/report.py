"""``bs4nn report --model MODEL``: the paper's analysis figures of one trained model, as Markdown + PNG.

Figures (the paper's numbering): output firing times over the test set ordered by class
(Fig. 2a) and their class means (Fig. 2b / 9a), spikes per layer per class up to the decision
(Fig. 3 / 9c), output-neuron counters for one image with the inputs accumulated up to given
steps (Fig. 4), the confusion matrix (Fig. 9b), real against binary weights of hidden neurons
(Fig. 6, checkpoints only) and the fraction of positive weights per layer.  All spike data come
from the golden model, so the report describes exactly what the hardware computes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.fileio import output_directory
from bs4nn.sim.golden import GoldenResult, IntegerNetwork, decision_statistics, run_golden, trace_potentials
from bs4nn.sim.semantics import encode_images
from bs4nn.train.experiments.models import AnalysedModel, positive_fractions
from bs4nn.train.experiments.plots import markdown_table, new_figure, plt, save_figure, write_json
from bs4nn.train.experiments.sweeps import DEFAULT_CHUNK

REPORT_FILE = "report.md"
DEFAULT_HIDDEN_SHOWN = 8
WRITER = "bs4nn report"  # the owner of its output folders (bs4nn.fileio.output_directory)
STEP_FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # Fig. 4 default: inputs up to these fractions of the decision time


@dataclass
class ReportData:
    """The numbers behind every figure (the tests assert on these)."""

    result: GoldenResult
    labels: np.ndarray
    accuracy: float
    confusion: np.ndarray  # (n_classes, n_out) rows: true label, columns: decision
    class_mean_times: np.ndarray  # (n_classes, n_out) mean output spike time (tmax = never)
    spikes_per_class: np.ndarray  # (n_classes, n_layers + 1) mean spikes up to the decision, input first
    spikes_until: np.ndarray  # (batch, n_layers + 1) spikes up to the decision, input first
    positive_fractions: list[float]
    trace_index: int
    trace_steps: list[int]
    traces: list[np.ndarray]  # trace_potentials of the traced image


def analyse(
    model: AnalysedModel,
    images: np.ndarray,
    labels: np.ndarray,
    image_index: int = 0,
    steps: Sequence[int] | None = None,
    progress: bool = False,
) -> ReportData:
    """Run the golden model on the images and compute every statistic the report shows."""
    network = model.network
    labels = np.asarray(labels).astype(np.int64)
    if len(images) == 0 or len(images) != len(labels):
        raise Bs4nnError(f"need a non-empty set of images with one label each ({len(images)} images, {len(labels)})")
    if not 0 <= image_index < len(images):
        raise Bs4nnError(f"image {image_index} does not exist (0..{len(images) - 1})")
    input_times = encode_images(images, network.tmax, network.imax)
    result = run_golden(network, input_times, chunk=DEFAULT_CHUNK, progress=progress)
    n_out = network.sizes[-1]
    confusion = confusion_matrix(labels, result.decision, n_out)
    n_classes = confusion.shape[0]
    spikes_until = result.spikes_until_decision
    per_class = np.bincount(labels, minlength=n_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        time_sums = np.zeros((n_classes, n_out))
        np.add.at(time_sums, labels, result.spike_times[-1])
        class_mean_times = time_sums / per_class[:, None]
        spike_sums = np.zeros((n_classes, spikes_until.shape[1]))
        np.add.at(spike_sums, labels, spikes_until)
        spikes_per_class = spike_sums / per_class[:, None]
    decision_time = min(int(result.decision_time[image_index]), network.tmax - 1)
    if steps is None:
        steps = sorted({max(0, math.ceil(f * (decision_time + 1)) - 1) for f in STEP_FRACTIONS})
    trace_steps = [int(s) for s in steps]
    if any(not 0 <= s < network.tmax for s in trace_steps):
        raise Bs4nnError(f"steps must lie in 0..{network.tmax - 1}, got {trace_steps}")
    return ReportData(
        result=result,
        labels=labels,
        accuracy=result.accuracy(labels),
        confusion=confusion,
        class_mean_times=class_mean_times,
        spikes_per_class=spikes_per_class,
        spikes_until=spikes_until,
        positive_fractions=positive_fractions(model),
        trace_index=image_index,
        trace_steps=trace_steps,
        traces=trace_potentials(network, input_times[image_index]),
    )


def write_report(
    model: AnalysedModel,
    data: ReportData,
    out_dir: str | os.PathLike,
    meta: dict[str, Any] | None = None,
    hidden_shown: int = DEFAULT_HIDDEN_SHOWN,
) -> Path:
    """Write ``report.md``, its PNGs and ``report.json`` into ``out_dir`` atomically: a folder the report
    did not write is refused, and of one it did, only its own files are replaced."""
    meta = {"model": str(model.source), "dataset": model.dataset, **(meta or {})}
    out_dir = Path(out_dir)
    with output_directory(out_dir, WRITER) as tmp:
        sections = [_header(model, data, meta)]
        sections.append(_fig_output_times(model, data, tmp))
        sections.append(_fig_class_means(model, data, tmp))
        sections.append(_fig_spikes(model, data, tmp))
        sections.append(_fig_potentials(model, data, tmp))
        sections.append(confusion_section(data.confusion, tmp))
        sections.append(_fig_weights(model, tmp, hidden_shown))
        (tmp / REPORT_FILE).write_text("\n".join(sections))
        write_json(tmp / "report.json", {**meta, **_numbers(data, model.network.tmax)})
    return out_dir / REPORT_FILE


def _numbers(data: ReportData, tmax: int) -> dict[str, Any]:
    return {
        "images": len(data.labels),
        "accuracy": data.accuracy,
        **decision_statistics(data.result, tmax),
        "confusion": data.confusion.tolist(),
        "class_mean_times": np.where(np.isnan(data.class_mean_times), None, data.class_mean_times).tolist(),
        "spikes_per_class": np.where(np.isnan(data.spikes_per_class), None, data.spikes_per_class).tolist(),
        "positive_fractions": data.positive_fractions,
        "trace_image": data.trace_index,
        "trace_steps": data.trace_steps,
    }


def _header(model: AnalysedModel, data: ReportData, meta: dict[str, Any]) -> str:
    network = model.network
    decisions = decision_statistics(data.result, network.tmax)
    spikes = ", ".join(f"{v:.1f}" for v in decisions["mean_spikes_until_decision"])
    rows = [
        ["model", f"`{meta['model']}`"],
        ["architecture", "-".join(str(n) for n in network.sizes)],
        ["threshold counts", ", ".join(str(layer.threshold_count) for layer in network.layers)],
        ["tmax / imax", f"{network.tmax} / {network.imax}"],
        ["data", f"{model.dataset} {meta.get('split', '')}, {len(data.labels)} images"],
        ["accuracy (golden model)", f"{100 * data.accuracy:.2f} %"],
        ["decided by a first output spike", f"{100 * decisions['first_spike_decisions']:.1f} %"],
        [
            "decision step: mean / 95th percentile",
            f"{decisions['mean_decision_time']:.1f} / {decisions['p95_decision_time']:.0f}",
        ],
        ["images with no output spike (largest counter at tmax)", str(decisions["no_output_spike"])],
        ["mean spikes up to the decision (input first)", spikes],
    ]
    positive = [[f"layer {i}", f"{100 * f:.1f} %"] for i, f in enumerate(data.positive_fractions)]
    return (
        f"# BS4NN report: {model.name}\n\n"
        "All spike data from the golden model (`bs4nn.sim.golden`), i.e. exactly what the hardware computes.\n\n"
        + markdown_table(["", "value"], rows)
        + "\n## Fraction of positive weights per layer\n\n"
        + markdown_table(["layer", "weights = +1"], positive)
    )


def _class_boundaries(sorted_labels: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.diff(sorted_labels)) + 0.5


def _fig_output_times(model: AnalysedModel, data: ReportData, out: Path) -> str:
    order = np.argsort(data.labels, kind="stable")
    times = data.result.spike_times[-1][order].T
    fig, ax = new_figure(9, 3.6)
    image = ax.imshow(times, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=model.network.tmax)
    for x in _class_boundaries(data.labels[order]):
        ax.axvline(x, color="white", linewidth=0.6)
    ax.set(xlabel="test images, ordered by class", ylabel="output neuron", title="Output firing times (Fig. 2a)")
    fig.colorbar(image, ax=ax, label=f"spike time (steps, {model.network.tmax} = none)")
    save_figure(fig, out / "output_times.png")
    return (
        "\n## Output firing times over the test set (Fig. 2a)\n\n"
        "Each column is one image (ordered by class), each row an output neuron; colour = its spike time.\n\n"
        "![output firing times](output_times.png)\n"
    )


def _fig_class_means(model: AnalysedModel, data: ReportData, out: Path) -> str:
    means = data.class_mean_times
    present = ~np.isnan(means).all(axis=1)
    fig, ax = new_figure(5.6, 4.8)
    image = ax.imshow(means, cmap="viridis_r", vmin=0, vmax=model.network.tmax)
    if means.size <= 400:
        for (row, col), value in np.ndenumerate(means):
            if not np.isnan(value):
                colour = "black" if value < model.network.tmax / 2 else "white"  # light cells: dark text
                ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set(xlabel="output neuron", ylabel="image class", title="Mean output firing time per class (Fig. 2b / 9a)")
    ax.set_xticks(range(means.shape[1]))
    ax.set_yticks(range(means.shape[0]))
    fig.colorbar(image, ax=ax, label="mean spike time (steps)")
    save_figure(fig, out / "class_mean_times.png")
    header = ["class", *[f"n{j}" for j in range(means.shape[1])]]
    rows = [[c, *[f"{v:.1f}" for v in means[c]]] for c in np.flatnonzero(present)]
    return (
        "\n## Mean firing time of each output neuron per class (Fig. 2b / 9a)\n\n"
        "![class mean times](class_mean_times.png)\n\n" + markdown_table(header, rows)
    )


def _fig_spikes(model: AnalysedModel, data: ReportData, out: Path) -> str:
    spikes = data.spikes_per_class
    n_layers = spikes.shape[1]
    fig, axes = new_figure(3.2 * n_layers, 3.2, ncols=n_layers, squeeze=False)
    classes = np.arange(spikes.shape[0])
    names = ["input", *[f"layer {i}" for i in range(n_layers - 1)]]
    for column, (ax, name) in enumerate(zip(axes[0], names, strict=True)):
        ax.bar(classes, np.nan_to_num(spikes[:, column]))
        ax.set(xlabel="class", title=name, xticks=classes)
    axes[0][0].set_ylabel("mean spikes up to the decision")
    save_figure(fig, out / "spikes_per_layer.png")
    rows = [[c, *[f"{v:.1f}" for v in spikes[c]]] for c in classes if not np.isnan(spikes[c]).all()]
    overall = data.spikes_until.mean(axis=0)
    rows.append(["all", *[f"{v:.1f}" for v in overall]])
    return (
        "\n## Spikes per layer per class up to the decision (Fig. 3 / 9c)\n\n"
        "![spikes per layer](spikes_per_layer.png)\n\n" + markdown_table(["class", *names], rows)
    )


def _fig_potentials(model: AnalysedModel, data: ReportData, out: Path) -> str:
    network = model.network
    index = data.trace_index
    input_times = data.result.input_times[index]
    output_trace = data.traces[-1]
    side = math.isqrt(network.sizes[0])
    square = side * side == network.sizes[0]
    steps = data.trace_steps
    fig = _potentials_figure(network, input_times, output_trace, steps, side if square else 0, data, index)
    save_figure(fig, out / "potentials.png")
    label = int(data.labels[index])
    return (
        f"\n## Output counters for image {index} (Fig. 4)\n\n"
        f"True class {label}, decision {int(data.result.decision[index])} at step "
        f"{int(data.result.decision_time[index])}; the dashed line is the output threshold "
        f"({network.layers[-1].threshold_count} counts). Top: inputs that have spiked by steps {steps}.\n\n"
        "![potentials](potentials.png)\n"
    )


def _potentials_figure(
    network: IntegerNetwork,
    input_times: np.ndarray,
    output_trace: np.ndarray,
    steps: list[int],
    side: int,
    data: ReportData,
    index: int,
) -> plt.Figure:
    """Top: the inputs that have spiked by each step (as a ``side`` x ``side`` image if square); bottom: counters."""

    n_steps = len(steps)
    fig = plt.figure(figsize=(max(8.0, 2.0 * n_steps), 6.4))
    grid = fig.add_gridspec(2, n_steps, height_ratios=(1, 1.6))
    for column, step in enumerate(steps):
        ax = fig.add_subplot(grid[0, column])
        arrived = (input_times <= step).astype(np.float64)
        if side:
            ax.imshow(arrived.reshape(side, side), cmap="gray_r", vmin=0, vmax=1)
        else:
            ax.plot(arrived, ".")
        ax.set_title(f"t <= {step}: {int(arrived.sum())} spikes", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    label = int(data.labels[index])
    for neuron in range(output_trace.shape[1]):
        bold = neuron == label
        name = f"n{neuron} (label)" if bold else f"n{neuron}"
        ax.plot(output_trace[:, neuron], linewidth=2.2 if bold else 0.9, label=name)
    ax.axhline(network.layers[-1].threshold_count, color="black", linestyle="--", linewidth=0.8)
    decision_time = int(data.result.decision_time[index])
    if decision_time < network.tmax:
        ax.axvline(decision_time, color="gray", linestyle=":", linewidth=0.8)
    ax.set(xlabel="time step", ylabel="output counter", xlim=(0, network.tmax - 1))
    ax.legend(fontsize=7, ncol=5)
    return fig


def confusion_matrix(labels: np.ndarray, decision: np.ndarray, n_out: int) -> np.ndarray:
    """``(n_classes, n_out)`` counts: rows the true label, columns the decision."""
    labels = np.asarray(labels).astype(np.int64)
    confusion = np.zeros((max(n_out, int(labels.max()) + 1), n_out), np.int64)
    np.add.at(confusion, (labels, decision), 1)
    return confusion


def confusion_section(confusion: np.ndarray, out: Path) -> str:
    """The confusion matrix as ``confusion.png`` and a Markdown table (both families' reports)."""
    fig, ax = new_figure(5.2, 4.6)
    image = ax.imshow(confusion, cmap="Blues")
    if confusion.size <= 400:
        threshold = confusion.max() / 2 if confusion.size else 0
        for (row, col), value in np.ndenumerate(confusion):
            colour = "white" if value > threshold else "black"
            ax.text(col, row, str(value), ha="center", va="center", fontsize=7, color=colour)
    ax.set(xlabel="decision", ylabel="true class", title="Confusion matrix (Fig. 9b)")
    ax.set_xticks(range(confusion.shape[1]))
    ax.set_yticks(range(confusion.shape[0]))
    fig.colorbar(image, ax=ax)
    save_figure(fig, out / "confusion.png")
    header = ["true \\ decided", *[str(j) for j in range(confusion.shape[1])]]
    rows = [[c, *confusion[c].tolist()] for c in range(confusion.shape[0]) if confusion[c].sum()]
    return "\n## Confusion matrix (Fig. 9b)\n\n![confusion](confusion.png)\n\n" + markdown_table(header, rows)


def _fig_weights(model: AnalysedModel, out: Path, hidden_shown: int) -> str:
    title = "\n## Real vs binary weights of hidden neurons (Fig. 6)\n\n"
    if model.checkpoint is None or len(model.network.layers) < 2:
        why = "a bit-model folder has no real weights" if model.checkpoint is None else "the model has no hidden layer"
        return title + f"Not available: {why} (give the checkpoint `.npz`).\n"
    weights = np.asarray(model.checkpoint.weights[0])
    shown = min(hidden_shown, weights.shape[0])
    side = math.isqrt(weights.shape[1])
    square = side * side == weights.shape[1]
    fig, axes = new_figure(1.6 * shown, 3.4, nrows=2, ncols=shown, squeeze=False)
    for neuron in range(shown):
        real, binary = weights[neuron], np.where(weights[neuron] >= 0, 1.0, -1.0)
        limit = float(np.abs(real).max()) or 1.0
        for row, (values, vmax) in enumerate(((real, limit), (binary, 1.0))):
            ax = axes[row][neuron]
            if square:
                ax.imshow(values.reshape(side, side), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            else:
                ax.plot(values, ".", markersize=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][neuron].set_title(f"hidden {neuron}", fontsize=8)
    axes[0][0].set_ylabel("real W")
    axes[1][0].set_ylabel("sign(W)")
    save_figure(fig, out / "weights_real_vs_binary.png")
    return (
        title
        + f"First {shown} hidden neurons: real-valued weights (top) and their signs (bottom).\n\n"
        + ("![weights](weights_real_vs_binary.png)\n")
    )

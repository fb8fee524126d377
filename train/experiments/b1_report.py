"""``bs4nn report`` of a B1 model: accuracy, spikes per neuron per layer, spike-step histograms,
confusion matrix, as Markdown + PNG.  All figures come from the B1 golden model
(:func:`bs4nn.sim.b1.run_b1`): exactly the integer network the hardware runs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import MANIFEST, load_bit_model
from bs4nn.fileio import output_directory
from bs4nn.sim.b1 import B1Network, B1Result, run_b1_images
from bs4nn.train.checkpoint import load_checkpoint
from bs4nn.train.experiments.plots import markdown_table, new_figure, save_figure, write_json
from bs4nn.train.experiments.report import REPORT_FILE, WRITER, confusion_matrix, confusion_section


def load_b1(path: str | os.PathLike) -> tuple[B1Network, str] | None:
    """The B1 network and dataset of a bit-model folder or checkpoint, or None if it holds BS4NN."""
    from bs4nn.train.b1_model import B1Shape, b1_network

    path = Path(path)
    if path.is_dir() and (path / MANIFEST).is_file():
        model = load_bit_model(path)
        return (model.network, str(model.manifest.get("dataset", "mnist"))) if model.model == "b1" else None
    if not path.exists():
        return None
    checkpoint = load_checkpoint(path)
    if checkpoint.model != "b1":
        return None
    shape = B1Shape(
        tuple(checkpoint.sizes), checkpoint.tmax, tuple(int(t) for t in checkpoint.thetas[:-1]), checkpoint.weight_bits
    )
    network = b1_network(checkpoint.weights, checkpoint.alphas, checkpoint.biases, shape, checkpoint.imax)
    return network, checkpoint.dataset


@dataclass
class B1ReportData:
    result: B1Result
    labels: np.ndarray
    confusion: np.ndarray
    histograms: list[np.ndarray]  # per hidden layer: spikes at each step 0..window-1 (silent neurons not counted)


def analyse_b1(network: B1Network, images: np.ndarray, labels: np.ndarray) -> B1ReportData:
    if len(images) == 0 or len(images) != len(labels):
        raise Bs4nnError(f"need a non-empty set of images with one label each ({len(images)} images, {len(labels)})")
    result = run_b1_images(network, images)
    histograms = []
    for layer, values in zip(network.layers[:-1], result.values[1:], strict=True):
        steps = layer.window - values[values > 0]
        histograms.append(np.bincount(steps, minlength=layer.window))
    confusion = confusion_matrix(labels, result.decision, network.sizes[-1])
    return B1ReportData(result, np.asarray(labels), confusion, histograms)


def _histogram_section(data: B1ReportData, out: Path) -> str:
    fig, axes = new_figure(4.5 * len(data.histograms), 3.2, ncols=len(data.histograms), squeeze=False)
    for index, histogram in enumerate(data.histograms):
        ax = axes[0][index]
        ax.bar(np.arange(len(histogram)), histogram / len(data.labels))
        ax.set(xlabel="spike step in the window", ylabel="spikes per image", title=f"hidden layer {index + 1}")
    save_figure(fig, out / "spike_steps.png")
    return "\n## Hidden spike steps\n\n![spike steps](spike_steps.png)\n"


def write_b1_report(network: B1Network, data: B1ReportData, out_dir: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """``report.md``, ``report.json`` and the PNGs, replacing ``out_dir`` whole (atomically)."""
    spikes = data.result.spikes_per_neuron()
    numbers = {
        "model": "b1",
        "images": len(data.labels),
        "accuracy": data.result.accuracy(data.labels),
        "spikes_per_neuron": spikes,
        "decision_latency": network.latency,
        "spike_step_histograms": [h.tolist() for h in data.histograms],
        "confusion": data.confusion.tolist(),
    }
    rows = [
        ["model", f"`{meta['model']}`"],
        ["architecture", "-".join(str(n) for n in network.sizes)],
        ["weight bits", str(network.layers[0].weight_bits)],
        ["ramps / windows", ", ".join(f"{layer.ramp} / {layer.window}" for layer in network.layers[:-1])],
        ["data", f"{meta['dataset']} {meta.get('split', '')}, {len(data.labels)} images"],
        ["accuracy (golden model)", f"{100 * numbers['accuracy']:.2f} %"],
        ["spikes per neuron (input first; output layer none)", ", ".join(f"{s:.3f}" for s in spikes)],
        ["decision at step", str(network.latency)],
    ]
    out_dir = Path(out_dir)
    with output_directory(out_dir, WRITER) as tmp:
        sections = [f"# B1 report: {Path(meta['model']).name}\n\n" + markdown_table(["", "value"], rows)]
        sections.append(_histogram_section(data, tmp))
        sections.append(confusion_section(data.confusion, tmp))
        (tmp / REPORT_FILE).write_text("\n".join(sections))
        write_json(tmp / "report.json", {**meta, **numbers})
    return out_dir / REPORT_FILE

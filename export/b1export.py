"""Exporting B1 networks: a B1 checkpoint, or a float ReLU MLP trained elsewhere, to a bit-model folder.

The integer network comes from the one conversion :func:`bs4nn.train.b1_model.b1_network` (the
trainer's validation runs the same), its test accuracy from the B1 golden model
(:func:`bs4nn.sim.b1.run_b1`), and the folder from :func:`bs4nn.export.bitmodel.write_bit_model`
with ``"model": "b1"``.  1-bit layers also get the BS4NN memory images of their sign bits (the
same packing; b-bit layers get none, the core runs 1-bit weights); every B1 folder gets the C
header ``bs4nn_model.h`` (:func:`bs4nn.export.cheader.c_header`, the B1 fields) that the C routine
(``firmware/c``) runs bit for bit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import write_bit_model
from bs4nn.export.cheader import HEADER_NAME, c_header
from bs4nn.export.exporter import (
    EVAL_SPLIT,
    ExportResult,
    ModelSource,
    canonical_dataset,
    check_output_folder,
    memory_geometry,
    test_inputs,
    verify_bit_model,
)
from bs4nn.export.layout import MemoryLayout, time_bits
from bs4nn.export.memfiles import memory_images
from bs4nn.fileio import sha256_path
from bs4nn.lanes import DEFAULT_LANES, MAX_LANES
from bs4nn.npyfiles import load_relu_mlp
from bs4nn.sim.b1 import B1Network, run_b1
from bs4nn.sim.semantics import IMAX, TMAX, encode_images
from bs4nn.train.b1_model import B1Shape, b1_network, integer_weights, weight_step
from bs4nn.version import __version__

CALIBRATION_IMAGES = 2_000
"""--from-relu: training images whose hidden activations set each hidden layer's step size."""
CALIBRATION_QUANTILE = 0.999
"""--from-relu: the hidden activation quantile that maps to the full window (rarer ones saturate)."""


def b1_shape(source: ModelSource) -> B1Shape:
    sizes = (source.weights[0].shape[1], *(w.shape[0] for w in source.weights))
    windows = tuple(int(t) for t in source.thetas[:-1])
    try:
        return B1Shape(sizes, source.tmax, windows, source.weight_bits)
    except ValueError as error:
        raise Bs4nnError(f"{source.label}: {error}") from error


def build_b1_network(source: ModelSource) -> B1Network:
    """The deployed B1 network of a source; every defect is a :class:`Bs4nnError`."""
    if len(source.biases) != len(source.weights):
        raise Bs4nnError(f"{source.label}: a B1 model needs one bias vector per layer")
    try:
        return b1_network(source.weights, source.alphas, source.biases, b1_shape(source), source.imax)
    except ValueError as error:
        raise Bs4nnError(f"{source.label}: {error}") from error


def evaluate_b1_network(
    network: B1Network, dataset: str, data_dir: str | os.PathLike | None = None, images: int | None = None
) -> dict[str, Any]:
    """Test accuracy and spikes per neuron of the integer network (the manifest's ``metrics``)."""
    input_times, labels, name = test_inputs(network, dataset, data_dir, images)
    start = time.perf_counter()
    result = run_b1(network, input_times)
    correct = int((result.decision == labels).sum())
    return {
        "evaluated_by": "bs4nn.sim.b1",
        "dataset": name,
        "split": EVAL_SPLIT,
        "images": len(labels),
        "correct": correct,
        "test_accuracy": correct / len(labels) if len(labels) else 0.0,
        "spikes_per_neuron": result.spikes_per_neuron(),
        "decision_latency": network.latency,
        "seconds": round(time.perf_counter() - start, 3),
    }


def export_b1_model(
    source: ModelSource,
    out_dir: str | os.PathLike,
    *,
    lanes: int = DEFAULT_LANES,
    evaluate_accuracy: bool = True,
    data_dir: str | os.PathLike | None = None,
    images: int | None = None,
    declared_counter_bits: int | None = None,
    progress: bool = False,
) -> ExportResult:
    """Write the bit-model folder of a B1 ``source`` to ``out_dir`` (atomically) and read it back.

    Same keywords as :func:`~bs4nn.export.exporter.export_model`, so one call exports either family
    (:func:`bs4nn.export.models.export_source`): a declared counter width is BS4NN's and refused here,
    and ``progress`` shows nothing (the B1 closed form is one vectorised pass of seconds).
    """
    if declared_counter_bits is not None:
        raise Bs4nnError("--counter-bits is a BS4NN width; a B1 manifest declares each layer's potential_bits")
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    if not 1 <= lanes <= MAX_LANES:
        raise Bs4nnError(f"--lanes must be 1..{MAX_LANES}, got {lanes}")
    network = build_b1_network(source)
    dataset = canonical_dataset(source.dataset)
    if evaluate_accuracy:
        metrics = evaluate_b1_network(network, dataset, data_dir, images)
    else:
        metrics = {"evaluated_by": None, "test_accuracy": None, "note": "not evaluated (--no-eval)"}
    if source.training_metrics is not None:
        metrics["training"] = source.training_metrics
    extra_files: dict[str, bytes] = {}
    layer_info = []
    for index, layer in enumerate(network.layers):
        info: dict[str, Any] = {"scale": source.alphas[index]}
        if layer.weight_bits == 1:
            signs = (layer.weights > 0).astype(np.uint8)
            extra_files.update(memory_images(signs, lanes, index))
            info["memory"] = memory_geometry(MemoryLayout(layer.fan_in, layer.fan_out, lanes), index)
        layer_info.append(info)
    extra_files[HEADER_NAME] = c_header(network, dataset).encode()
    meta = {
        "dataset": dataset,
        "lanes": lanes,
        "c_header": HEADER_NAME,
        "decision_latency": network.latency,
        "time_bits": time_bits(max(network.input_window(i) for i in range(len(network.layers)))),
        "exporter": {"name": "bs4nn-export", "version": __version__},
        "source": source.origin,
        "metrics": metrics,
    }
    path = write_bit_model(network, out_dir, layer_info=layer_info, extra_files=extra_files, meta=meta)
    model = verify_bit_model(path)
    bits = sum(layer.fan_in * layer.fan_out * layer.weight_bits for layer in network.layers)
    report = {"weight_bits": bits, "bin_bytes": sum(len(p) for n, p in _weight_files(path, model.manifest))}
    return ExportResult(path, model, report, [])


def _weight_files(folder: Path, manifest: dict) -> list[tuple[str, bytes]]:
    return [(entry["weights"], (folder / entry["weights"]).read_bytes()) for entry in manifest["layers"]]


def hidden_steps(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], inputs: np.ndarray, window: int) -> list:
    """Per hidden layer of a float ReLU MLP: the activation that one step of the window stands for.

    Chosen so that the ``CALIBRATION_QUANTILE`` of the layer's activations on ``inputs`` fills
    the window; the layers below are already quantised (their steps), as the B1 network runs.
    """
    steps, x = [], inputs
    for weight, bias in zip(weights[:-1], biases[:-1], strict=True):
        activation = np.maximum(x @ weight.T + bias, 0)
        positive = activation[activation > 0]
        step = float(np.quantile(positive, CALIBRATION_QUANTILE)) / window if positive.size else 1.0
        steps.append(max(step, 1e-12))
        x = np.clip(np.floor(activation / steps[-1]), 0, window) * steps[-1]
    return steps


def source_from_relu(
    paths: Sequence[str | os.PathLike],
    weight_bits: int,
    window: int,
    *,
    tmax: int = TMAX,
    imax: int = IMAX,
    dataset: str = "mnist",
    data_dir: str | os.PathLike | None = None,
) -> ModelSource:
    """A float ReLU MLP trained elsewhere (``W0.npy b0.npy W1.npy b1.npy ...``, inputs = pixels/imax)
    as a B1 source: weights quantised to ``weight_bits``, each hidden layer's step calibrated on
    training images (:func:`hidden_steps`), the scales chosen so :func:`b1_network` maps it exactly."""
    from bs4nn.train.datasets import load_split

    weights, biases = load_relu_mlp(paths)
    sizes = (weights[0].shape[1], *(w.shape[0] for w in weights))
    try:
        shape = B1Shape(sizes, tmax, (window,) * (len(weights) - 1), weight_bits)
    except ValueError as error:
        raise Bs4nnError(f"--from-relu: {error}") from error
    units = [float(np.abs(w).mean()) if weight_bits == 1 else weight_step(w, weight_bits) for w in weights]
    quantised = [integer_weights(w, weight_bits) * unit for w, unit in zip(weights, units, strict=True)]
    pixels, _ = load_split(canonical_dataset(dataset), "train", data_dir)
    inputs = (tmax - np.minimum(encode_images(pixels[:CALIBRATION_IMAGES], tmax, imax), tmax)) / tmax
    steps = hidden_steps(quantised, biases, inputs, window)
    input_units = [1 / tmax, *steps]  # what one unit of each layer's integer input stands for
    out_units = [*steps, 1.0]  # what one unit of each layer's pre-activation stands for
    scales, scaled_biases = [], []
    for layer, (unit, bias) in enumerate(zip(units, biases, strict=True)):
        factor = unit * input_units[layer] / out_units[layer]
        scales.append(factor / shape.gain(layer))
        scaled_biases.append((bias / out_units[layer]).astype(np.float64))
    files = [{"path": str(path), "sha256": sha256_path(path)} for path in paths]
    return ModelSource(
        weights=weights,
        alphas=scales,
        thetas=[float(window)] * (len(weights) - 1) + [0.0],
        tmax=tmax,
        imax=imax,
        dataset=dataset,
        origin={"kind": "relu-npy", "files": files, "hidden_steps": steps},
        model="b1",
        biases=scaled_biases,
        weight_bits=weight_bits,
    )

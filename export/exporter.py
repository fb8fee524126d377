"""From a trained model to the bit-model folder that the hardware, the firmware and the tests read.

A *source* is a training checkpoint (a ``.npz`` file or a run folder holding ``calibrated.npz``,
``best.npz`` or ``checkpoint.npz``), a shipped pretrained model by name (``mnist``, ``fashion``: the package
files ``bs4nn/train/pretrained/<name>.npz``), or weight matrices trained elsewhere (``.npy``).
:func:`export_model` turns it into the integer network (:func:`bs4nn.export.bitmodel.integer_network`,
the one conversion), measures its test accuracy with the golden model, and writes the folder
atomically with :func:`bs4nn.export.bitmodel.write_bit_model`: the ``.bin`` sign rows, the memory
images of :mod:`bs4nn.export.memfiles`, the C header of :mod:`bs4nn.export.cheader` and a manifest
that hashes every file.  Everything is computed before anything is written, so a failure leaves
the output folder as it was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import (
    MANIFEST,
    WRITER,
    BitModel,
    integer_network,
    legacy_entries,
    load_bit_model,
    quantize_alpha,
    write_bit_model,
)
from bs4nn.export.cheader import HEADER_NAME, c_header
from bs4nn.export.layout import MemoryLayout, counter_bits, signs_from_words, time_bits
from bs4nn.export.memfiles import MEMORY_FORMATS, memory_images, read_hex_image
from bs4nn.export.naming import resolve_model
from bs4nn.fileio import owned_entries, sha256_path
from bs4nn.lanes import DEFAULT_LANES, MAX_LANES
from bs4nn.npyfiles import load_npy_weights
from bs4nn.sim.golden import IntegerNetwork, decision_statistics, run_golden, run_network
from bs4nn.sim.semantics import IMAX, TMAX, encode_images, threshold_count
from bs4nn.train.checkpoint import load_checkpoint, run_model_path
from bs4nn.train.datasets import dataset_spec, load_split
from bs4nn.version import __version__

FLOAT_BITS = 32
"""Bits of one float32 weight: the memory report compares the 1-bit signs with them."""
EVAL_SPLIT = "test"


@dataclass(frozen=True)
class ModelSource:
    """Real weights and their scales, wherever they came from, plus how to cite the origin."""

    weights: list[np.ndarray]  # per layer (fan_out, fan_in)
    alphas: list[float]
    thetas: list[float]
    tmax: int = TMAX
    imax: int = IMAX
    dataset: str = "mnist"
    binary: bool = True
    origin: dict[str, Any] = field(default_factory=dict)  # the manifest's ``source``
    training_metrics: dict[str, Any] | None = None  # the checkpoint's last metrics entry
    model: str = "bs4nn"  # or "b1": then alphas are the scales, thetas the windows (train/checkpoint.py)
    biases: list[np.ndarray] = field(default_factory=list)  # b1 only
    weight_bits: int = 1

    @property
    def label(self) -> str:
        """Short description for messages."""
        kind = self.origin.get("kind", "?")
        if kind == "npy":
            return "npy " + " ".join(entry["path"] for entry in self.origin["files"])
        return f"{kind} {self.origin.get('name') or self.origin.get('path')}"


def checkpoint_path(path: str | os.PathLike) -> Path:
    """The checkpoint file of a path: the file itself, or a run folder's model (``run_model_path``)."""
    path = Path(path)
    if path.is_dir():
        return run_model_path(path)
    if not path.is_file():
        raise Bs4nnError(f"{path}: no such checkpoint file")
    return path


def source_from_checkpoint(path: str | os.PathLike, origin: Mapping[str, Any] | None = None) -> ModelSource:
    """A checkpoint file as a source; ``origin`` adds manifest fields (the shipped model's name)."""
    file = checkpoint_path(path)
    checkpoint = load_checkpoint(file)
    return ModelSource(
        weights=[np.asarray(w) for w in checkpoint.weights],
        alphas=[float(a) for a in checkpoint.alphas],
        thetas=[float(t) for t in checkpoint.thetas],
        tmax=int(checkpoint.tmax),
        imax=int(checkpoint.imax),
        dataset=checkpoint.dataset,
        binary=bool(checkpoint.binary),
        origin={
            "kind": "checkpoint",
            "path": str(path),
            "file": file.name,
            "sha256": sha256_path(file),
            "epoch": checkpoint.epoch,
            "seed": checkpoint.seed,
            **(origin or {}),
        },
        training_metrics=checkpoint.metrics[-1] if checkpoint.metrics else None,
        model=checkpoint.model,
        biases=[np.asarray(b) for b in checkpoint.biases],
        weight_bits=int(checkpoint.weight_bits),
    )


def resolve_source(source: str, pretrained_root: str | os.PathLike | None = None) -> ModelSource:
    """``SOURCE`` of the command line, named as every command names a model (:mod:`bs4nn.export.naming`).

    A bit-model folder holds no real weights, so it is no source for an export.
    """
    name = resolve_model(source, pretrained_root)
    if name.is_bit_model:
        raise Bs4nnError(f"{source}: a bit-model folder already; exporting needs the checkpoint it came from")
    if name.shipped:
        return source_from_checkpoint(name.path, {"kind": "shipped", "name": name.shipped, "path": name.path.name})
    return source_from_checkpoint(name.path, {"path": source})


def source_from_npy(
    paths: Sequence[str | os.PathLike],
    alphas: Sequence[float] | None,
    thetas: Sequence[float] | None,
    tmax: int = TMAX,
    imax: int = IMAX,
    dataset: str = "mnist",
) -> ModelSource:
    """Weights trained elsewhere: one ``.npy`` per layer, alphas per layer, theta one or per layer."""
    weights = [load_npy_weights(path) for path in paths]
    n_layers = len(weights)
    if not alphas or len(alphas) != n_layers:
        raise Bs4nnError(f"--alpha needs one value per layer: {n_layers} weight files, got {len(alphas or [])}")
    if not thetas or len(thetas) not in (1, n_layers):
        raise Bs4nnError(f"--theta needs one value or one per layer ({n_layers}), got {len(thetas or [])}")
    thetas = list(thetas) * n_layers if len(thetas) == 1 else list(thetas)
    for index in range(1, n_layers):
        if weights[index].shape[1] != weights[index - 1].shape[0]:
            raise Bs4nnError(
                f"{paths[index]}: fan-in {weights[index].shape[1]} does not match the "
                f"{weights[index - 1].shape[0]} neurons of {paths[index - 1]}"
            )
    if tmax < 1 or imax < 1:
        raise Bs4nnError(f"--tmax and --imax must be positive, got {tmax} and {imax}")
    files = [{"path": str(path), "sha256": sha256_path(path)} for path in paths]
    return ModelSource(
        weights=weights,
        alphas=[float(a) for a in alphas],
        thetas=[float(t) for t in thetas],
        tmax=tmax,
        imax=imax,
        dataset=dataset,
        origin={"kind": "npy", "files": files},
    )


def build_network(source: ModelSource) -> IntegerNetwork:
    """The deployed integer network of a source; every defect is a :class:`Bs4nnError`."""
    if source.model != "bs4nn":  # B1: bs4nn.export.b1export.build_b1_network
        raise Bs4nnError(f"{source.label}: a {source.model} model; this command takes BS4NN networks only")
    for index, (alpha, theta) in enumerate(zip(source.alphas, source.thetas, strict=True)):
        if not np.isfinite(alpha) or alpha <= 0:
            raise Bs4nnError(f"layer {index}: alpha {alpha} must be a positive number")
        if not np.isfinite(theta) or theta <= 0:
            raise Bs4nnError(f"layer {index}: theta {theta} must be a positive number")
        if not np.isfinite(source.weights[index]).all():
            raise Bs4nnError(f"layer {index}: weights hold NaN or inf")
    try:
        return integer_network(source.weights, source.alphas, source.thetas, source.tmax, source.imax)
    except ValueError as error:
        raise Bs4nnError(f"{source.label}: {error}") from error


def layouts(network: IntegerNetwork, lanes: int) -> list[MemoryLayout]:
    """Each layer's weight-memory geometry for ``lanes`` lanes."""
    if not 1 <= lanes <= MAX_LANES:
        raise Bs4nnError(f"--lanes must be 1..{MAX_LANES}, got {lanes}")
    return [MemoryLayout(layer.fan_in, layer.fan_out, lanes) for layer in network.layers]


def memory_geometry(layout: MemoryLayout, index: int) -> dict[str, Any]:
    """The manifest's ``memory`` entry of one layer."""
    return {
        "depth": layout.depth,
        "width": layout.width,
        "words_per_row": layout.words_per_row,
        "address_bits": layout.address_bits,
        "files": {suffix: f"layer{index}.{suffix}" for suffix in MEMORY_FORMATS},
    }


def required_counter_bits(network: IntegerNetwork) -> list[int]:
    return [counter_bits(layer.fan_in, layer.threshold_count) for layer in network.layers]


def check_counter_width(network: IntegerNetwork, declared_bits: int | None) -> None:
    """Refuse a network whose counters would overflow the hardware's declared signed width."""
    if declared_bits is None:
        return
    for index, needed in enumerate(required_counter_bits(network)):
        if needed > declared_bits:
            layer = network.layers[index]
            raise Bs4nnError(
                f"layer {index}: counters need {needed} signed bits (fan-in {layer.fan_in}, threshold count "
                f"{layer.threshold_count}), more than the declared {declared_bits}: they would overflow"
            )


def test_inputs(
    network: IntegerNetwork,
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    images: int | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Spike-coded test images of ``dataset`` for this network: ``(input_times, labels, name)``."""
    name = dataset_spec(dataset).name
    pixels, labels = load_split(name, EVAL_SPLIT, data_dir, download=False)
    if images is not None:
        pixels, labels = pixels[:images], labels[:images]
    try:
        input_times = encode_images(pixels, network.tmax, network.imax)
    except ValueError as error:
        raise Bs4nnError(
            f"{name} {EVAL_SPLIT} images do not fit the model's imax {network.imax} ({error}); "
            "use --no-eval or the imax the model was trained with"
        ) from error
    return input_times, labels, name


def evaluate(
    network: IntegerNetwork,
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    images: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Test accuracy of the integer network by the golden model (the manifest's ``metrics``)."""
    input_times, labels, name = test_inputs(network, dataset, data_dir, images)
    start = time.perf_counter()
    result = run_golden(network, input_times, progress=progress)
    correct = int((result.decision == labels).sum())
    return {
        "evaluated_by": "bs4nn.sim.golden",
        "dataset": name,
        "split": EVAL_SPLIT,
        "images": len(labels),
        "correct": correct,
        "test_accuracy": correct / len(labels) if len(labels) else 0.0,
        **(decision_statistics(result, network.tmax) if len(labels) else {"mean_decision_time": 0.0}),
        "seconds": round(time.perf_counter() - start, 3),
    }


def canonical_dataset(dataset: str) -> str:
    """``fashion`` -> ``fashion-mnist``; an unknown name is kept as written."""
    try:
        return dataset_spec(dataset).name
    except Bs4nnError:
        return dataset


@dataclass
class ExportResult:
    """What :func:`export_model` wrote: the folder, read back and verified, and what to tell the user."""

    path: Path
    model: BitModel
    report: dict[str, Any]
    warnings: list[str]


def memory_report(network: IntegerNetwork, folder: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Bits of weights, bytes on disk, and the ratio to the same weights as 32-bit floats."""
    weight_bits = sum(layer.fan_in * layer.fan_out for layer in network.layers)
    bin_bytes = sum((folder / entry["weights"]).stat().st_size for entry in manifest["layers"])
    float_bytes = weight_bits * FLOAT_BITS // 8
    files = [*manifest["files"], MANIFEST]
    return {
        "weight_bits": weight_bits,
        "bin_bytes": bin_bytes,
        "float32_bytes": float_bytes,
        "ratio_to_float32": float_bytes / bin_bytes,
        "folder_bytes": sum((folder / name).stat().st_size for name in files),
        "memory_bits": sum(entry["memory"]["depth"] * entry["memory"]["width"] for entry in manifest["layers"]),
    }


def check_output_folder(out_dir: Path) -> None:
    """Refuse, before the work, a folder this exporter did not write (``bs4nn.fileio.owned_entries``)."""
    owned_entries(out_dir, WRITER, legacy_entries)


def export_model(
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
    """Write the bit-model folder of ``source`` to ``out_dir`` (atomically) and read it back."""
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    network = build_network(source)
    geometry = layouts(network, lanes)
    check_counter_width(network, declared_counter_bits)
    warnings = []
    if not source.binary:
        warnings.append("the checkpoint is real-valued (binary=False): only the signs of its weights are exported")
    for index, layer in enumerate(network.layers):
        if layer.threshold_count > layer.fan_in:
            warnings.append(
                f"layer {index}: threshold count {layer.threshold_count} exceeds fan-in {layer.fan_in}: "
                "its neurons can never fire"
            )
    dataset = canonical_dataset(source.dataset)
    if evaluate_accuracy:
        metrics = evaluate(network, dataset, data_dir, images, progress)
    else:
        metrics = {"evaluated_by": None, "test_accuracy": None, "note": "not evaluated (--no-eval)"}
    if source.training_metrics is not None:
        metrics["training"] = source.training_metrics

    extra_files: dict[str, bytes] = {}
    layer_info = []
    for index, (layer, layout) in enumerate(zip(network.layers, geometry, strict=True)):
        extra_files.update(memory_images(layer.signs, lanes, index))
        alpha_q = quantize_alpha(source.alphas[index])
        info: dict[str, Any] = {
            "alpha": source.alphas[index],
            "alpha_q": str(alpha_q),
            "alpha_q_value": float(alpha_q),
            "theta": source.thetas[index],
            "memory": memory_geometry(layout, index),
        }
        if declared_counter_bits is not None:
            info["counter_bits"] = declared_counter_bits
        layer_info.append(info)
    extra_files[HEADER_NAME] = c_header(network, dataset).encode()
    meta = {
        "dataset": dataset,
        "lanes": lanes,
        "time_bits": time_bits(network.tmax),
        "c_header": HEADER_NAME,
        "exporter": {"name": "bs4nn-export", "version": __version__},
        "source": source.origin,
        "metrics": metrics,
    }
    path = write_bit_model(network, out_dir, layer_info=layer_info, extra_files=extra_files, meta=meta)
    model = verify_bit_model(path)
    return ExportResult(path, model, memory_report(network, path, model.manifest), warnings)


def verify_bit_model(path: str | os.PathLike) -> BitModel:
    """Load a folder (every sha256 checked) and cross-check what the hashes cannot vouch for.

    The manifest's widths and memory geometry must match :mod:`bs4nn.export.layout` and every
    ``.hex`` image must hold the ``.bin`` signs: a folder edited by hand (then re-hashed) or
    written by another tool fails here with one clear line.
    """
    model = load_bit_model(path)
    try:
        check_declared_geometry(model)
    except (KeyError, TypeError, ValueError, AttributeError, OSError, InvalidOperation) as error:
        raise Bs4nnError(f"{model.path / MANIFEST}: malformed manifest ({error!r})") from error
    return model


def check_declared_geometry(model: BitModel) -> None:
    """The widths and memory images a manifest declares against those its network needs."""
    manifest, network, path = model.manifest, model.network, model.path
    lanes = manifest.get("lanes")
    if "time_bits" in manifest and manifest["time_bits"] < time_bits(network.tmax):
        raise Bs4nnError(f"{path}: time_bits {manifest['time_bits']} cannot hold tmax {network.tmax}")
    for index, (entry, layer) in enumerate(zip(manifest["layers"], network.layers, strict=True)):
        if model.model != "bs4nn":  # B1: the potential widths are checked by its network type
            signs = (layer.weights > 0).astype(np.uint8) if layer.weight_bits == 1 else None
        else:
            signs = layer.signs
            check_counter_bits(path, index, entry, layer)
        memory = entry.get("memory")
        if memory is None or lanes is None or signs is None:
            continue
        layout = MemoryLayout(layer.fan_in, layer.fan_out, lanes)
        expected = {key: value for key, value in memory_geometry(layout, index).items() if key != "files"}
        declared = {key: memory.get(key) for key in expected}
        if declared != expected:
            raise Bs4nnError(f"{path}: layer {index} memory geometry {declared} does not match the layout {expected}")
        hex_name = memory.get("files", {}).get("hex")
        if hex_name and hex_name not in manifest["files"]:
            raise Bs4nnError(f"{path}: layer {index} memory image {hex_name!r} has no sha256 in the manifest")
        if hex_name:
            try:
                words = read_hex_image((model.path / hex_name).read_bytes(), layout)
            except Bs4nnError as error:
                raise Bs4nnError(f"{path / hex_name}: {error}") from error
            if not np.array_equal(signs_from_words(words, layer.fan_out, layer.fan_in, lanes), signs):
                raise Bs4nnError(f"{path}: {hex_name} does not hold the signs of {entry['weights']}")


def check_counter_bits(path: Path, index: int, entry: Mapping[str, Any], layer: Any) -> None:
    """A BS4NN layer's threshold count against ``ceil(theta / alpha_q)`` and its declared counter
    width against the one its fan-in and threshold need."""
    if "alpha_q" in entry and "theta" in entry:  # the count the exporter derived from them
        derived = threshold_count(entry["theta"], Decimal(entry["alpha_q"]))
        if derived != layer.threshold_count:
            raise Bs4nnError(
                f"{path}: layer {index} threshold count {layer.threshold_count} is not "
                f"ceil(theta / alpha_q) = {derived}"
            )
    needed = counter_bits(layer.fan_in, layer.threshold_count)
    if entry.get("counter_bits", needed) < needed:
        raise Bs4nnError(
            f"{path}: layer {index} declares {entry['counter_bits']}-bit counters but needs {needed} "
            f"(fan-in {layer.fan_in}, threshold count {layer.threshold_count}): they would overflow"
        )


@dataclass
class CheckResult:
    """``--check``: the float model alpha_q*B against the integer model on the test set."""

    dataset: str
    images: int
    float_accuracy: float
    integer_accuracy: float
    differing_images: int  # images where any layer's spike times (or the decision) differ
    seconds: float


def float_weights(network: IntegerNetwork, alphas_q: Sequence[float]) -> list[np.ndarray]:
    """``alpha_q * B`` per layer, float64 (B = +1/-1 from the sign bits)."""
    pairs = zip(network.layers, alphas_q, strict=True)
    return [float(alpha) * layer.weights().astype(np.float64) for layer, alpha in pairs]


def check_model(
    source: ModelSource,
    data_dir: str | os.PathLike | None = None,
    images: int | None = None,
    progress: bool = False,
    workers: int = 2,
) -> CheckResult:
    """Run the float model (alpha_q*B, theta) and the integer model; count images that differ."""
    network = build_network(source)
    input_times, labels, dataset = test_inputs(network, source.dataset, data_dir, images)
    start = time.perf_counter()
    golden = run_golden(network, input_times, progress=progress, workers=workers)
    weights = float_weights(network, [float(quantize_alpha(alpha)) for alpha in source.alphas])
    thetas = [float(theta) for theta in source.thetas]
    real = run_network(
        input_times, weights, thetas, network.tmax, progress=progress, workers=workers, desc="float model"
    )
    differs = real.decision != golden.decision
    for float_times, integer_times in zip(real.spike_times, golden.spike_times, strict=True):
        differs |= (float_times != integer_times).any(axis=1)
    float_decision = real.decision
    n = len(labels)
    return CheckResult(
        dataset=dataset,
        images=n,
        float_accuracy=float((float_decision == labels).mean()) if n else 0.0,
        integer_accuracy=golden.accuracy(labels) if n else 0.0,
        differing_images=int(differs.sum()),
        seconds=time.perf_counter() - start,
    )

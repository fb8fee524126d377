"""Training runs of B1 networks: the epoch loop (checkpoint per epoch, resume, validation
selection, test scoring by the golden model).

DECISION (temporary): a minimal driver of its own beside the shared loop of ``train/trainer.py``
(issue 24), whose rule interface does not yet carry what B1 learns (per-layer biases and
log-scales stepped by the optimiser) nor score by the B1 golden model; train/B1.md lists the five
changes after which ``b1_model.forward``/``backward`` become a rule in ``train/rules/`` and this
loop goes.  It reuses the split trainer's pieces: data split and options (``train/run.py``),
batches and shifts (``train/epochs.py``), Adam, the checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bs4nn.errors import Bs4nnError
from bs4nn.fileio import atomic_write_text
from bs4nn.sim.b1 import run_b1
from bs4nn.sim.semantics import encode_images, to_numpy
from bs4nn.train.b1_model import B1Shape, Parameters, b1_network, backward, forward, initial_parameters
from bs4nn.train.b1_presets import B1Preset
from bs4nn.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from bs4nn.train.epochs import epoch_batches, epoch_moves, keep_masks, move_images
from bs4nn.train.network import get_xp
from bs4nn.train.optimizers import Adam
from bs4nn.train.run import RunOptions, split_data

WEIGHT_CLIP = 1.0
"""1-bit proxies are kept in [-1, 1] (BinaryConnect), so every sign stays a few updates from flipping."""


def learning_rate(preset: B1Preset, epoch: int, batch: int, n_batches: int) -> float:
    """Cosine decay from ``eta`` to 0 over the preset's epochs; a function of the position only."""
    progress = min(1.0, (epoch - 1 + batch / n_batches) / preset.epochs)
    return preset.eta * 0.5 * (1 + math.cos(math.pi * progress))


def evaluate_b1(params_np: dict[str, Any], shape: B1Shape, imax: int, images: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy and spikes per neuron of the deployed integer network (the golden model)."""
    network = b1_network(params_np["weights"], params_np["scales"], params_np["biases"], shape, imax)
    result = run_b1(network, encode_images(images, shape.tmax, imax))
    return {
        "images": len(labels),
        "accuracy": result.accuracy(labels),
        "spikes_per_neuron": result.spikes_per_neuron()[1:],
        "decision_latency": network.latency,
        "scored_by": "golden model (integer B1 network)",
    }


def _numpy_params(params: Parameters) -> dict[str, Any]:
    return {
        "weights": [to_numpy(w).astype(np.float32) for w in params.weights],
        "scales": params.scales(),
        "biases": [to_numpy(b).astype(np.float32) for b in params.biases],
        "log_scales": [to_numpy(s) for s in params.log_scales],
    }


def _checkpoint(
    preset: B1Preset, options: RunOptions, params: Parameters, epoch: int, history: list, state: dict
) -> Checkpoint:
    arrays = _numpy_params(params)
    state = {**state, **{f"log_scale_{i}": s for i, s in enumerate(arrays["log_scales"])}}
    return Checkpoint(
        sizes=list(preset.sizes),
        weights=arrays["weights"],
        alphas=arrays["scales"],
        thetas=[float(w) for w in preset.windows] + [0.0],
        tmax=preset.tmax,
        imax=preset.imax,
        dataset=preset.dataset,
        seed=options.seed,
        epoch=epoch,
        hyperparameters={"run": _signature(preset, options), "preset": preset.name},
        metrics=history,
        state=state,
        model="b1",
        biases=arrays["biases"],
        weight_bits=preset.weight_bits,
    )


def _signature(preset: B1Preset, options: RunOptions) -> dict[str, Any]:
    settings = preset.as_dict()
    settings.pop("epochs")  # a resumed run may be extended (the cosine schedule then follows the new count)
    if not settings["hidden_dropout"]:  # absent at its default: runs made before it still resume
        settings.pop("hidden_dropout")
    return json.loads(
        json.dumps({"preset": settings, "seed": options.seed, "model": "b1"})
    )  # as the checkpoint holds it


def _resume(preset: B1Preset, options: RunOptions, log: Callable[[str], None]):
    path = Path(options.out_dir) / "checkpoint.npz"
    checkpoint = load_checkpoint(path)
    if checkpoint.model != "b1" or checkpoint.hyperparameters.get("run") != _signature(preset, options):
        raise Bs4nnError(f"{path}: was made with other settings; use another --out or drop --resume")
    n = len(checkpoint.weights)
    params = Parameters(
        [np.asarray(w, dtype=np.float32) for w in checkpoint.weights],
        [np.asarray(checkpoint.state[f"log_scale_{i}"], dtype=np.float32) for i in range(n)],
        [np.asarray(b, dtype=np.float32) for b in checkpoint.biases],
    )
    log(f"resuming {path} after epoch {checkpoint.epoch}")
    return params, checkpoint.state, list(checkpoint.metrics)


def train_b1(preset: B1Preset, options: RunOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``preset``; checkpoint every epoch; keep the best validation epoch; score it on test."""
    xp = get_xp(options.device)
    shape = preset.shape
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = split_data(preset, options.data_dir)
    train_images, train_labels = data["train"]
    val_images, val_labels = data["validation"]
    train_times = xp.asarray(encode_images(train_images, preset.tmax, preset.imax).astype(np.int16))
    labels_xp = xp.asarray(train_labels.astype(np.int64))
    params, state, history = initial_parameters(shape, options.seed), {}, []
    if options.resume:
        params, state, history = _resume(preset, options, log)
    params = Parameters.from_arrays([xp.asarray(a) for a in params.arrays()])
    optimizer = Adam(params.arrays(), xp)
    if options.resume:
        optimizer.load_state(state, "optimizer")
    best = max((row["validation_accuracy"] for row in history), default=-1.0)
    with threadpool_limits(limits=1, user_api="blas"):  # a run takes one core: results never depend on the count
        history = _epochs(
            preset, options, (train_times, labels_xp, val_images, val_labels), params, optimizer, history, best, log
        )
    return finish_b1(preset, options, history, log)


def _epochs(preset, options, data, params, optimizer, history, best, log) -> list[dict[str, Any]]:
    """Epochs ``len(history) + 1 .. preset.epochs``: train, validate, checkpoint."""
    from tqdm import tqdm

    xp = optimizer.xp
    shape, out_dir = preset.shape, Path(options.out_dir)
    train_times, labels_xp, val_images, val_labels = data
    n_train = train_times.shape[0]
    for epoch in range(len(history) + 1, preset.epochs + 1):
        batches = epoch_batches(options.seed, epoch, np.zeros(n_train), preset.batch_size)
        moves = (
            xp.asarray(epoch_moves(options.seed, epoch, n_train, preset.shift_pixels)) if preset.shift_pixels else None
        )
        totals = {"loss": 0.0, "penalty": 0.0, "correct": 0, "spikes": np.zeros(len(preset.windows))}
        started = time.perf_counter()
        bar = tqdm(batches, desc=f"epoch {epoch}/{preset.epochs}", unit="batch", disable=not options.progress)
        for index, batch in enumerate(bar):
            rows = xp.asarray(batch)
            times = train_times[rows].astype(xp.int32)
            if moves is not None:
                times = move_images(times, moves[rows], preset.tmax, xp)
            masks = None
            if preset.hidden_dropout:
                drawn = keep_masks(options.seed, epoch, index, len(batch), preset.sizes[1:-1], preset.hidden_dropout)
                masks = [xp.asarray(mask) for mask in drawn]
            run = forward(params, times, shape, xp, masks)
            grads = backward(params, run, labels_xp[rows], shape, preset.activity_penalty, xp)
            arrays = optimizer.step(params.arrays(), grads.arrays, learning_rate(preset, epoch, index, len(batches)))
            params = Parameters.from_arrays([a.astype(xp.float32) for a in arrays])
            if preset.weight_bits == 1:
                for weight in params.weights:
                    xp.clip(weight, -WEIGHT_CLIP, WEIGHT_CLIP, out=weight)
            totals["loss"] += grads.loss
            totals["penalty"] += grads.penalty
            totals["correct"] += grads.correct
            totals["spikes"] += grads.hidden_spikes
            seen = (index + 1) * preset.batch_size
            bar.set_postfix(loss=f"{totals['loss'] / seen:.4f}", acc=f"{100 * totals['correct'] / seen:.2f}")
        bar.close()
        seconds = time.perf_counter() - started
        validation = evaluate_b1(_numpy_params(params), shape, preset.imax, val_images, val_labels)
        history.append(
            {
                "epoch": epoch,
                "loss": totals["loss"] / n_train,
                "penalty": totals["penalty"] / n_train,
                "train_accuracy": totals["correct"] / n_train,
                "train_spikes_per_neuron": list(totals["spikes"] / n_train),
                "validation_accuracy": validation["accuracy"],
                "validation_spikes_per_neuron": validation["spikes_per_neuron"],
                "train_seconds": seconds,
            }
        )
        checkpoint = _checkpoint(preset, options, params, epoch, history, optimizer.state_arrays("optimizer"))
        if validation["accuracy"] > best:  # best.npz first: a kill between the writes re-runs this epoch
            best = validation["accuracy"]
            save_checkpoint(out_dir / "best.npz", replace(checkpoint, state={}))
        save_checkpoint(out_dir / "checkpoint.npz", checkpoint)
        atomic_write_text(out_dir / "metrics.json", json.dumps(history, indent=1) + "\n")
        log(
            f"epoch {epoch}: loss {history[-1]['loss']:.4f}, train {100 * history[-1]['train_accuracy']:.2f} %, "
            f"validation {100 * validation['accuracy']:.2f} % at "
            f"{', '.join(f'{s:.3f}' for s in validation['spikes_per_neuron'])} spikes per hidden neuron, "
            f"{seconds:.1f} s"
        )
    return history


def finish_b1(preset: B1Preset, options: RunOptions, history: list, log: Callable[[str], None]) -> dict[str, Any]:
    """Score ``best.npz`` (chosen on validation) on the test split; write ``summary.json``."""
    from bs4nn.train.datasets import load_split

    out_dir = Path(options.out_dir)
    best = load_checkpoint(out_dir / "best.npz")
    summary: dict[str, Any] = {
        "preset": preset.name,
        "model": "b1",
        "seed": options.seed,
        "best_epoch": best.epoch,
        "validation_accuracy": best.metrics[-1]["validation_accuracy"],
        "total_train_seconds": sum(row["train_seconds"] for row in history),
        "epochs": len(history),
    }
    if options.test:
        images, labels = load_split(preset.dataset, "test", options.data_dir)
        arrays = {"weights": best.weights, "scales": best.alphas, "biases": best.biases}
        summary["test"] = evaluate_b1(arrays, preset.shape, preset.imax, images, labels)
        log(
            f"best epoch {best.epoch}: validation {100 * summary['validation_accuracy']:.2f} %, test "
            f"{100 * summary['test']['accuracy']:.2f} % ({summary['test']['scored_by']}), spikes per hidden neuron "
            f"{', '.join(f'{s:.3f}' for s in summary['test']['spikes_per_neuron'])}"
        )
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary

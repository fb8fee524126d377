"""The training loop (nanoGPT's ``train.py``): epochs of mini-batches, updates, checkpoints, resume.

What the loop owns, whatever the rule: batches and augmentation (``train/epochs.py``), hidden
dropout masks, splitting a batch over two threads, the optimiser step (``train/optimizers.py``),
weight clips and the alphas' update, NaN/inf checks, progress bars, validation after every epoch
by the golden model (``train/metrics.py``), ``best.npz`` / ``checkpoint.npz`` every epoch,
``--resume`` (bitwise), the readout epochs, and the end of the run (``train/finish.py``).  What
it does not own: the gradients -- the preset's training rule computes them (``train/rules/``),
on the forward pass of ``train/network.py``.

Epochs ``1..preset.epochs`` train every layer with the preset's rule; the ``readout_epochs``
after them (if any) train the output layer alone with the snapshot hinge and Adam, from the
output count chosen on validation at the switch (``finish.choose_readout_count``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from bs4nn.errors import Bs4nnError
from bs4nn.sim.semantics import Array, encode_images, to_numpy
from bs4nn.train.averaging import ParameterAverage
from bs4nn.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from bs4nn.train.epochs import (
    batch_learning_rate,
    epoch_batches,
    epoch_moves,
    keep_masks,
    learning_rates,
    move_images,
)
from bs4nn.train.experiments.relu import ReluLayer, load_relu_layers, scaled_inputs, teacher_names
from bs4nn.train.experiments.relu import forward as relu_forward
from bs4nn.train.finish import choose_readout_count, finish_run
from bs4nn.train.metrics import plot_metrics, write_metrics
from bs4nn.train.network import (
    WEIGHT_DTYPE,
    LabelledImages,
    ProxyNetwork,
    check_not_silent,
    forward,
    get_xp,
    last_hidden_times,
)
from bs4nn.train.optimizers import Adam, make_optimizer
from bs4nn.train.presets import Preset
from bs4nn.train.rules import RULES, Batch, BatchResult, Parameters, TrainingRule, batch_gradients, rule_options
from bs4nn.train.run import RunOptions, effective_weight_clip, run_signature, split_data, trained_model_path

MIN_ALPHA = 0.01
"""Alphas are clamped here: the exporter rounds them to two decimals and needs them positive."""

READOUT_RULE = "snapshot"
"""The rule of the readout epochs (the output layer alone, on the frozen hidden spike times)."""


# --------------------------------------------------------------------------------------------
# one batch
# --------------------------------------------------------------------------------------------


def parallel_batch_gradients(
    pool: ThreadPoolExecutor | None,
    rule: TrainingRule,
    batch: Batch,
    params: Parameters,
    options: Any,
    xp: ModuleType = np,
) -> BatchResult:
    """:func:`rules.batch_gradients` on the two halves of a batch in two threads (NumPy releases the GIL).

    Samples are independent until the update, so the sums equal the whole batch's up to float
    summation order (fixed: the split is deterministic).  BLAS is held to one thread meanwhile:
    the two halves already use both cores, and OpenBLAS's own threads on top made the snapshot
    backward's matrix products contend (fashion, batch 32, two halves: 371 images/s without the
    limit, 656 with it; tests/benchmarks/bench_train.py).  The one-thread path (``pool=None``,
    ``--threads 1``) is held to one BLAS thread too, so that no run depends on the machine's core
    count: with two hidden layers the snapshot backward's gradients change with OpenBLAS's thread
    count (fashion-2x600, 10 batches of 16: 1.4 million entries differ between 1 and 2 threads).
    """

    def gradients(rows: slice) -> BatchResult:
        return batch_gradients(rule, batch.rows(rows), params, options, xp)

    with threadpool_limits(limits=1, user_api="blas"):
        if pool is None or batch.size < 2:
            return gradients(slice(None))
        half = batch.size // 2
        first, second = pool.map(gradients, (slice(0, half), slice(half, None)))
    return first.plus(second)


def initial_weights(preset: Preset, seed: int) -> list[np.ndarray]:
    """The preset's initial proxy weights, a function of the seed alone (its rule family draws them)."""
    return preset.rule.initial_parameters(preset, seed)[0]


def clip_proxy_weights(weights: Sequence[Array], clips: Sequence[float | None] | None, xp: ModuleType = np) -> None:
    """Keep each layer's proxy weights in ``[-c, c]``, in place (BinaryConnect's clip).

    Only ``sign(W)`` reaches the forward pass, so a proxy weight that has drifted far from 0 can
    no longer flip; the bound keeps every weight a bounded number of updates from a sign change.
    """
    if clips is None:
        return
    for weight, clip in zip(weights, clips, strict=True):
        if clip is not None:
            xp.clip(weight, -clip, clip, out=weight)


def check_finite(arrays: Sequence[Array], alphas: Sequence[float], where: str, xp: ModuleType) -> None:
    """Stop the run, with one error line, at the first NaN/inf in weights, gradients or alphas."""
    for index, array in enumerate(arrays):
        if not bool(xp.isfinite(array).all()):
            raise Bs4nnError(f"{where}: layer {index} gradients or weights hold NaN/inf; training stopped")
    for index, alpha in enumerate(alphas):
        if not math.isfinite(alpha):
            raise Bs4nnError(f"{where}: alpha of layer {index} is {alpha}; training stopped")


# --------------------------------------------------------------------------------------------
# the run's state, data and optimisers
# --------------------------------------------------------------------------------------------


@dataclass
class RunState:
    """What the loop carries from epoch to epoch; every checkpoint holds all of it (``--resume``)."""

    weights: list[Array]  # proxy weights on the device (float32)
    alphas: list[float]
    thetas: list[float]
    extras: dict[str, Array]  # the rule's extra parameters (``TrainingRule.extra_parameters``), (1,) float32 each
    biases: list[Array]  # per layer (n_out,) float32 (``TrainingRule.layer_biases``); else empty
    log_scales: list[Array]  # per layer (1,) float32, alpha = exp(s) (``TrainingRule.scales_by_optimiser``); else empty
    phase: str  # "train", then "readout" in the readout epochs
    history: list[dict[str, Any]]  # one metrics row per epoch so far
    next_epoch: int
    saved: dict[str, np.ndarray]  # the checkpoint's state arrays on resume (optimiser moments)


@dataclass
class TrainingData:
    """The training split on the device, and the validation split (scored on the host)."""

    times: Array  # (n, n_in) int16 input spike times
    labels: Array  # (n,) int64
    spike_counts: np.ndarray  # (n,) input spikes per image (``bucket_batches``)
    validation: LabelledImages


def load_training_data(preset: Preset, options: RunOptions, xp: ModuleType) -> TrainingData:
    data = split_data(preset, options.data_dir)
    train_images, train_labels = data["train"]
    encoded = encode_images(train_images, preset.tmax, preset.imax)
    return TrainingData(
        times=xp.asarray(encoded.astype(np.int16)),
        labels=xp.asarray(train_labels.astype(np.int64)),
        spike_counts=(encoded < preset.tmax).sum(axis=1),
        validation=LabelledImages(*data["validation"]),
    )


def start_state(preset: Preset, options: RunOptions, signature: dict, log: Callable[[str], None]) -> RunState:
    """A fresh run's state (the preset's initial weights), or the one ``--resume`` reads back."""
    rule = preset.rule
    extras = {name: np.array([getattr(preset, name)], dtype=WEIGHT_DTYPE) for name in rule.extra_parameters}
    if not options.resume and preset.init_from:
        return state_from_checkpoint(preset, options, extras, log)
    if not options.resume:
        weights, alphas, thetas = rule.initial_parameters(preset, options.seed)
        biases = [np.zeros(n, dtype=WEIGHT_DTYPE) for n in preset.sizes[1:]] if rule.layer_biases else []
        return RunState(weights, alphas, thetas, extras, biases, log_scales(alphas, rule), "train", [], 1, {})
    latest = Path(options.out_dir) / "checkpoint.npz"
    checkpoint = load_checkpoint(latest)
    if checkpoint.hyperparameters.get("run") != signature:
        raise Bs4nnError(f"{latest}: was made with other settings; use another --out or drop --resume")
    phase = checkpoint.hyperparameters.get("phase", "train")
    if phase == "readout" and checkpoint.hyperparameters.get("train_epochs") != preset.epochs:
        raise Bs4nnError(
            f"{latest}: its readout epochs followed {checkpoint.hyperparameters.get('train_epochs')} training "
            f"epochs; --epochs {preset.epochs} would train every layer again after them"
        )
    saved = checkpoint.state
    extras = {name: np.asarray(saved.get(name, value), dtype=WEIGHT_DTYPE) for name, value in extras.items()}
    log(f"resuming {latest} after epoch {checkpoint.epoch}")
    n_scales = len(checkpoint.weights) if rule.scales_by_optimiser else 0
    if any(f"log_scale_{i}" not in saved for i in range(n_scales)):
        raise Bs4nnError(f"{latest}: lacks the log-scales of its layers; it cannot be resumed exactly")
    scales = [np.asarray(saved[f"log_scale_{i}"], dtype=WEIGHT_DTYPE) for i in range(n_scales)]
    return RunState(
        weights=[np.asarray(w, dtype=WEIGHT_DTYPE) for w in checkpoint.weights],
        alphas=[float(a) for a in checkpoint.alphas],
        thetas=[float(t) for t in checkpoint.thetas],
        extras=extras,
        biases=[np.asarray(b, dtype=WEIGHT_DTYPE) for b in checkpoint.biases] if rule.layer_biases else [],
        log_scales=scales,
        phase=phase,
        history=list(checkpoint.metrics),
        next_epoch=checkpoint.epoch + 1,
        saved=saved,
    )


def state_from_checkpoint(
    preset: Preset, options: RunOptions, extras: dict[str, np.ndarray], log: Callable[[str], None]
) -> RunState:
    """A fresh run that starts from another run's parameters (``--init-from``): to fine-tune a trained
    model for a new objective (say, early decisions) instead of training it again from a random draw.

    Taken from the checkpoint: the proxy weights, the alphas (learned by some rules), the biases and
    the rule's extra parameters it holds.  The thresholds stay the preset's (a calibrated checkpoint's
    are chosen after training, for its objective); the optimiser, the epochs and the history start anew."""
    rule = preset.rule
    path = trained_model_path(preset.init_from, "init_from")
    checkpoint = load_checkpoint(path)
    if checkpoint.model != rule.model or list(checkpoint.sizes) != list(preset.sizes):
        raise Bs4nnError(
            f"{path}: a {checkpoint.model} {'-'.join(map(str, checkpoint.sizes))} network; "
            f"preset {preset.name} trains a {rule.model} {'-'.join(map(str, preset.sizes))} one"
        )
    if checkpoint.binary != options.binary or checkpoint.weight_bits != preset.weight_bits:
        raise Bs4nnError(f"{path}: its weights are of another kind (binary, weight bits) than this run's")
    alphas = [float(a) for a in checkpoint.alphas]
    for name in extras:
        if name in checkpoint.state:
            extras[name] = np.asarray(checkpoint.state[name], dtype=WEIGHT_DTYPE).reshape(1)
    biases = [np.asarray(b, dtype=WEIGHT_DTYPE) for b in checkpoint.biases] if rule.layer_biases else []
    log(f"starting from the parameters of {path} (epoch {checkpoint.epoch})")
    weights = [np.asarray(w, dtype=WEIGHT_DTYPE) for w in checkpoint.weights]
    return RunState(weights, alphas, list(preset.thetas), extras, biases, log_scales(alphas, rule), "train", [], 1, {})


def log_scales(alphas: Sequence[float], rule: TrainingRule) -> list[np.ndarray]:
    """The optimiser's log-scales ``s = log(alpha)`` of a rule with ``scales_by_optimiser``; else none."""
    if not rule.scales_by_optimiser:
        return []
    return [np.array([math.log(alpha)], dtype=WEIGHT_DTYPE) for alpha in alphas]


# --------------------------------------------------------------------------------------------
# one epoch
# --------------------------------------------------------------------------------------------


@dataclass
class Epoch:
    """How one epoch trains: which rule, which layers, at what rates, on which inputs."""

    number: int
    phase: str
    rule: TrainingRule
    rule_options: Any
    trained: slice  # the layers this epoch trains
    eta: float
    mu: float
    inputs: Array  # the training split's spike times entering the trained layers
    moves: Array | None  # augmentation, per training image (train phase only)


def step(run: Run, epoch: Epoch, result: BatchResult, batch_size: int, eta: float) -> None:
    """Apply one batch's gradients: the optimiser step, the clips, the alphas."""
    state, preset, xp = run.state, run.preset, run.xp
    trained = state.weights[epoch.trained]
    decay = preset.weight_decay * (1 if epoch.rule.mean_gradients else result.trained)
    grads = [grad + decay * weight for grad, weight in zip(result.weight_grads, trained, strict=True)]
    if epoch.phase == "readout":
        state.weights[epoch.trained] = run.readout_optimizer.step(trained, grads, epoch.eta)
    else:  # the preset's optimiser steps weights, log-scales, biases and extra parameters together
        names = list(state.extras)
        extra_grads = [xp.asarray([result.extra_grads[name]], dtype=WEIGHT_DTYPE) for name in names]
        scale_grads = [xp.asarray([g], dtype=WEIGHT_DTYPE) for g in result.alpha_grads] if state.log_scales else []
        params = [*state.weights, *state.log_scales, *state.biases, *(state.extras[name] for name in names)]
        updated = run.optimizer.step(params, [*grads, *scale_grads, *result.bias_grads, *extra_grads], eta)
        updated = [value.astype(WEIGHT_DTYPE) for value in updated]
        n_weights, n_scales, n_biases = len(state.weights), len(state.log_scales), len(state.biases)
        state.weights[:] = updated[:n_weights]
        state.log_scales[:] = updated[n_weights : n_weights + n_scales]
        state.biases[:] = updated[n_weights + n_scales : n_weights + n_scales + n_biases]
        for name, value in zip(names, updated[n_weights + n_scales + n_biases :], strict=True):
            state.extras[name] = value
    state.weights[:] = [weight.astype(WEIGHT_DTYPE, copy=False) for weight in state.weights]
    clip_proxy_weights(state.weights, run.clips, xp)
    if state.log_scales:
        state.alphas = [math.exp(float(s[0])) for s in state.log_scales]
    elif run.options.binary and epoch.phase == "train":
        state.alphas = [
            max(MIN_ALPHA, a - epoch.mu * g / batch_size) for a, g in zip(state.alphas, result.alpha_grads, strict=True)
        ]
    if run.average is not None and epoch.phase == "train":
        run.average.update(state, xp)


def run_epoch(run: Run, epoch: Epoch) -> tuple[dict[str, float], float]:
    """Every mini-batch of one epoch: gradients, update, running figures; returns the totals and seconds."""
    state, preset, options, xp = run.state, run.preset, run.options, run.xp
    batches = epoch_batches(
        options.seed,
        epoch.number,
        run.data.spike_counts,
        preset.batch_size,
        preset.bucket_batches,
        preset.sample_with_replacement,
    )
    dropout = bool(preset.hidden_dropout) and epoch.phase == "train"  # the preset allows it only where the rule has it
    totals = {"loss": 0.0, "correct": 0, "time": 0.0, "trained": 0, "silent": 0, "seen": 0, "events": 0}
    figures: dict[str, Any] = {}
    pool = None if epoch.rule.mean_gradients else run.pool  # halves of a mean are not its sums
    started = time.perf_counter()
    bar = tqdm(
        batches,
        desc=f"epoch {epoch.number}/{run.total_epochs}" + (" (readout)" if epoch.phase == "readout" else ""),
        unit="batch",
        disable=not options.progress,
        leave=True,
    )
    for batch_index, rows_np in enumerate(bar):
        rows = xp.asarray(rows_np)
        in_times = epoch.inputs[rows].astype(xp.int32)
        if epoch.moves is not None:
            in_times = move_images(in_times, epoch.moves[rows], preset.tmax, xp)
        masks = None
        if dropout:
            drawn = keep_masks(
                options.seed, epoch.number, batch_index, len(rows_np), preset.sizes[1:-1], preset.hidden_dropout
            )
            masks = [xp.asarray(mask) for mask in drawn]
        params = Parameters(
            state.weights[epoch.trained],
            state.alphas[epoch.trained],
            state.thetas[epoch.trained],
            binary=options.binary,
            extras={name: float(value[0]) for name, value in state.extras.items()},
            biases=state.biases[epoch.trained],
        )
        teacher_logits = None
        if run.teachers and epoch.phase == "train":
            teacher_logits = teacher_ensemble_logits(run.teachers, scaled_inputs(in_times, preset.tmax, xp), xp)
        batch = Batch(in_times, run.data.labels[rows], masks, teacher_logits)
        result = parallel_batch_gradients(pool, epoch.rule, batch, params, epoch.rule_options, xp)
        where = f"epoch {epoch.number}, batch {batch_index}"
        check_finite([*result.weight_grads, *result.bias_grads], result.alpha_grads, where, xp)
        eta = batch_learning_rate(preset, epoch.number, epoch.eta, batch_index, len(batches))
        step(run, epoch, result, len(rows_np), eta)
        check_finite(state.weights, state.alphas, where, xp)
        totals["loss"] += result.loss
        totals["correct"] += result.correct
        totals["time"] += result.output_time_sum
        totals["trained"] += result.trained
        totals["silent"] += result.silent
        totals["seen"] += in_times.shape[0]
        totals["events"] += int((in_times < preset.tmax).sum()) * result.weight_grads[0].shape[0]
        figures = {name: figures.get(name, 0) + value for name, value in result.figures.items()}
        seen = totals["seen"]
        postfix = {"loss": f"{totals['loss'] / seen:.4f}", "acc": f"{100 * totals['correct'] / seen:.2f}"}
        if not math.isnan(totals["time"]):
            postfix["t_out"] = f"{totals['time'] / seen:.1f}"
        bar.set_postfix(postfix)
    bar.close()
    return {**totals, "figures": figures}, time.perf_counter() - started


def epoch_row(run: Run, epoch: Epoch, totals: dict[str, float], seconds: float, validation: dict) -> dict[str, Any]:
    """The epoch's line of ``metrics.csv`` / ``metrics.json``."""
    state, n_train = run.state, run.data.times.shape[0]
    row = {
        "epoch": epoch.number,
        "phase": epoch.phase,
        "eta": epoch.eta,
        "mu": epoch.mu,
        "loss": totals["loss"] / n_train,
        "train_accuracy": totals["correct"] / n_train,
        "train_mean_output_time": None if math.isnan(totals["time"]) else totals["time"] / n_train,
        "silent_samples": totals["silent"],
        "validation_accuracy": validation["accuracy"],
        **epoch.rule.validation_row(validation),
        "alphas": list(state.alphas),
        "threshold_counts": validation.get("threshold_counts") if run.options.binary else None,
        "train_seconds": seconds,
        "synaptic_events_per_second": totals["events"] / seconds,
    }
    for name, value in totals["figures"].items():  # the rule's own sums (B1: penalty, hidden spikes)
        row[f"train_{name}"] = (value / n_train).tolist()
    for name, value in state.extras.items():
        row[name] = float(value[0])
    return row


def epoch_checkpoint(run: Run, epoch: Epoch, weights: list[np.ndarray]) -> Checkpoint:
    """Everything the run holds after ``epoch`` (its metrics list grows with the epoch's row)."""
    state, preset, options = run.state, run.preset, run.options
    saved = {"learning_rates": np.array([epoch.eta, epoch.mu])}
    saved.update({name: to_numpy(value) for name, value in state.extras.items()})
    saved.update({f"log_scale_{i}": to_numpy(value) for i, value in enumerate(state.log_scales)})
    if run.average is not None:
        saved.update(run.average.state_arrays())
    if epoch.phase == "train":
        saved.update(run.optimizer.state_arrays("optimizer"))
    else:
        saved.update(run.readout_optimizer.state_arrays("readout_optimizer"))
    return Checkpoint(
        sizes=list(preset.sizes),
        weights=weights,
        alphas=list(state.alphas),
        thetas=list(state.thetas),
        tmax=preset.tmax,
        imax=preset.imax,
        binary=options.binary,
        dataset=preset.dataset,
        seed=options.seed,
        epoch=epoch.number,
        hyperparameters={"run": run.signature, "phase": epoch.phase, "train_epochs": preset.epochs},
        metrics=state.history,
        state=saved,
        model=preset.rule.model,
        biases=[to_numpy(b).astype(WEIGHT_DTYPE) for b in state.biases],
        weight_bits=preset.weight_bits,
    )


def save_epoch(run: Run, checkpoint: Checkpoint, scored: Checkpoint, row: dict[str, Any]) -> None:
    """``best.npz`` (the ``scored`` network, if its validation accuracy is the best so far),
    ``checkpoint.npz`` (the raw parameters, to resume), the metrics."""
    state, preset, options = run.state, run.preset, run.options
    # best.npz first: a kill between the two writes then re-runs this epoch, never loses a best.
    if row["validation_accuracy"] > run.best_accuracy:
        run.best_accuracy = row["validation_accuracy"]
        save_checkpoint(run.out_dir / "best.npz", scored)
    save_checkpoint(run.out_dir / "checkpoint.npz", checkpoint)
    write_metrics(run.out_dir, state.history, preset.rule.metric_fields)
    if options.plot:
        plot_metrics(run.out_dir, state.history, preset.rule.loss_title)


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """Everything one training run holds while its epochs go by."""

    preset: Preset
    options: RunOptions
    xp: ModuleType
    out_dir: Path
    signature: dict[str, Any]
    data: TrainingData
    state: RunState
    clips: tuple[float | None, ...] | None
    optimizer: Any  # the preset's, over the weights and the rule's extra parameters
    readout_optimizer: Adam  # the readout epochs', over the output layer
    pool: ThreadPoolExecutor | None
    best_accuracy: float
    log: Callable[[str], None]
    readout_inputs: Array | None = None  # the last hidden layer's spike times, in the readout epochs
    teachers: list[list[ReluLayer]] | None = None  # the preset's distillation teachers, float ReLU MLPs
    average: ParameterAverage | None = None  # the parameters' moving average (preset.weight_average)

    @property
    def total_epochs(self) -> int:
        return self.preset.epochs + self.preset.readout_epochs


def start_run(preset: Preset, options: RunOptions, log: Callable[[str], None]) -> Run:
    """Load the data, start or resume the state, make the optimisers; refuse a silent network."""
    xp = get_xp(options.device)
    teachers = load_teachers(preset, xp)  # before the output folder: a bad teacher leaves nothing behind
    signature = run_signature(preset, options)  # resolves init_from: a bad name leaves nothing behind either
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_training_data(preset, options, xp)
    state = start_state(preset, options, signature, log)
    state.weights = [xp.asarray(w) for w in state.weights]
    state.extras = {name: xp.asarray(value) for name, value in state.extras.items()}
    state.biases = [xp.asarray(b) for b in state.biases]
    state.log_scales = [xp.asarray(s) for s in state.log_scales]
    clips = effective_weight_clip(preset, options.binary)
    clip_proxy_weights(state.weights, clips, xp)
    learned = [*state.weights, *state.log_scales, *state.biases, *state.extras.values()]
    optimizer = make_optimizer(preset.optimizer, learned, xp)
    readout_optimizer = Adam(state.weights[-1:], xp)
    if options.resume and state.phase == "train":
        optimizer.load_state(state.saved, "optimizer")
    elif options.resume:
        readout_optimizer.load_state(state.saved, "readout_optimizer")
    if preset.rule.probes_silence:
        probe = data.times[: min(256, data.times.shape[0])].astype(xp.int32)
        probe_times, _ = forward(probe, state.weights, state.alphas, state.thetas, preset.tmax, options.binary, xp)
        check_not_silent(probe_times, preset.tmax, "initial network" if state.next_epoch == 1 else "resumed network")
    average = ParameterAverage.start(preset.weight_average, state, xp) if preset.weight_average else None
    return Run(
        average=average,
        teachers=teachers,
        preset=preset,
        options=options,
        xp=xp,
        out_dir=out_dir,
        signature=signature,
        data=data,
        state=state,
        clips=clips,
        optimizer=optimizer,
        readout_optimizer=readout_optimizer,
        pool=ThreadPoolExecutor(max_workers=2) if xp is np and options.threads > 1 else None,
        best_accuracy=max((row["validation_accuracy"] for row in state.history), default=-1.0),
        log=log,
    )


def load_teachers(preset: Preset, xp: ModuleType) -> list[list[ReluLayer]] | None:
    """The preset's teachers (``bs4nn experiment relu``'s weights), each checked to have the
    student's input and output sizes (their hidden layers are their own)."""
    if not preset.teacher:
        return None
    names = teacher_names(preset.teacher)
    teachers = [load_relu_layers(name, xp) for name in names]
    for name, layers in zip(names, teachers, strict=True):
        ends = (layers[0].weights.shape[1], layers[-1].weights.shape[0])
        if ends != (preset.sizes[0], preset.sizes[-1]):
            raise Bs4nnError(
                f"teacher {name}: maps {ends[0]} inputs to {ends[1]} classes, the preset's network "
                f"{preset.sizes[0]} to {preset.sizes[-1]}"
            )
    return teachers


def teacher_ensemble_logits(teachers: list[list[ReluLayer]], inputs: Array, xp: ModuleType) -> Array:
    """The mean of the teachers' logits on one batch (one teacher: its logits, exactly)."""
    logits = relu_forward(teachers[0], inputs, xp)[0]
    for layers in teachers[1:]:
        logits = logits + relu_forward(layers, inputs, xp)[0]
    return logits / len(teachers)


def plan_epoch(run: Run, number: int) -> Epoch:
    """Epoch ``number``'s rule, layers, rates and inputs; at the first readout epoch, the switch."""
    preset, state, xp = run.preset, run.state, run.xp
    eta, mu = learning_rates(preset, number)
    if number <= preset.epochs:
        moves = None
        if preset.shift_pixels or preset.mirror_images:
            n_train = run.data.times.shape[0]
            drawn = epoch_moves(run.options.seed, number, n_train, preset.shift_pixels, preset.mirror_images)
            moves = xp.asarray(drawn)
        return Epoch(number, "train", preset.rule, preset.rule_options(), slice(None), eta, mu, run.data.times, moves)
    if state.phase == "train":
        network = ProxyNetwork(
            [to_numpy(w) for w in state.weights], state.alphas, state.thetas, preset.tmax, preset.imax
        )
        state.thetas = choose_readout_count(network, run.data.validation, run.log)
        state.phase = "readout"
    if run.readout_inputs is None:  # the hidden layers are frozen from here: their spike times, once
        run.readout_inputs = last_hidden_times(
            run.data.times, state.weights, state.alphas, state.thetas, preset.tmax, xp
        )
    rule = RULES[READOUT_RULE]
    return Epoch(
        number,
        "readout",
        rule,
        rule_options(rule, preset),
        slice(-1, None),
        preset.readout_eta,
        0.0,
        run.readout_inputs,
        None,
    )


def train(preset: Preset, options: RunOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``preset``; checkpoint every epoch; return the run summary (also ``summary.json``)."""
    if preset.rule.binary_only and not options.binary:  # before the data are loaded
        raise Bs4nnError(f"--backward {preset.backward} works on the binary counters; it cannot train real weights")
    run = start_run(preset, options, log)
    state = run.state
    for number in range(state.next_epoch, run.total_epochs + 1):
        epoch = plan_epoch(run, number)
        totals, seconds = run_epoch(run, epoch)
        checkpoint = epoch_checkpoint(run, epoch, [to_numpy(w).astype(WEIGHT_DTYPE) for w in state.weights])
        scored = checkpoint if run.average is None else run.average.averaged(checkpoint)
        validation = epoch.rule.evaluate(scored, run.data.validation)
        row = epoch_row(run, epoch, totals, seconds, validation)
        state.history.append(row)
        save_epoch(run, checkpoint, scored, row)
        log(
            f"epoch {number}{' (readout)' if epoch.phase == 'readout' else ''}: loss {row['loss']:.4f}, "
            f"train {100 * row['train_accuracy']:.2f} %, "
            f"validation {100 * row['validation_accuracy']:.2f} % ({validation['scored_by']}; "
            f"{epoch.rule.epoch_note(row)}), "
            f"{seconds:.1f} s, alphas {', '.join(f'{a:.3f}' for a in state.alphas)}"
        )
    if run.pool is not None:
        run.pool.shutdown()
    return finish_run(preset, options, state.history, log)

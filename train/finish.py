"""The end of a run: the readout count, the threshold calibration, the test score, shipping.

Everything here happens after (or between) the training epochs of ``train/trainer.py`` and
reads the run's files (``best.npz``, ``summary.json``); the test split is touched once, here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import quantize_alpha
from bs4nn.fileio import atomic_write_text
from bs4nn.train.calibration import READOUT_COUNT_SCALES, calibrate_for_budget, calibrate_thresholds
from bs4nn.train.checkpoint import PRETRAINED_DIR, Checkpoint, load_checkpoint, run_model_path, save_checkpoint
from bs4nn.train.datasets import load_split
from bs4nn.train.metrics import plot_metrics
from bs4nn.train.network import LabelledImages, ProxyNetwork
from bs4nn.train.presets import Preset
from bs4nn.train.rules.base import Bs4nnFamily
from bs4nn.train.run import RunOptions, split_data, validation_split


def checkpoint_network(checkpoint: Checkpoint) -> ProxyNetwork:
    """The network a checkpoint holds."""
    return ProxyNetwork(
        checkpoint.weights, checkpoint.alphas, checkpoint.thetas, checkpoint.tmax, checkpoint.imax, checkpoint.binary
    )


def choose_readout_count(network: ProxyNetwork, data: LabelledImages, log: Callable[[str], None]) -> list[float]:
    """The thetas with the output layer's count chosen on ``data`` (validation) over a wide range.

    Why: ``snapshot-ce`` never uses the output threshold, so before the readout epochs train
    against it, it is searched at ``READOUT_COUNT_SCALES`` times the preset's count (golden
    model, hardware tie rule; the hidden counts stay as trained).
    """
    output = len(network.weights) - 1
    calibration = calibrate_thresholds(network, data, scales=READOUT_COUNT_SCALES, layers=[output], passes=1)
    log(
        f"output count {calibration.counts[output]} chosen on validation over a wide range (was "
        f"{calibration.trained_counts[output]}): validation {100 * calibration.trained_accuracy:.2f} % -> "
        f"{100 * calibration.accuracy:.2f} %"
    )
    return list(calibration.thetas)


def finish_run(preset: Preset, options: RunOptions, history: list[dict[str, Any]], log: Callable[[str], None]) -> dict:
    """Calibrate ``best.npz``'s thresholds on validation (if the preset says so), score the run's
    model on the test split, write ``summary.json``."""
    out_dir = Path(options.out_dir)
    if options.plot and history:
        log(f"learning curves: {plot_metrics(out_dir, history, preset.rule.loss_title)}")
    summary: dict[str, Any] = {
        "preset": preset.name,
        "model": preset.rule.model,
        "seed": options.seed,
        "binary": options.binary,
    }
    best_path = out_dir / "best.npz"
    if not best_path.is_file():
        return summary
    best = load_checkpoint(best_path)
    summary.update(
        best_epoch=best.epoch,
        validation_accuracy=best.metrics[-1]["validation_accuracy"],
        alphas=best.alphas,
        total_train_seconds=sum(row["train_seconds"] for row in history),
        epochs=len(history),
    )
    model = best
    if options.binary and preset.calibrate_thresholds:
        model = calibrate_run(preset, options, best, summary, log)
    if options.test:
        test_split = LabelledImages(*load_split(preset.dataset, "test", options.data_dir))
        test = preset.rule.evaluate(model, test_split)  # the rule family's golden model
        summary["test"] = test
        log(
            f"best epoch {best.epoch}: validation {100 * summary['validation_accuracy']:.2f} %, "
            f"test {100 * test['accuracy']:.2f} % {preset.rule.test_line(test)}"
        )
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def calibrate_run(
    preset: Preset, options: RunOptions, best: Checkpoint, summary: dict[str, Any], log: Callable[[str], None]
) -> Checkpoint:
    """``best`` with its thresholds chosen on the validation split, saved as ``calibrated.npz``.

    The calibrated model keeps the trained alphas and gets ``theta = (count - 1/2) * alpha`` with
    the alphas rounded to two decimals, as the exporter rounds them (``theta_for_count``): the
    deployed counters are exactly the chosen counts.  The search and its figures go into its
    hyperparameters and into ``summary["calibration"]``.  A model of a rule that never runs the exact
    race (``snapshot-ce``) from before the readout epochs first gets its output count from the wide
    search (:func:`choose_readout_count`).
    """
    validation = LabelledImages(*split_data(preset, options.data_dir)["validation"])
    started = time.perf_counter()
    network = checkpoint_network(best)
    if not preset.rule.figures_from_forward and best.hyperparameters.get("phase") == "train":
        # a rule without the exact race never trained the output threshold: search it widely first, as the
        # readout epochs do
        network = replace(network, thetas=choose_readout_count(network, validation, log))
    budget = preset.decision_step_budget if preset.decision_step_budget < preset.tmax else None
    share = preset.decision_first_spike_share
    calibration = calibrate_for_budget(
        network, validation, preset.decision_step_budget, share, preset.calibration_search
    )
    figures = {key: value for key, value in calibration.as_dict().items() if key != "tried"}
    figures["seconds"] = time.perf_counter() - started
    model = replace(
        best,
        thetas=calibration.thetas,
        hyperparameters={**best.hyperparameters, "calibration": calibration.as_dict()},
    )
    save_checkpoint(Path(options.out_dir) / "calibrated.npz", model)
    summary["calibration"] = figures
    log(
        f"thresholds calibrated on validation: counts {calibration.trained_counts} -> {calibration.counts}, "
        f"validation {100 * calibration.trained_accuracy:.2f} % -> {100 * calibration.accuracy:.2f} % "
        f"at mean decision step {calibration.mean_decision_time:.1f}"
        f"{'' if budget is None else f' (budget {budget})'}, {100 * calibration.first_spike_decisions:.1f} % "
        f"by a first spike{f' (asked: {100 * share:.1f} %)' if share else ''} ({figures['seconds']:.0f} s)"
    )
    return model


def recalibrate_model(
    source: Path,
    out_dir: Path,
    budget: int,
    share: float,
    search: str,
    data_dir: str | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """A trained BS4NN model's thresholds chosen again on validation for a decision budget, without
    training: ``OUT/calibrated.npz`` and ``OUT/summary.json`` (the calibration and the test figures),
    the files of a finished run, so that ``bs4nn-export --to-bits OUT`` and :func:`ship_pretrained`
    read it as one.  The search starts from the model's own counts (``bs4nn calibrate``)."""
    checkpoint = load_checkpoint(source)
    if checkpoint.model != "bs4nn" or not checkpoint.binary:
        raise Bs4nnError(f"{source}: a {checkpoint.model} model; only binary BS4NN thresholds are calibrated")
    started = time.perf_counter()
    validation = LabelledImages(*validation_split(checkpoint.dataset, data_dir))
    calibration = calibrate_for_budget(checkpoint_network(checkpoint), validation, budget, share, search)
    model = replace(
        checkpoint,
        thetas=calibration.thetas,
        state={},
        hyperparameters={**checkpoint.hyperparameters, "calibration": calibration.as_dict(), "source": str(source)},
    )
    figures = {key: value for key, value in calibration.as_dict().items() if key != "tried"}
    figures["seconds"] = time.perf_counter() - started
    log(
        f"counts {calibration.trained_counts} -> {calibration.counts}: validation "
        f"{100 * calibration.trained_accuracy:.2f} % -> {100 * calibration.accuracy:.2f} %, mean decision step "
        f"{calibration.mean_decision_time:.1f}, {100 * calibration.first_spike_decisions:.1f} % by a first spike "
        f"({figures['seconds']:.0f} s)"
    )
    family = Bs4nnFamily()  # the family's golden model and report line, as a run of any of its rules has them
    test = family.evaluate(model, LabelledImages(*load_split(checkpoint.dataset, "test", data_dir)))
    log(f"test {100 * test['accuracy']:.2f} % {family.test_line(test)}")
    summary = {
        "source": str(source),
        "model": "bs4nn",
        "seed": checkpoint.seed,
        "best_epoch": checkpoint.epoch,
        "validation_accuracy": calibration.accuracy,
        "calibration": figures,
        "test": test,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out_dir / "calibrated.npz", model)
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def ship_pretrained(
    run_dir: str | os.PathLike, name: str, command: str, dest_dir: str | os.PathLike = PRETRAINED_DIR
) -> Path:
    """Copy a run's model (``run_model_path``: calibrated, else best) to ``train/pretrained/NAME.npz``
    with a JSON of its provenance.

    The JSON holds the exact command, seed, wall time, the validation accuracy that selected it,
    the threshold calibration and the golden-model test figures from the run's ``summary.json``.
    The optimiser state is left out: a shipped model is deployed, not resumed (Adam's moments
    tripled the Fashion-MNIST file, 3.3 -> 9.6 MB).
    """
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise Bs4nnError(f"{summary_path}: not found; the run has not finished")
    summary = json.loads(summary_path.read_text())
    best = replace(load_checkpoint(run_model_path(run_dir)), state={})
    dest_dir = Path(dest_dir)
    target = save_checkpoint(dest_dir / f"{name}.npz", best)
    info = {
        "command": command,
        "dataset": best.dataset,
        "sizes": best.sizes,
        "seed": best.seed,
        "best_epoch": best.epoch,
        "epochs_run": summary.get("epochs"),
        "train_wall_seconds": summary.get("total_train_seconds"),
        "validation_accuracy": summary.get("validation_accuracy"),
        "validation_split": "last 5,000 of the 60,000 training images (trained on the first 55,000)",
        "model": best.model,
        "alphas": best.alphas,
        # B1: the scales become integer ramps (train/b1_model.py), they are not rounded to two decimals
        "alphas_rounded": [float(quantize_alpha(a)) for a in best.alphas] if best.model == "bs4nn" else None,
        "thetas": best.thetas,
        "calibration": summary.get("calibration"),
        "test": summary.get("test"),
    }
    atomic_write_text(dest_dir / f"{name}.json", json.dumps(info, indent=2) + "\n")
    return target

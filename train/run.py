"""A training run as a whole: its options, its output folder, and what ``--resume`` must match.

The loop (``train/trainer.py``) and the end of a run (``train/finish.py``) both read these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.naming import resolve_model
from bs4nn.fileio import sha256_path
from bs4nn.train.datasets import load_split
from bs4nn.train.experiments.relu import teacher_files, teacher_names
from bs4nn.train.presets import Preset


@dataclass
class RunOptions:
    """How to run a preset: where, on what, and which knobs the user changed."""

    out_dir: Path
    data_dir: str | None = None
    seed: int = 0
    binary: bool = True
    device: str = "auto"
    resume: bool = False
    plot: bool = False
    progress: bool = True
    test: bool = True  # score best.npz on the test split at the end
    threads: int = 2  # NumPy: each batch split over this many threads (1 or 2)


def default_out_dir(preset: Preset) -> Path:
    """``$BS4NN_RUNS/PRESET``, else ``runs/PRESET``."""
    return Path(os.environ.get("BS4NN_RUNS", "runs")) / preset.name


def effective_weight_clip(preset: Preset, binary: bool) -> tuple[float | None, ...] | None:
    """The preset's per-layer clip as a run applies it: none for real weights (S4NN mode), whose
    magnitudes are the weights themselves."""
    return preset.weight_clip if binary else None


PRESET_DEFAULTS = {field.name: field.default for field in fields(Preset)}


def run_signature(preset: Preset, options: RunOptions) -> dict[str, Any]:
    """What must match for ``--resume`` to continue the same run."""
    settings = preset.as_dict()
    settings.pop("epochs")  # a resumed run may be extended
    settings.pop("calibrate_thresholds")  # after training: resuming a finished run only calibrates
    settings.pop("decision_step_budget")  # the calibration's objective, after training too
    settings.pop("decision_first_spike_share")  # likewise
    settings.pop("calibration_search")  # likewise
    settings.pop("weight_clip")
    if preset.backward == "temporal":  # the snapshot knobs do not matter: runs made before them still resume
        for key in ("backward", "count_margin", "surrogate_width"):
            settings.pop(key)
    # absent at their defaults: runs made before them still resume
    for key in (
        "optimizer",
        "snapshot_steps",
        "readout_scale",
        "readout_eta",
        "shift_pixels",
        "mirror_images",
        "hidden_dropout",
        "windows",
        "weight_bits",
        "activity_penalty",
        "lr_schedule",
        "decision_deadline",
        "deadline_weight",
        "sample_with_replacement",
        "teacher",
        "distill_weight",
        "distill_temperature",
        "weight_average",
        "init_from",
    ):
        if getattr(preset, key) == PRESET_DEFAULTS[key]:
            settings.pop(key)
    settings.pop("readout_epochs")  # may be extended, like epochs
    clips = effective_weight_clip(preset, options.binary)
    if clips is not None:  # absent when unbounded: older runs, and S4NN runs of a clipping preset, still resume
        settings["weight_clip"] = list(clips)
    if preset.teacher:  # the teacher's files themselves: a resumed run must distil from the same network
        names = teacher_names(preset.teacher)  # one teacher keeps the bare file names: its older runs still resume
        settings["teacher_sha256"] = {
            (path.name if len(names) == 1 else f"{index}/{path.name}"): sha256_path(path)
            for index, name in enumerate(names)
            for path in teacher_files(name)
        }
    if preset.init_from:  # the starting model's file itself: a resumed run must start from the same weights
        settings["init_from_sha256"] = sha256_path(trained_model_path(preset.init_from, "init_from"))
    return {"preset": settings, "seed": options.seed, "binary": options.binary}


def trained_model_path(text: str, purpose: str) -> Path:
    """The checkpoint a model's name stands for, for ``purpose`` (``init_from``, ``bs4nn calibrate``): a
    bit-model folder holds signs and integer counts, not the proxy weights and alphas these need."""
    model = resolve_model(text)
    if model.is_bit_model:
        raise Bs4nnError(f"{purpose} {text}: a bit-model folder has no proxy weights; give its checkpoint")
    return model.path


VALIDATION_SPLIT = 5_000
"""The validation split: the LAST 5,000 of the 60,000 training images (never the test split)."""


def validation_split(dataset: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The validation split of a dataset as every run has it (``bs4nn calibrate`` has no preset)."""
    images, labels = load_split(dataset, "train", data_dir)
    return _validation(images, labels, VALIDATION_SPLIT)


def _validation(images: np.ndarray, labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    start = len(images) - VALIDATION_SPLIT
    return images[start : start + count], labels[start : start + count]


def split_data(preset: Preset, data_dir: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train = the first ``train_images`` of the 60,000; validation = the first ``validation_images``
    of the last 5,000 (``VALIDATION_SPLIT``)."""
    images, labels = load_split(preset.dataset, "train", data_dir)
    limit = len(images) - VALIDATION_SPLIT
    if preset.train_images > limit:
        raise Bs4nnError(f"at most {limit} training images: the last 5,000 are the validation split")
    return {
        "train": (images[: preset.train_images], labels[: preset.train_images]),
        "validation": _validation(images, labels, preset.validation_images),
    }

"""``bs4nn train --init-from``: a fresh run that starts from another run's parameters (fine-tuning)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bs4nn.errors import Bs4nnError
from bs4nn.train.checkpoint import load_checkpoint
from bs4nn.train.presets import get_preset
from bs4nn.train.run import RunOptions, run_signature
from bs4nn.train.trainer import start_state, train


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def source_run(tmp_path_factory, data_dir: Path) -> Path:
    """tiny-ce trained for two epochs: the run the others start from."""
    out = tmp_path_factory.mktemp("source")
    preset = get_preset("tiny-ce").with_overrides(readout_epochs=0, calibrate_thresholds=False)
    train(preset, RunOptions(out_dir=out, data_dir=str(data_dir), progress=False, test=False), log=_quiet)
    return out


def test_a_run_starts_from_the_checkpoints_parameters_and_the_presets_thresholds(source_run: Path) -> None:
    source = load_checkpoint(source_run / "checkpoint.npz")
    preset = get_preset("tiny-ce").with_overrides(thetas=(92.5, 102.5), init_from=str(source_run / "checkpoint.npz"))
    options = RunOptions(out_dir=source_run / "unused")
    state = start_state(preset, options, run_signature(preset, options), _quiet)
    for started, trained in zip(state.weights, source.weights, strict=True):
        assert started.tobytes() == trained.tobytes()
    assert state.alphas == source.alphas
    assert state.extras["readout_scale"].tobytes() == source.state["readout_scale"].tobytes()
    assert state.extras["readout_scale"][0] != preset.readout_scale  # learned, not the preset's start
    assert state.thetas == [92.5, 102.5] != source.thetas  # the run's own thresholds
    assert (state.next_epoch, state.history, state.saved) == (1, [], {})  # a fresh optimiser and history
    # the source's file is part of the run's settings: --resume refuses another starting point
    assert "init_from_sha256" in run_signature(preset, options)["preset"]
    assert "init_from" not in run_signature(get_preset("tiny-ce"), options)["preset"]  # older runs still resume


def test_fine_tuning_keeps_what_the_source_learned(source_run: Path, tmp_path: Path, data_dir: Path) -> None:
    preset = get_preset("tiny-ce").with_overrides(epochs=1, readout_epochs=0, calibrate_thresholds=False)
    options = {"data_dir": str(data_dir), "progress": False, "test": False}
    fresh = train(preset, RunOptions(out_dir=tmp_path / "fresh", **options), log=_quiet)
    start = preset.with_overrides(init_from=str(source_run / "checkpoint.npz"))
    tuned = train(start, RunOptions(out_dir=tmp_path / "tuned", **options), log=_quiet)
    source = load_checkpoint(source_run / "checkpoint.npz").metrics[-1]["validation_accuracy"]
    assert tuned["validation_accuracy"] >= source - 0.05  # one more epoch from there, not from scratch
    assert tuned["validation_accuracy"] > fresh["validation_accuracy"] + 0.05
    changed = load_checkpoint(tmp_path / "tuned" / "checkpoint.npz").weights[0]
    assert not np.array_equal(changed, load_checkpoint(source_run / "checkpoint.npz").weights[0])  # it trained


def test_bad_starting_points_are_refused_in_one_line(source_run: Path, tmp_path: Path, bs4nn_cli) -> None:
    base = ["train", "--preset", "tiny-ce", "--quiet", "--no-test"]
    code, _, err = bs4nn_cli([*base, "--out", str(tmp_path / "a"), "--init-from", "mnist"])  # 784-600-10
    assert code == 2 and err.count("\n") == 1 and "784-600-10" in err and "784-100-10" in err
    assert not (tmp_path / "a" / "checkpoint.npz").exists()
    code, _, err = bs4nn_cli([*base, "--out", str(tmp_path / "b"), "--init-from", str(tmp_path / "none.npz")])
    assert code == 2 and err.count("\n") == 1 and "no such file" in err
    bits = tmp_path / "bits"
    bits.mkdir()
    (bits / "manifest.json").write_text("{}")
    code, _, err = bs4nn_cli([*base, "--out", str(tmp_path / "c"), "--init-from", str(bits)])
    assert code == 2 and err.count("\n") == 1 and "no proxy weights" in err
    b1 = ["train", "--preset", "tiny-b1", "--quiet", "--no-test", "--out", str(tmp_path / "d")]
    code, _, err = bs4nn_cli([*b1, "--init-from", str(source_run)])  # a BS4NN run for a B1 network
    assert code == 2 and err.count("\n") == 1 and "bs4nn" in err and "b1" in err


def test_resume_needs_the_same_starting_point(source_run: Path, tmp_path: Path, data_dir: Path) -> None:
    preset = get_preset("tiny-ce").with_overrides(
        epochs=1, readout_epochs=0, calibrate_thresholds=False, train_images=200, validation_images=100
    )
    options = {"data_dir": str(data_dir), "progress": False, "test": False}
    start = preset.with_overrides(init_from=str(source_run / "checkpoint.npz"))
    train(start, RunOptions(out_dir=tmp_path, **options), log=_quiet)
    resumed = RunOptions(out_dir=tmp_path, resume=True, **options)
    with pytest.raises(Bs4nnError, match="other settings"):
        train(preset.with_overrides(epochs=2), resumed, log=_quiet)
    train(start.with_overrides(epochs=2), resumed, log=_quiet)
    assert load_checkpoint(tmp_path / "checkpoint.npz").epoch == 2

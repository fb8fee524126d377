"""``bs4nn calibrate``: a trained model's thresholds chosen again for a decision budget, without training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bs4nn.train.checkpoint import load_checkpoint
from bs4nn.train.datasets import load_split
from bs4nn.train.finish import checkpoint_network
from bs4nn.train.metrics import evaluate
from bs4nn.train.network import LabelledImages
from bs4nn.train.presets import get_preset
from bs4nn.train.run import RunOptions, validation_split
from bs4nn.train.trainer import train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("trained")
    preset = get_preset("tiny-ce").with_overrides(readout_epochs=0)
    train(preset, RunOptions(out_dir=out, data_dir=str(data_dir), progress=False, test=False), log=lambda _: None)
    return out


def test_calibrate_writes_a_run_folder_whose_figures_the_golden_model_repeats(
    trained_run: Path, tmp_path: Path, data_dir: Path, bs4nn_cli
) -> None:
    out = tmp_path / "early"
    argv = ["calibrate", "--model", str(trained_run), "--budget", "60", "--first-spike-share", "0.9", "-o", str(out)]
    code, printed, err = bs4nn_cli([*argv, "--data-dir", str(data_dir)])
    assert code == 0, err
    assert "test" in printed and "by a first spike" in printed
    model = load_checkpoint(out / "calibrated.npz")
    source = load_checkpoint(trained_run / "calibrated.npz")
    assert [w.tobytes() for w in model.weights] == [w.tobytes() for w in source.weights]  # weights untouched
    assert model.state == {} and model.hyperparameters["source"].endswith("calibrated.npz")
    summary = json.loads((out / "summary.json").read_text())
    calibration = summary["calibration"]
    assert calibration["trained_counts"] != calibration["counts"]  # the budget moved them
    assert calibration["mean_decision_time"] <= 60 and calibration["first_spike_decisions"] >= 0.9
    network = checkpoint_network(model)
    validation = evaluate(network, LabelledImages(*validation_split("mnist", str(data_dir))))
    assert validation["accuracy"] == summary["validation_accuracy"] == calibration["accuracy"]
    assert validation["mean_decision_time"] == pytest.approx(calibration["mean_decision_time"])
    test = evaluate(network, LabelledImages(*load_split("mnist", "test", str(data_dir))))
    assert test["accuracy"] == summary["test"]["accuracy"]
    # the folder is a finished run's: the exporter reads it as one
    code, _, err = bs4nn_cli(["calibrate", "--model", str(out), "--budget", "256", "-o", str(tmp_path / "again")])
    assert code == 0, err


def test_calibrate_refuses_bad_input_in_one_line(trained_run: Path, tmp_path: Path, bs4nn_cli) -> None:
    base = ["calibrate", "--budget", "100"]
    code, _, err = bs4nn_cli([*base, "--model", str(trained_run), "-o", str(trained_run)])  # a run's folder
    assert code == 2 and err.count("\n") == 1 and "holds a training run" in err and "--resume" not in err
    code, _, err = bs4nn_cli([*base, "--model", "mnist-b1", "-o", str(tmp_path / "b1")])
    assert code == 2 and err.count("\n") == 1 and "only binary BS4NN" in err
    assert not (tmp_path / "b1" / "calibrated.npz").exists()
    bits = tmp_path / "bits"
    bits.mkdir()
    (bits / "manifest.json").write_text("{}")
    code, _, err = bs4nn_cli([*base, "--model", str(bits), "-o", str(tmp_path / "c")])
    assert code == 2 and err.count("\n") == 1 and "no proxy weights" in err
    code, _, err = bs4nn_cli(["calibrate", "--model", "mnist", "--budget", "0", "-o", str(tmp_path / "d")])
    assert code == 2 and "--budget" in err
    code, _, err = bs4nn_cli([*base, "--model", "mnist", "--first-spike-share", "1.5", "-o", str(tmp_path / "e")])
    assert code == 2 and "--first-spike-share" in err

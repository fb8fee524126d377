"""B1 training: gradients, learning on real MNIST images, exact resume, the command line."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from bs4nn import cli as bs4nn_cli
from bs4nn.sim.semantics import encode_images
from bs4nn.train.b1_model import B1Shape, Parameters, backward, forward, initial_parameters
from bs4nn.train.checkpoint import load_checkpoint
from bs4nn.train.finish import ship_pretrained
from bs4nn.train.presets import PRESETS
from bs4nn.train.run import RunOptions
from bs4nn.train.trainer import train


def loss_of(params: Parameters, times, labels, shape, penalty=0.0) -> float:
    run = forward(params, times, shape)
    gradients = backward(params, run, labels, shape, penalty)
    return (gradients.loss + gradients.penalty) / len(labels)


def test_output_scale_and_bias_gradients_match_finite_differences(mnist_test):
    """Where the forward is smooth (the output layer's scale and, with D = 0, its real logits)."""
    images, labels = mnist_test
    shape = B1Shape((784, 32, 10), 256, (8,), 1)
    params = initial_parameters(shape, 3)
    times = encode_images(images[:64])
    run = forward(params, times, shape)
    gradient = backward(params, run, labels[:64], shape, 0.0).arrays[3][0]  # d/ds of the output layer
    step = 1e-3
    shifted = [
        Parameters(params.weights, [params.log_scales[0], params.log_scales[1] + d], params.biases)
        for d in (step, -step)
    ]
    numeric = (loss_of(shifted[0], times, labels[:64], shape) - loss_of(shifted[1], times, labels[:64], shape)) / (
        2 * step
    )
    assert gradient == pytest.approx(numeric, rel=2e-2)


def test_activity_penalty_lowers_the_hidden_spikes(mnist_test):
    """The penalty's gradient pushes hidden values down: one Adam-free step along it."""
    images, labels = mnist_test
    shape = B1Shape((784, 64, 10), 256, (8,), 1)
    params = initial_parameters(shape, 0)
    times = encode_images(images[:200])
    before = forward(params, times, shape)
    gradients = backward(params, before, labels[:200], shape, activity_penalty=50.0)
    moved = Parameters.from_arrays(
        [a - 0.05 * np.sign(g) for a, g in zip(params.arrays(), gradients.arrays, strict=True)]
    )
    after = forward(moved, times, shape)
    assert (after.values[1] > 0).mean() < 0.5 * (before.values[1] > 0).mean()


def test_two_epochs_on_2000_images_learn(tmp_path):
    """tiny-b1: 784-64-10, 2 epochs on 2,000 MNIST images, validated on 1,000 others."""
    options = RunOptions(out_dir=tmp_path, progress=False, threads=1)
    summary = train(PRESETS["tiny-b1"], options, log=lambda _: None)
    assert summary["validation_accuracy"] >= 0.80
    assert summary["test"]["accuracy"] >= 0.78
    history = json.loads((tmp_path / "metrics.json").read_text())
    assert history[1]["loss"] < history[0]["loss"]
    best = load_checkpoint(tmp_path / "best.npz")
    assert best.model == "b1" and len(best.biases) == 2 and best.thetas == [8.0, 0.0]
    shipped = ship_pretrained(tmp_path, "tiny-b1", "bs4nn train --preset tiny-b1", dest_dir=tmp_path / "pretrained")
    info = json.loads(shipped.with_suffix(".json").read_text())
    assert info["model"] == "b1" and info["test"]["accuracy"] == summary["test"]["accuracy"]
    assert load_checkpoint(shipped).biases[0].tolist() == best.biases[0].tolist()


class InterruptedRunError(Exception):
    pass


def stop_after_first_epoch(line: str) -> None:
    if line.startswith("epoch 1:"):
        raise InterruptedRunError


@pytest.mark.parametrize("weight_average", [0.0, 0.9])
def test_resume_equals_uninterrupted(tmp_path, weight_average):
    preset = replace(
        PRESETS["tiny-b1"], train_images=600, validation_images=200, activity_penalty=0.01, shift_pixels=1,
        mirror_images=True, weight_average=weight_average,
    )  # fmt: skip
    whole = tmp_path / "whole"
    train(preset, RunOptions(out_dir=whole, progress=False, test=False), log=lambda _: None)
    parts = tmp_path / "parts"
    with pytest.raises(InterruptedRunError):
        train(preset, RunOptions(out_dir=parts, progress=False, test=False), log=stop_after_first_epoch)
    assert load_checkpoint(parts / "checkpoint.npz").epoch == 1
    train(preset, RunOptions(out_dir=parts, progress=False, test=False, resume=True), log=lambda _: None)
    first, second = load_checkpoint(whole / "checkpoint.npz"), load_checkpoint(parts / "checkpoint.npz")
    for a, b in zip([*first.weights, *first.biases], [*second.weights, *second.biases], strict=True):
        assert np.array_equal(a, b)
    assert first.alphas == second.alphas
    assert [row["validation_accuracy"] for row in first.metrics] == [
        row["validation_accuracy"] for row in second.metrics
    ]
    averages = sorted(key for key in first.state if key.startswith("average_"))
    assert len(averages) == (6 if weight_average else 0)  # two weight proxies, log-scales and biases
    for key in averages:
        assert np.array_equal(first.state[key], second.state[key])


def test_weight_average_is_the_network_validated_and_kept(tmp_path):
    """best.npz holds the average (not the raw proxies), its scale exp of the averaged log-scale."""
    preset = replace(PRESETS["tiny-b1"], train_images=600, validation_images=200, epochs=1, weight_average=0.95)
    train(preset, RunOptions(out_dir=tmp_path, progress=False, test=False), log=lambda _: None)
    raw, best = load_checkpoint(tmp_path / "checkpoint.npz"), load_checkpoint(tmp_path / "best.npz")
    n = len(raw.weights)
    for i in range(n):
        assert np.array_equal(best.weights[i], raw.state[f"average_{i}"])
        assert not np.array_equal(best.weights[i], raw.weights[i])
        assert best.alphas[i] == pytest.approx(np.exp(raw.state[f"average_{n + i}"][0]), rel=1e-6)
        assert np.array_equal(best.biases[i], raw.state[f"average_{2 * n + i}"])


def run_bs4nn(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = bs4nn_cli.main(list(argv))
    except SystemExit as stop:  # argparse's refusals (one line, exit 2)
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--weight-bits", "9"], "weight_bits must be in 1..8"),
        (["--windows", "8", "8"], "--windows needs one window per hidden layer (1)"),
        (["--thetas", "3", "4"], "--thetas is a BS4NN option"),
        (["--set", "weight_bits=3"], "b1: b-bit weights are quantised on their mean magnitude; set weight_clip=None"),
        (["--set", "windows=(0,)"], "windows must be positive integers"),
        (["--set", "weight_average=1"], "weight_average must be in [0, 1)"),
        (["--set", "readout_epochs=2"], "b1: readout_epochs and calibrate_thresholds are BS4NN steps"),
    ],
)
def test_train_cli_refuses_bad_b1_options(tmp_path, capsys, flags, message):
    code, _, err = run_bs4nn(capsys, "train", "--preset", "tiny-b1", "--out", str(tmp_path / "run"), *flags)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "run").exists()


def test_train_cli_refuses_b1_options_for_bs4nn(tmp_path, capsys):
    code, _, err = run_bs4nn(capsys, "train", "--preset", "tiny", "--out", str(tmp_path), "--weight-bits", "2")
    assert code == 2 and "--weight-bits is an option of the B1 presets" in err


def test_train_cli_any_hidden_layers_and_weight_bits(tmp_path, capsys):
    code, out, _ = run_bs4nn(
        capsys, "train", "--preset", "tiny-b1", "--out", str(tmp_path), "--hidden", "24", "16", "--windows", "8", "4",
        "--weight-bits", "3", "--epochs", "1", "--train-images", "500", "--quiet", "--no-test",
        "--set", "activity_penalty=0.3", "--plot", "--mirror-images",
    )  # fmt: skip
    assert code == 0 and "epoch 1:" in out
    best = load_checkpoint(tmp_path / "best.npz")
    assert best.sizes == [784, 24, 16, 10] and best.weight_bits == 3 and best.thetas == [8.0, 4.0, 0.0]
    assert best.hyperparameters["run"]["preset"]["activity_penalty"] == 0.3
    assert best.hyperparameters["run"]["preset"]["mirror_images"] is True  # the loop's augmentation, either family
    header, row = (tmp_path / "metrics.csv").read_text().splitlines()[:2]
    assert header.endswith("train_penalty,train_spikes_per_neuron,validation_spikes_per_neuron")
    assert row.startswith("1,train,") and (tmp_path / "learning_curves.png").is_file()


def test_hidden_dropout_silences_the_dropped_neurons(mnist_test):
    """A mask of ones changes nothing; a dropped neuron reaches neither the output nor its weights' gradient."""
    images, labels = mnist_test
    shape = B1Shape((784, 40, 10), 256, (8,), 1)
    params = initial_parameters(shape, 1)
    times = encode_images(images[:50])
    plain = forward(params, times, shape)
    ones = forward(params, times, shape, keep_masks=[np.ones((50, 40), np.float32)])
    assert np.array_equal(plain.scores, ones.scores)
    mask = np.ones((50, 40), np.float32)
    mask[:, :20] = 0
    dropped = forward(params, times, shape, keep_masks=[mask])
    gradients = backward(params, dropped, labels[:50], shape, 0.0)
    assert not np.array_equal(dropped.logits, plain.logits)
    assert not gradients.arrays[1][:, :20].any() and gradients.arrays[1][:, 20:].any()  # output weights from dropped
    assert not gradients.arrays[0][:20].any()  # no gradient reaches the dropped neurons' input weights

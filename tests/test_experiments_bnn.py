"""The BNN baseline: gradients, schedule, binary inference, and a short real MNIST training."""

from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.cli import run
from bs4nn.errors import Bs4nnError
from bs4nn.train import experiments_cli
from bs4nn.train.datasets import load_split
from bs4nn.train.experiments import baseline, bnn

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = os.environ.get("BS4NN_DATA", str(REPO.parent / "shared" / "data"))
STEP = 1e-3


class ContinuousLayer(bnn.BnnLayer):
    """The layer with ``sign`` removed from the weights, so finite differences see the STE gradient."""

    def binary_weights(self, xp):
        return self.weights


def loss_of(layers, inputs, labels) -> float:
    scores, _ = bnn.forward(layers, inputs, np, training=True)
    return bnn.squared_hinge(scores, labels, np)[0]


@given(seed=st.integers(0, 2**16), batch=st.integers(1, 6))
@settings(max_examples=30, deadline=None)
def test_squared_hinge_gradient(seed, batch):
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 1.5, (batch, 10))
    labels = rng.integers(0, 10, batch)
    loss, grad = bnn.squared_hinge(scores, labels, np)
    targets = np.where(np.arange(10)[None, :] == labels[:, None], 1.0, -1.0)
    assert loss == pytest.approx(np.mean(np.maximum(0, 1 - targets * scores) ** 2))
    for index in np.ndindex(scores.shape):
        bumped = scores.copy()
        bumped[index] += STEP
        numeric = (bnn.squared_hinge(bumped, labels, np)[0] - loss) / STEP
        assert grad[index] == pytest.approx(numeric, abs=1e-3)


@pytest.mark.parametrize("name", ["weights", "gamma", "beta"])
def test_backward_matches_finite_differences(name):
    """One layer (no sign activation): batch norm and the weight gradient are exact derivatives."""
    rng = np.random.default_rng(1)
    layer = bnn.init_layers([6, 4], rng)[0]
    layer = ContinuousLayer(
        layer.weights.astype(np.float64),
        rng.uniform(0.5, 1.5, 4),
        rng.normal(0, 0.3, 4),
        layer.running_mean,
        layer.running_var,
    )
    inputs, labels = rng.random((8, 6)), rng.integers(0, 4, 8)
    scores, caches = bnn.forward([layer], inputs, np, training=True)
    grads = bnn.backward([layer], caches, bnn.squared_hinge(scores, labels, np)[1], np)[0]
    base = loss_of([layer], inputs, labels)
    array = getattr(layer, name)
    for index in np.ndindex(array.shape):
        array[index] += 1e-6
        numeric = (loss_of([layer], inputs, labels) - base) / 1e-6
        array[index] -= 1e-6
        assert grads[name][index] == pytest.approx(numeric, rel=1e-3, abs=1e-6)


def test_learning_rate_decays_from_start_to_end():
    config = baseline.BaselineConfig(sizes=[784, 10, 10], epochs=5)
    rates = [config.learning_rate(epoch) for epoch in range(5)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-4)
    assert all(a > b for a, b in itertools.pairwise(rates))


def test_inference_uses_only_the_signs():
    rng = np.random.default_rng(2)
    layers = bnn.init_layers([20, 8, 3], rng)
    inputs = rng.random((50, 20)).astype(np.float32)
    before = baseline.predict(bnn.BNN, layers, inputs)
    for layer in layers:
        layer.weights = layer.weights * 7.5  # same signs, other magnitudes
    np.testing.assert_array_equal(baseline.predict(bnn.BNN, layers, inputs), before)
    layers[0].weights = -layers[0].weights
    assert not np.array_equal(baseline.predict(bnn.BNN, layers, inputs), before)


def test_bad_configs():
    with pytest.raises(Bs4nnError, match="batch"):
        baseline.BaselineConfig(sizes=[4, 2], batch_size=1)
    with pytest.raises(Bs4nnError, match="lr_end"):
        baseline.BaselineConfig(sizes=[4, 2], lr_start=1e-4, lr_end=1e-3)
    with pytest.raises(Bs4nnError, match="sizes"):
        baseline.BaselineConfig(sizes=[4])


def test_short_mnist_training(tmp_path):
    """3,500 training images, 2 epochs, 64 hidden units: far above chance, outputs consistent."""
    images, labels = load_split("mnist", "train", DATA_DIR, download=False)
    test_images, test_labels = load_split("mnist", "test", DATA_DIR, download=False)
    config = baseline.BaselineConfig(sizes=[784, 64, 10], epochs=2, validation=500, seed=3)
    train, test = (images[:3500], labels[:3500]), (test_images[:1000], test_labels[:1000])
    result = baseline.train_baseline(bnn.BNN, config, *train, *test, dataset="mnist")
    assert result.test_accuracy > 0.75
    history = [row["validation_accuracy"] for row in result.history]
    assert result.best_epoch == 1 + int(np.argmax(history))
    assert result.validation_accuracy == max(history)
    assert baseline.accuracy(bnn.BNN, result.layers, bnn.scale_images(test[0], np), test[1]) == result.test_accuracy
    json_path, npz_path, png_path = baseline.write_baseline_result(bnn.BNN, result, tmp_path)
    summary = json.loads(json_path.read_text())
    assert summary["test_accuracy"] == result.test_accuracy and summary["config"]["sizes"] == [784, 64, 10]
    with np.load(npz_path) as saved:
        np.testing.assert_array_equal(saved["signs_0"], result.layers[0].weights >= 0)
        assert set(np.unique(saved["signs_1"])) <= {0, 1}
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    again = baseline.train_baseline(bnn.BNN, config, *train, *test)
    assert again.history == result.history  # seeded


def test_cli_bnn(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="bs4nn")
    experiments_cli.register(parser.add_subparsers(dest="command", required=True))
    argv = "experiment bnn --hidden 16 --epochs 1 --train-images 1200 --validation 200 --test-images 200 --quiet"
    args = parser.parse_args([*argv.split(), "--data-dir", DATA_DIR, "--out", str(tmp_path)])
    assert run(args.handler, args, "bs4nn") == 0
    assert "BNN baseline 784-16-10 on mnist" in capsys.readouterr().out
    assert json.loads((tmp_path / "bnn.json").read_text())["config"]["epochs"] == 1
    args = parser.parse_args([*argv.split(), "--validation", "5000", "--data-dir", DATA_DIR, "--out", str(tmp_path)])
    assert run(args.handler, args, "bs4nn") == 2
    assert capsys.readouterr().err.startswith("bs4nn: error: validation split")

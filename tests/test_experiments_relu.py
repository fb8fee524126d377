"""The float ReLU reference of B1 networks: gradients, a short real MNIST training, the CLI and its
weights deployed by ``bs4nn-export --from-relu``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest

from bs4nn.cli import run
from bs4nn.export import cli as export_cli
from bs4nn.export.bitmodel import load_bit_model
from bs4nn.sim.b1 import run_b1
from bs4nn.sim.semantics import encode_images
from bs4nn.train import experiments_cli
from bs4nn.train.datasets import load_split
from bs4nn.train.experiments import baseline, relu
from bs4nn.train.losses import softmax_cross_entropy

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = os.environ.get("BS4NN_DATA", str(REPO.parent / "shared" / "data"))
STEP = 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backward_matches_finite_differences(seed):
    """Every weight and bias gradient of a 6-5-4-3 network (float64) equals its central difference."""
    rng = np.random.default_rng(seed)
    layers = [
        relu.ReluLayer(rng.normal(0, 0.7, (n_out, n_in)), rng.normal(0, 0.3, n_out))
        for n_in, n_out in [(6, 5), (5, 4), (4, 3)]
    ]
    inputs, labels = rng.random((7, 6)), rng.integers(0, 3, 7)

    def loss() -> float:
        return softmax_cross_entropy(relu.forward(layers, inputs, np)[0], labels, np)[0]

    logits, activations = relu.forward(layers, inputs, np)
    grads = relu.backward(layers, activations, softmax_cross_entropy(logits, labels, np)[1], np)
    arrays = [array for layer in layers for array in (layer.weights, layer.bias)]
    for array, grad in zip(arrays, grads, strict=True):
        for index in np.ndindex(array.shape):
            array[index] += STEP
            up = loss()
            array[index] -= 2 * STEP
            down = loss()
            array[index] += STEP
            assert grad[index] == pytest.approx((up - down) / (2 * STEP), rel=1e-4, abs=1e-7)


def test_short_mnist_training_and_its_weights_deploy_as_b1(tmp_path, capsys):
    """3 epochs on 3,500 images: far above chance; the written W/b files become a B1 folder by
    --from-relu (8-bit) that decides as the float network on nearly every test image."""
    images, labels = load_split("mnist", "train", DATA_DIR, download=False)
    test_images, test_labels = load_split("mnist", "test", DATA_DIR, download=False)
    config = baseline.BaselineConfig(sizes=[784, 48, 10], epochs=3, validation=500, seed=3, lr_start=5e-3, lr_end=1e-3)
    net = relu.Relu()
    result = baseline.train_baseline(net, config, images[:3500], labels[:3500], test_images[:1000], test_labels[:1000])
    assert result.test_accuracy > 0.85
    history = [row["validation_accuracy"] for row in result.history]
    assert result.best_epoch == 1 + int(np.argmax(history)) and result.validation_accuracy == max(history)
    again = baseline.train_baseline(net, config, images[:3500], labels[:3500], test_images[:10], test_labels[:10])
    assert again.history == result.history  # seeded
    files = [str(path) for path in net.write_extra(result.layers, tmp_path)]
    assert [Path(f).name for f in files] == ["W0.npy", "b0.npy", "W1.npy", "b1.npy"]
    np.testing.assert_array_equal(np.load(files[0]), result.layers[0].weights)
    out = tmp_path / "bits"
    assert export_cli.main(["--from-relu", *files, "--weight-bits", "8", "-o", str(out), "--images", "1000"]) == 0
    capsys.readouterr()
    float_decisions = baseline.predict(net, result.layers, net.inputs(test_images[:1000], np))
    b1_decisions = run_b1(load_bit_model(out).network, encode_images(test_images[:1000])).decision
    assert (b1_decisions == float_decisions).mean() >= 0.95


def test_cli_relu(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="bs4nn")
    experiments_cli.register(parser.add_subparsers(dest="command", required=True))
    argv = "experiment relu --hidden 16 --epochs 1 --train-images 1200 --validation 200 --test-images 200 --quiet"
    args = parser.parse_args([*argv.split(), "--data-dir", DATA_DIR, "--out", str(tmp_path / "r")])
    assert run(args.handler, args, "bs4nn") == 0
    out = capsys.readouterr().out
    assert "float ReLU reference 784-16-10 on mnist" in out
    summary = json.loads((tmp_path / "r" / "relu.json").read_text())
    assert summary["experiment"] == "relu-baseline" and summary["config"]["lr_end"] == 1e-5
    assert np.load(tmp_path / "r" / "W1.npy").shape == (10, 16)
    assert (tmp_path / "r" / "relu.png").read_bytes()[:4] == b"\x89PNG"
    args = parser.parse_args(
        [*argv.split(), "--validation", "5000", "--data-dir", DATA_DIR, "--out", str(tmp_path / "v")]
    )
    assert run(args.handler, args, "bs4nn") == 2
    assert capsys.readouterr().err.startswith("bs4nn: error: validation split") and not (tmp_path / "v").exists()

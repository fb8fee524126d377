"""The paper's analyses (report, noise, threshold, alpha, real weights) on tiny hand-made models.

Data: the real MNIST test images from ``$BS4NN_DATA`` (default ``../shared/data``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from decimal import Decimal
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.cli import run
from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import integer_network, write_bit_model
from bs4nn.sim.golden import (
    IntegerLayer,
    IntegerNetwork,
    decision_line,
    decision_statistics,
    run_golden,
    run_golden_images,
    run_network,
)
from bs4nn.sim.semantics import encode_images
from bs4nn.train import experiments_cli
from bs4nn.train.checkpoint import Checkpoint, save_checkpoint
from bs4nn.train.datasets import load_split
from bs4nn.train.experiments import sweeps
from bs4nn.train.experiments.models import AnalysedModel, load_model, model_from_checkpoint, positive_fractions
from bs4nn.train.experiments.report import REPORT_FILE, analyse, write_report

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = os.environ.get("BS4NN_DATA", str(REPO.parent / "shared" / "data"))
N_IMAGES = 80
HIDDEN = 24
ALPHAS = (0.25, 0.5)  # exact binary fractions: float and integer arithmetic agree exactly
THETAS = (6.1, 1.1)  # threshold counts ceil(6.1/0.25) = 25 and ceil(1.1/0.5) = 3


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_split("mnist", "test", DATA_DIR, download=False)
    return images[:N_IMAGES], labels[:N_IMAGES]


def tiny_checkpoint(seed: int = 0, exact_alpha_weights: bool = False) -> Checkpoint:
    """784-24-10 with random real weights (or weights exactly +-alpha: alpha*B = W)."""
    rng = np.random.default_rng(seed)
    weights = [rng.uniform(-1, 1, (HIDDEN, 784)), rng.uniform(-1, 1, (10, HIDDEN))]
    if exact_alpha_weights:
        weights = [np.where(w >= 0, alpha, -alpha) for w, alpha in zip(weights, ALPHAS, strict=True)]
    return Checkpoint(
        sizes=[784, HIDDEN, 10],
        weights=[w.astype(np.float32) for w in weights],
        alphas=list(ALPHAS),
        thetas=list(THETAS),
    )


def assert_real_png(path: Path) -> None:
    """A PNG that decodes to a non-blank picture."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0.01


# --------------------------------------------------------------------------------------------
# report


def test_report_numbers_match_the_golden_model(mnist_test, tmp_path):
    images, labels = mnist_test
    model = model_from_checkpoint(tiny_checkpoint(), "tiny.npz")
    data = analyse(model, images, labels, image_index=3)
    golden = run_golden_images(model.network, images)
    labels = labels.astype(np.int64)
    assert data.accuracy == golden.accuracy(labels)
    assert data.confusion.sum() == N_IMAGES
    assert np.trace(data.confusion) == int((golden.decision == labels).sum())
    np.testing.assert_array_equal(data.confusion.sum(axis=0), np.bincount(golden.decision, minlength=10))
    for label in np.unique(labels):
        rows = labels == label
        np.testing.assert_allclose(data.class_mean_times[label], golden.spike_times[-1][rows].mean(axis=0))
        np.testing.assert_allclose(data.spikes_per_class[label], data.spikes_until[rows].mean(axis=0))
    # input spikes up to the decision: never more than the non-black pixels
    assert (data.spikes_until[:, 0] <= (images.reshape(N_IMAGES, -1) > 0).sum(axis=1)).all()
    assert data.positive_fractions == [float(layer.signs.mean()) for layer in model.network.layers]
    assert data.traces[-1].shape == (model.network.tmax, 10)
    assert data.trace_steps == sorted(data.trace_steps) and data.trace_steps[-1] <= model.network.tmax - 1


def test_report_files(mnist_test, tmp_path):
    images, labels = mnist_test
    model = model_from_checkpoint(tiny_checkpoint(), "tiny.npz")
    data = analyse(model, images, labels, steps=[10, 100, 200])
    path = write_report(model, data, tmp_path / "report", {"split": "test"})
    text = path.read_text()
    assert f"{100 * data.accuracy:.2f} %" in text
    assert "784-24-10" in text and "Fig. 2a" in text and "Fig. 6" in text
    for name in ("output_times", "class_mean_times", "spikes_per_layer", "potentials", "confusion"):
        assert f"({name}.png)" in text
        assert_real_png(path.parent / f"{name}.png")
    assert_real_png(path.parent / "weights_real_vs_binary.png")
    numbers = json.loads((path.parent / "report.json").read_text())
    assert numbers["confusion"] == data.confusion.tolist()
    assert numbers["trace_steps"] == [10, 100, 200]
    decisions = decision_statistics(data.result, model.network.tmax)
    assert {key: numbers[key] for key in decisions} == decisions
    share = f"| decided by a first output spike | {100 * decisions['first_spike_decisions']:.1f} % |"
    assert share in text and f"/ {decisions['p95_decision_time']:.0f} |" in text


def test_report_of_a_bit_model_folder_has_no_real_weights(mnist_test, tmp_path):
    images, labels = mnist_test
    checkpoint = tiny_checkpoint()
    network = integer_network(checkpoint.weights, checkpoint.alphas, checkpoint.thetas, 256, 255)
    write_bit_model(network, tmp_path / "bits", meta={"dataset": "mnist"})
    model = load_model(tmp_path / "bits")
    assert model.checkpoint is None and model.alphas_q is None
    path = write_report(model, analyse(model, images[:20], labels[:20]), tmp_path / "report")
    assert "Not available: a bit-model folder has no real weights" in path.read_text()
    assert not (path.parent / "weights_real_vs_binary.png").exists()
    with pytest.raises(Bs4nnError, match="needs the real-valued weights"):
        sweeps.real_weights_experiment(model, images, labels)


def test_bad_inputs_are_one_line_errors(tmp_path, mnist_test):
    images, labels = mnist_test
    model = model_from_checkpoint(tiny_checkpoint())
    with pytest.raises(Bs4nnError, match="image 500 does not exist"):
        analyse(model, images, labels, image_index=500)
    with pytest.raises(Bs4nnError, match="steps must lie"):
        analyse(model, images, labels, steps=[300])
    with pytest.raises(Bs4nnError, match="no such model"):
        load_model(tmp_path / "missing.npz")
    s4nn = tiny_checkpoint()
    s4nn.binary = False
    with pytest.raises(Bs4nnError, match="binary=False"):
        model_from_checkpoint(s4nn)


# --------------------------------------------------------------------------------------------
# Fig. 5: noise


@given(level=st.floats(0, 1), seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_jitter_stays_within_its_level(level, seed):
    images = np.random.default_rng(seed).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    noisy = sweeps.jitter_images(images, level, 255, np.random.default_rng(seed))
    assert noisy.dtype == np.uint8 and noisy.shape == images.shape
    assert np.abs(noisy.astype(int) - images.astype(int)).max() <= level * 255 + 0.5
    np.testing.assert_array_equal(noisy, sweeps.jitter_images(images, level, 255, np.random.default_rng(seed)))


def test_noise_sweep(mnist_test, tmp_path):
    images, labels = mnist_test
    model = model_from_checkpoint(tiny_checkpoint(), "tiny.npz")
    rows = sweeps.noise_sweep(model, images, labels, levels=[0.0, 0.5, 1.0])
    clean = run_golden_images(model.network, images)
    assert rows[0]["accuracy"] == clean.accuracy(labels)
    assert rows[0]["mean_decision_time"] == clean.decision_time.mean()
    assert [row["noise"] for row in rows] == [0.0, 0.5, 1.0]
    # full-scale noise makes background pixels spike: responses come earlier on average
    assert rows[2]["mean_decision_time"] < rows[0]["mean_decision_time"]
    assert rows == sweeps.noise_sweep(model, images, labels, levels=[0.0, 0.5, 1.0])  # seeded
    written = sweeps.write_sweep("noise", rows, tmp_path, {"model": "tiny"})
    assert json.loads(written[0].read_text())["rows"] == rows
    assert "| 50 |" in written[1].read_text()
    assert_real_png(written[2])


# --------------------------------------------------------------------------------------------
# Fig. 7: threshold


@given(
    seed=st.integers(0, 2**16),
    thresholds=st.lists(st.integers(1, 40), min_size=2, max_size=6, unique=True),
)
@settings(max_examples=40, deadline=None)
def test_single_layer_response_time_grows_with_the_threshold(seed, thresholds):
    """One layer: each neuron's first crossing can only come later when its threshold rises."""
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, (5, 30), dtype=np.uint8)
    times = rng.integers(0, 40, (12, 30))
    decision_times = [
        run_golden(IntegerNetwork((IntegerLayer(signs, t),), tmax=32), times).decision_time for t in sorted(thresholds)
    ]
    for before, after in itertools.pairwise(decision_times):
        assert (after >= before).all()


def test_threshold_sweep(mnist_test, tmp_path):
    images, labels = mnist_test
    model = model_from_checkpoint(tiny_checkpoint(), "tiny.npz")
    rows = sweeps.threshold_sweep(model, images, labels, thetas=[0, 6.1, 20], layers=None)
    assert [row["threshold_counts"] for row in rows] == [[1, 1], [25, 13], [80, 40]]
    trained = run_golden_images(model.network, images)
    assert rows[0]["mean_decision_time"] <= rows[2]["mean_decision_time"]  # threshold 1: first spike decides
    only_output = sweeps.threshold_sweep(model, images, labels, thetas=[1.1], layers=[1])
    assert only_output[0]["threshold_counts"] == [25, 3]  # the trained thresholds
    assert only_output[0]["accuracy"] == trained.accuracy(labels)
    assert only_output[0]["mean_decision_time"] == trained.decision_time.mean()
    with pytest.raises(Bs4nnError, match="layer 5 does not exist"):
        sweeps.threshold_sweep(model, images, labels, thetas=[1], layers=[5])
    written = sweeps.write_sweep("threshold", rows, tmp_path, {"model": "tiny"})
    assert "[80, 40]" in written[1].read_text()
    assert_real_png(written[2])


def test_threshold_sweep_relative_to_the_trained_thetas(mnist_test, tmp_path):
    images, labels = mnist_test
    model = model_from_checkpoint(tiny_checkpoint(), "tiny.npz")
    rows = sweeps.threshold_sweep(model, images, labels, scales=[0, 1, 2])
    assert [row["thetas"] for row in rows] == [[0, 0], [6.1, 1.1], [12.2, 2.2]]
    assert [row["threshold_counts"] for row in rows] == [[1, 1], [25, 3], [49, 5]]
    trained = run_golden_images(model.network, images)
    assert rows[1]["accuracy"] == trained.accuracy(labels)
    assert rows[1]["mean_decision_time"] == trained.decision_time.mean()
    assert sweeps.threshold_sweep(model, images, labels) == sweeps.threshold_sweep(
        model, images, labels, scales=sweeps.THRESHOLD_SCALES
    )
    written = sweeps.write_sweep("threshold", rows, tmp_path, {"model": "tiny"})
    assert "| 2 | 12.2, 2.2 | [49, 5] |" in written[1].read_text()
    with pytest.raises(Bs4nnError, match="not both"):
        sweeps.threshold_sweep(model, images, labels, thetas=[1], scales=[1])
    checkpoint = tiny_checkpoint()
    network = integer_network(checkpoint.weights, checkpoint.alphas, checkpoint.thetas, 256, 255)
    write_bit_model(network, tmp_path / "bits")
    with pytest.raises(Bs4nnError, match="no trained thetas"):
        sweeps.threshold_sweep(load_model(tmp_path / "bits"), images, labels, scales=[1])


# --------------------------------------------------------------------------------------------
# alpha rounding, real weights


def test_alpha_rounding(mnist_test, tmp_path):
    images, labels = mnist_test
    model = model_from_checkpoint(tiny_checkpoint(), "tiny.npz")
    rows = {row["decimals"]: row for row in sweeps.alpha_rounding(model, images, labels)}
    assert "rounds to 0" in rows[0]["error"]
    assert rows[1]["alphas"] == ["0.2", "0.5"]  # 0.25 -> 0.2: half to even
    assert rows[1]["threshold_counts"] == [31, 3]  # ceil(6.1 / 0.2), ceil(1.1 / 0.5)
    for places in (2, 3, 4, None):
        assert rows[places]["threshold_counts"] == [25, 3]
        assert rows[places]["accuracy"] == rows[2]["accuracy"]
    assert rows[4]["alphas"] == [str(Decimal("0.2500")), str(Decimal("0.5000"))]
    written = sweeps.write_sweep("alpha", list(rows.values()), tmp_path, {"model": "tiny"})
    assert "unrounded" in written[1].read_text()
    assert_real_png(written[2])


def test_real_weights_equal_to_alpha_b_reproduce_the_golden_model(mnist_test, tmp_path):
    images, labels = mnist_test
    model = model_from_checkpoint(tiny_checkpoint(exact_alpha_weights=True), "exact.npz")
    binary, real = sweeps.real_weights_experiment(model, images, labels)
    assert binary["accuracy"] == real["accuracy"]
    assert binary["mean_decision_time"] == real["mean_decision_time"]
    written = sweeps.write_sweep("real-weights", [binary, real], tmp_path, {"model": "exact"})
    assert "real W" in written[1].read_text()
    assert_real_png(written[2])


@given(seed=st.integers(0, 2**16), threshold=st.integers(1, 12))
@settings(max_examples=30, deadline=None)
def test_float_runner_matches_golden_on_integer_weights(seed, threshold):
    rng = np.random.default_rng(seed)
    layers = (
        IntegerLayer(rng.integers(0, 2, (7, 20), dtype=np.uint8), threshold),
        IntegerLayer(rng.integers(0, 2, (4, 7), dtype=np.uint8), 2),
    )
    network = IntegerNetwork(layers, tmax=24)
    times = rng.integers(0, 30, (9, 20))
    golden = run_golden(network, times)
    real = run_network(times, [layer.weights().astype(float) for layer in layers], [threshold, 2], 24, chunk=4)
    np.testing.assert_array_equal(real.decision, golden.decision)
    np.testing.assert_array_equal(real.decision_time, golden.decision_time)


def test_real_weights_differ_from_binary_on_random_real_weights(mnist_test):
    images, _labels = mnist_test
    model = model_from_checkpoint(tiny_checkpoint(), "tiny.npz")
    checkpoint = model.checkpoint
    input_times = encode_images(images)
    real = run_network(input_times, [w.astype(float) for w in checkpoint.weights], checkpoint.thetas, 256)
    golden = run_golden(model.network, input_times)
    assert not np.array_equal(real.decision_time, golden.decision_time)


# --------------------------------------------------------------------------------------------
# CLI (registered by the lead in bs4nn.cli; here on a parser of its own)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bs4nn")
    experiments_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return run(args.handler, args, "bs4nn")


def test_cli_report_and_sweeps(tmp_path, capsys):
    model_path = save_checkpoint(tmp_path / "tiny.npz", tiny_checkpoint())
    common = ["--images", "30", "--data-dir", DATA_DIR, "--quiet"]
    assert run_cli("report", "--model", str(model_path), *common, "--out", str(tmp_path / "rep")) == 0
    assert "accuracy" in (tmp_path / "rep" / REPORT_FILE).read_text()
    report_json = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert decision_line(report_json) in capsys.readouterr().out
    out = tmp_path / "exp"
    assert (
        run_cli(
            "experiment", "threshold", "--model", str(model_path), *common, "--thetas", "0", "50", "--out", str(out)
        )
        == 0
    )
    assert [row["theta"] for row in json.loads((out / "threshold.json").read_text())["rows"]] == [0.0, 50.0]
    assert (
        run_cli("experiment", "noise", "--model", str(model_path), *common, "--levels", "0", "25", "--out", str(out))
        == 0
    )
    assert json.loads((out / "noise.json").read_text())["rows"][1]["noise"] == 0.25
    assert run_cli("experiment", "alpha", "--model", str(model_path), *common, "--out", str(out)) == 0
    assert run_cli("experiment", "real-weights", "--model", str(model_path), *common, "--out", str(out)) == 0
    assert "real W" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    checkpoint = tiny_checkpoint()
    network = integer_network(checkpoint.weights, checkpoint.alphas, checkpoint.thetas, 256, 255)
    write_bit_model(network, tmp_path / "bits")
    assert run_cli("experiment", "alpha", "--model", str(tmp_path / "bits"), "--data-dir", DATA_DIR) == 2
    assert run_cli("report", "--model", str(tmp_path / "nothing")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("bs4nn: error: ") for line in lines)
    # a count that is not positive is refused by the argument parser, before any work
    with pytest.raises(SystemExit) as stopped:
        run_cli("report", "--model", str(tmp_path / "bits"), "--images", "0", "--data-dir", DATA_DIR)
    assert stopped.value.code == 2
    assert "argument --images: must be a positive integer, got 0" in capsys.readouterr().err


def test_positive_fractions():
    layers = (IntegerLayer(np.array([[1, 1, 0, 1]], np.uint8), 1),)
    model = model_from_checkpoint(tiny_checkpoint())
    assert len(positive_fractions(model)) == 2
    assert positive_fractions(AnalysedModel(IntegerNetwork(layers), "mnist", Path("x"))) == [0.75]


def test_bit_model_with_exported_alphas_sweeps_like_its_checkpoint(mnist_test, tmp_path):
    """The exporter writes alpha_q and theta per layer: theta then means the same as for the checkpoint."""
    images, labels = mnist_test
    checkpoint = tiny_checkpoint()
    network = integer_network(checkpoint.weights, checkpoint.alphas, checkpoint.thetas, 256, 255)
    info = [{"alpha_q": str(alpha), "theta": theta} for alpha, theta in zip(ALPHAS, THETAS, strict=True)]
    write_bit_model(network, tmp_path / "bits", layer_info=info, meta={"dataset": "mnist"})
    bits = load_model(tmp_path / "bits")
    assert bits.alphas_q == (Decimal("0.25"), Decimal("0.5")) and bits.thetas == THETAS
    from_checkpoint = model_from_checkpoint(checkpoint)
    thetas = [3, 6.1, 12]
    assert sweeps.threshold_sweep(bits, images, labels, thetas) == sweeps.threshold_sweep(
        from_checkpoint, images, labels, thetas
    )

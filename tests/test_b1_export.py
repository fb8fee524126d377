"""B1 bit-model folders: packing, export, the one reader, the golden model's entry point, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn import cli as bs4nn_cli
from bs4nn.export import cli as export_cli
from bs4nn.export.b1bits import pack_weight_rows, unpack_weight_rows
from bs4nn.export.bitmodel import SELF_DIGEST, load_bit_model, manifest_digest, pack_rows
from bs4nn.sim.b1 import B1Network, run_b1, weight_range
from bs4nn.sim.semantics import encode_images
from bs4nn.train.b1_model import B1Shape, initial_parameters
from bs4nn.train.checkpoint import Checkpoint, save_checkpoint


@settings(max_examples=100, deadline=None)
@given(bits=st.integers(1, 8), fan_out=st.integers(1, 5), fan_in=st.integers(1, 19), seed=st.integers(0, 999))
def test_weight_rows_round_trip(bits, fan_out, fan_in, seed):
    low, high = weight_range(bits)
    weights = np.random.default_rng(seed).integers(low, high + 1, size=(fan_out, fan_in))
    if bits == 1:
        weights = np.where(weights >= 0, 1, -1)
        assert pack_weight_rows(weights, 1) == pack_rows((weights > 0).astype(np.uint8))  # BS4NN's packing
    payload = pack_weight_rows(weights, bits)
    assert len(payload) == fan_out * -(-fan_in * bits // 8)
    assert np.array_equal(unpack_weight_rows(payload, fan_out, fan_in, bits), weights)


def test_two_bit_fields_are_twos_complement_msb_first():
    assert pack_weight_rows(np.array([[-2, -1, 0, 1, 1]]), 2) == bytes([0b10110001, 0b01000000])


def b1_checkpoint(path: Path, bits: int = 1, seed: int = 0) -> Path:
    shape = B1Shape((784, 24, 10), 256, (8,), bits)
    params = initial_parameters(shape, seed)
    rng = np.random.default_rng(seed)
    biases = [rng.normal(0, 1, size=b.shape).astype(np.float32) for b in params.biases]
    checkpoint = Checkpoint(
        sizes=list(shape.sizes),
        weights=params.weights,
        alphas=params.scales(),
        thetas=[8.0, 0.0],
        dataset="mnist",
        model="b1",
        biases=biases,
        weight_bits=bits,
    )
    return save_checkpoint(path, checkpoint)


def run(capsys, main, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_export_writes_b1_folder_and_golden_reports_its_accuracy(tmp_path, capsys, bits, mnist_test):
    out = tmp_path / "bits"
    source = b1_checkpoint(tmp_path / "b1.npz", bits)
    code, stdout, _ = run(capsys, export_cli.main, "--to-bits", str(source), "-o", str(out), "--images", "300")
    assert code == 0, stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == "b1" and manifest["decision_latency"] == 256 + 8
    hidden, output = manifest["layers"]
    assert {"fan_in", "fan_out", "weights", "weight_bits", "bias", "ramp", "window", "potential_bits"} <= set(hidden)
    assert "ramp" not in output and output["weight_bits"] == bits
    assert (out / "layer0.hex").is_file() == (bits == 1)
    model = load_bit_model(out)
    assert isinstance(model.network, B1Network) and model.model == "b1"
    code, stdout, _ = run(capsys, bs4nn_cli.main, "sim", "golden", "--manifest", str(out), "--images", "300", "--json")
    assert code == 0
    assert json.loads(stdout)["accuracy"] == manifest["metrics"]["test_accuracy"]
    images, labels = mnist_test
    direct = run_b1(model.network, encode_images(images[:300]))
    assert direct.accuracy(labels[:300]) == manifest["metrics"]["test_accuracy"]


def test_bs4nn_manifests_say_bs4nn(tmp_path, capsys):
    rng = np.random.default_rng(0)
    checkpoint = Checkpoint(
        sizes=[784, 12, 10],
        weights=[rng.normal(size=(12, 784)).astype(np.float32), rng.normal(size=(10, 12)).astype(np.float32)],
        alphas=[1.0, 1.0],
        thetas=[5.0, 2.0],
    )
    path = save_checkpoint(tmp_path / "bs4nn.npz", checkpoint)
    assert run(capsys, export_cli.main, "--to-bits", str(path), "-o", str(tmp_path / "bits"), "--no-eval")[0] == 0
    assert json.loads((tmp_path / "bits" / "manifest.json").read_text())["model"] == "bs4nn"
    assert load_bit_model(tmp_path / "bits").model == "bs4nn"


def rewrite_manifest(folder: Path, edit) -> None:
    """Edit a manifest, re-hashed and re-sealed so that only the semantic checks can catch it."""
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest, folder)
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    manifest[SELF_DIGEST] = manifest_digest(manifest)  # re-sealed: the manifest's own digest passes too
    (folder / "manifest.json").write_text(json.dumps(manifest))


def set_layer(index: int, key: str, value):
    def edit(manifest, folder):
        manifest["layers"][index][key] = value

    return edit


def widen_weights_to_9_bits(manifest, folder):
    manifest["layers"][1]["weight_bits"] = 9


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (set_layer(0, "bias", [2**70] + [0] * 23), "layer 0"),
        (set_layer(1, "bias", [2**40] + [0] * 9), "overflow the declared"),
        (set_layer(0, "bias", [0.5] * 24), "bias must be a list of integers"),
        (set_layer(0, "ramp", 0), "ramp must be >= 1"),
        (set_layer(0, "ramp", -3), "ramp must be >= 1"),
        (set_layer(0, "window", 0), "window must be >= 1"),
        (widen_weights_to_9_bits, "weight_bits must be in 1..8"),
        (set_layer(1, "weight_bits", 0), "weight_bits must be in 1..8"),
        (set_layer(0, "potential_bits", 10), "overflow the declared 10 bits"),
        (set_layer(1, "ramp", 4), "the output layer neither"),
    ],
)
def test_golden_refuses_a_bad_b1_manifest(tmp_path, capsys, edit, message):
    out = tmp_path / "bits"
    source = b1_checkpoint(tmp_path / "b1.npz")
    assert run(capsys, export_cli.main, "--to-bits", str(source), "-o", str(out), "--no-eval")[0] == 0
    rewrite_manifest(out, edit)
    code, _, err = run(capsys, bs4nn_cli.main, "sim", "golden", "--manifest", str(out), "--images", "10")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("bs4nn: error: "), err
    assert message in lines[0], lines[0]


def relu_mlp(images: np.ndarray, labels: np.ndarray, hidden: int = 32, steps: int = 60, seed: int = 0):
    """A small float ReLU MLP on pixels / 255, trained here by full-batch Adam (not by bs4nn)."""
    rng = np.random.default_rng(seed)
    x = images.reshape(len(images), -1) / 255.0
    params = [
        rng.normal(0, 784**-0.5, (hidden, 784)),
        np.zeros(hidden),
        rng.normal(0, hidden**-0.5, (10, hidden)),
        np.zeros(10),
    ]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    for step in range(1, steps + 1):
        w0, b0, w1, b1 = params
        h = np.maximum(x @ w0.T + b0, 0)
        logits = h @ w1.T + b1
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(x)), labels] -= 1
        g = p / len(x)
        gh = (g @ w1) * (h > 0)
        for param, grad, moment in zip(params, [gh.T @ x, gh.sum(0), g.T @ h, g.sum(0)], moments, strict=True):
            moment[0] = 0.9 * moment[0] + 0.1 * grad
            moment[1] = 0.999 * moment[1] + 0.001 * grad**2
            param -= 0.01 * (moment[0] / (1 - 0.9**step)) / (np.sqrt(moment[1] / (1 - 0.999**step)) + 1e-8)
    return params


def test_from_relu_deploys_a_float_relu_network(tmp_path, capsys, mnist_test):
    """8-bit weights: the B1 network decides as the float ReLU network on nearly every image."""
    from bs4nn.train.datasets import load_split

    train_images, train_labels = load_split("mnist", "train", None)
    params = relu_mlp(train_images[:3000], train_labels[:3000])
    files = []
    for name, array in zip(["W0", "b0", "W1", "b1"], params, strict=True):
        np.save(tmp_path / f"{name}.npy", array)
        files.append(str(tmp_path / f"{name}.npy"))
    out = tmp_path / "bits"
    code, _, err = run(
        capsys, export_cli.main, "--from-relu", *files, "--weight-bits", "8", "-o", str(out), "--images", "1000"
    )
    assert code == 0, err
    images, _ = mnist_test
    x = images[:1000].reshape(1000, -1) / 255.0
    float_decision = np.argmax(np.maximum(x @ params[0].T + params[1], 0) @ params[2].T + params[3], axis=1)
    network = load_bit_model(out).network
    b1_decision = run_b1(network, encode_images(images[:1000])).decision
    assert (b1_decision == float_decision).mean() >= 0.95
    assert json.loads((out / "manifest.json").read_text())["metrics"]["test_accuracy"] >= 0.8
    code, _, err = run(capsys, export_cli.main, "--from-relu", *files[:3], "-o", str(tmp_path / "odd"))
    assert code == 2 and "pairs W.npy b.npy" in err and not (tmp_path / "odd").exists()
    code, _, err = run(capsys, export_cli.main, "--to-bits", str(out), "-o", str(tmp_path / "x"), "--weight-bits", "2")
    assert code == 2 and "only apply to --from-relu" in err and not (tmp_path / "x").exists()


def test_report_on_a_b1_model(tmp_path, capsys, mnist_test):
    """Checkpoint and bit-model folder give the same report figures, from the B1 golden model."""
    source = b1_checkpoint(tmp_path / "b1.npz", bits=2)
    assert run(capsys, export_cli.main, "--to-bits", str(source), "-o", str(tmp_path / "bits"), "--no-eval")[0] == 0
    reports = []
    for model in (source, tmp_path / "bits"):
        out = tmp_path / f"report-{model.name}"
        code, stdout, _ = run(
            capsys, bs4nn_cli.main, "report", "--model", str(model), "--out", str(out), "--images", "400"
        )
        assert code == 0 and "(B1)" in stdout
        reports.append(json.loads((out / "report.json").read_text()))
        assert {"report.md", "confusion.png", "spike_steps.png"} <= {p.name for p in out.iterdir()}
    first, second = reports
    assert first["accuracy"] == second["accuracy"] and first["confusion"] == second["confusion"]
    images, labels = mnist_test
    network = load_bit_model(tmp_path / "bits").network
    result = run_b1(network, encode_images(images[:400]))
    assert first["accuracy"] == result.accuracy(labels[:400])
    hidden_spikes = int((result.values[1] > 0).sum())
    assert sum(first["spike_step_histograms"][0]) == hidden_spikes
    assert sum(map(sum, first["confusion"])) == 400


@pytest.mark.parametrize(
    "command",
    [
        ["build", "--board", "icebreaker", "--spram", "-o", "build"],
        ["run", "--simulate", "--upload"],
    ],
)
def test_board_stages_refuse_b_bit_weight_uploads(tmp_path, capsys, command):
    """The board's WEIGHT frames carry sign bits: loading a 4-bit folder's weights at run time
    (SPRAM, --upload) is one line, exit 2, nothing written."""
    out = tmp_path / "bits"
    checkpoint = str(b1_checkpoint(tmp_path / "b1.npz", bits=4))
    assert run(capsys, export_cli.main, "--to-bits", checkpoint, "-o", str(out), "--no-eval")[0] == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run(capsys, bs4nn_cli.main, *command, "--manifest", str(out))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "1-bit weights only" in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(("name", "target"), [("mnist-b1", 0.984), ("fashion-b1", 0.893)])
def test_shipped_b1_model_exports_to_its_recorded_figures(tmp_path, capsys, name, target):
    """bs4nn-export --to-bits NAME: the integer network scores what the shipped JSON records (10,000 test
    images), at most 0.15 spikes per hidden neuron, and a floor: the issue's targets, MNIST 98.4 %,
    Fashion-MNIST 89.3 % (the shipped 89.32 %, distilled from the float reference at Adam 1e-3 and
    chosen on validation among three seeds)."""
    from bs4nn.train.checkpoint import PRETRAINED_DIR

    info = json.loads((PRETRAINED_DIR / f"{name}.json").read_text())
    out = tmp_path / "bits"
    assert run(capsys, export_cli.main, "--to-bits", name, "-o", str(out), "--quiet")[0] == 0
    metrics = json.loads((out / "manifest.json").read_text())["metrics"]
    assert metrics["images"] == 10_000 and metrics["test_accuracy"] == info["test"]["accuracy"] >= target
    assert metrics["spikes_per_neuron"][1:] == info["test"]["spikes_per_neuron"]
    assert max(metrics["spikes_per_neuron"][1:]) <= 0.15


def test_nir_export_refuses_a_b1_model(tmp_path, capsys):
    """NIR has no B1 neuron: a B1 checkpoint or folder is one line, exit 2, no file written."""
    source = b1_checkpoint(tmp_path / "b1.npz")
    assert run(capsys, export_cli.main, "--to-bits", str(source), "-o", str(tmp_path / "bits"), "--no-eval")[0] == 0
    for model in (source, tmp_path / "bits"):
        code, _, err = run(capsys, export_cli.main, "--to-nir", str(model), "-o", str(tmp_path / "b1.nir"))
        assert code == 2 and len(err.strip().splitlines()) == 1 and "b1" in err, err
        assert not (tmp_path / "b1.nir").exists()

"""bs4nn-export end to end: sources, the folder it writes, --from-bits, --check, and bad input.

Every error case asserts the three promises: exit status 2, one line on stderr (no traceback),
and an output folder that is either absent or exactly as it was before.
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn import cli as bs4nn_cli
from bs4nn.errors import Bs4nnError
from bs4nn.export import cli
from bs4nn.export.bitmodel import SELF_DIGEST, integer_network, load_bit_model, manifest_digest
from bs4nn.export.exporter import (
    export_model,
    resolve_source,
    source_from_checkpoint,
    verify_bit_model,
)
from bs4nn.export.layout import MemoryLayout, counter_bits, signs_from_words
from bs4nn.export.naming import shipped_model_path
from bs4nn.fileio import sha256_path
from bs4nn.sim.golden import decision_statistics, run_golden_images
from bs4nn.train.checkpoint import Checkpoint, checkpoint_bytes, load_checkpoint, save_checkpoint
from bs4nn.train.datasets import load_split

SIZES = [784, 48, 10]
ALPHAS = [0.0312, 0.55]  # 0.0312 -> 0.03; threshold counts ceil(0.7/0.03) = 24, ceil(2/0.55) = 4
THETAS = [0.7, 2.0]
EXPECTED_THRESHOLDS = [24, 4]
SUBSET = 500


def make_checkpoint(sizes=SIZES, alphas=ALPHAS, thetas=THETAS, seed=0, dataset="mnist") -> Checkpoint:
    """Random real weights with some exact zeros (they must become +1)."""
    rng = np.random.default_rng(seed)
    weights = []
    for n_in, n_out in itertools.pairwise(sizes):
        weight = rng.normal(size=(n_out, n_in)).astype(np.float32)
        weight[rng.random(weight.shape) < 0.05] = 0.0
        weights.append(weight)
    return Checkpoint(
        sizes=list(sizes),
        weights=weights,
        alphas=list(alphas),
        thetas=list(thetas),
        dataset=dataset,
        seed=seed,
        epoch=3,
        metrics=[{"epoch": 3, "test_accuracy": 0.5}],
    )


@pytest.fixture
def checkpoint_file(tmp_path) -> Path:
    return save_checkpoint(tmp_path / "model.npz", make_checkpoint())


def run_cli(capsys, *argv: str, entry=cli.main) -> tuple[int, str, str]:
    code = entry(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file of a folder (None if absent): to prove a failed export touched nothing."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_clean_error(capsys, argv: list[str], folder: Path | None, pattern: str) -> None:
    before = snapshot(folder) if folder else None
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bs4nn-export: error: "), err
    assert pattern in lines[0], lines[0]
    if folder is not None:
        assert snapshot(folder) == before
        leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]
        assert not leftovers, leftovers


# ---------------------------------------------------------------- export


def test_export_checkpoint_writes_the_bit_model(tmp_path, checkpoint_file, capsys, mnist_test):
    out = tmp_path / "bits"
    code, stdout, _ = run_cli(capsys, "--to-bits", str(checkpoint_file), "-o", str(out), "--quiet")
    assert code == 0
    model = load_bit_model(out)
    checkpoint = make_checkpoint()
    expected = integer_network(checkpoint.weights, ALPHAS, THETAS, checkpoint.tmax, checkpoint.imax)
    for layer, reference, weight in zip(model.network.layers, expected.layers, checkpoint.weights, strict=True):
        assert np.array_equal(layer.signs, reference.signs)
        assert np.array_equal(layer.signs, (weight >= 0).astype(np.uint8))  # w = 0 -> +1
    assert [layer.threshold_count for layer in model.network.layers] == EXPECTED_THRESHOLDS

    manifest = model.manifest
    assert manifest["format"] == "bs4nn-bit-model" and manifest["version"] == 1
    assert (manifest["tmax"], manifest["imax"], manifest["lanes"], manifest["time_bits"]) == (256, 255, 16, 9)
    assert manifest["dataset"] == "mnist" and "floor" in manifest["coding"]
    first = manifest["layers"][0]
    assert first["alpha_q"] == "0.03" and first["alpha_q_value"] == 0.03 and first["theta"] == 0.7
    assert first["counter_bits"] == counter_bits(784, 24) == 11
    assert first["memory"] == {
        "depth": 784 * 3,
        "width": 16,
        "words_per_row": 3,
        "address_bits": 12,
        "files": {s: f"layer0.{s}" for s in ("hex", "mem", "coe", "mif")},
    }
    assert set(manifest["files"]) == {
        *(f"layer{i}.{s}" for i in range(2) for s in ("bin", "hex", "mem", "coe", "mif")),
        "bs4nn_model.h",
    }
    assert manifest["source"]["sha256"] == sha256_path(checkpoint_file)
    assert manifest["source"]["epoch"] == 3 and manifest["metrics"]["training"]["test_accuracy"] == 0.5

    # The manifest's accuracy is the golden model's, on the whole test set, of the folder's network.
    images, labels = mnist_test
    metrics = manifest["metrics"]
    assert (metrics["images"], metrics["split"], metrics["evaluated_by"]) == (10000, "test", "bs4nn.sim.golden")
    assert metrics["test_accuracy"] == run_golden_images(model.network, images).accuracy(labels)
    assert f"{100 * metrics['test_accuracy']:.2f} %" in stdout
    assert "32.0x" in stdout and "38,112 weight bits" in stdout  # 784*48 + 48*10 bits

    # Memory images hold the same signs as the .bin rows.
    for index, layer in enumerate(model.network.layers):
        layout = MemoryLayout(layer.fan_in, layer.fan_out, 16)
        words = [int(line, 16) for line in (out / f"layer{index}.hex").read_text().split()]
        assert np.array_equal(
            signs_from_words(np.array(words, np.uint64), layer.fan_out, layer.fan_in, 16), layer.signs
        )
        assert len(words) == layout.depth


def test_export_is_deterministic_and_bs4nn_export_equals_bs4nn_export(tmp_path, checkpoint_file, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    args = ["--to-bits", str(checkpoint_file), "--no-eval", "--lanes", "8"]
    assert run_cli(capsys, *args, "-o", str(first))[0] == 0
    assert run_cli(capsys, "export", *args, "-o", str(second), entry=bs4nn_cli.main)[0] == 0
    assert snapshot(first) == snapshot(second)
    assert load_bit_model(first).manifest["metrics"]["test_accuracy"] is None


def test_run_folder_prefers_calibrated_then_best_checkpoint(tmp_path):
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoint.npz", make_checkpoint(seed=1))
    assert source_from_checkpoint(run).origin["file"] == "checkpoint.npz"
    save_checkpoint(run / "best.npz", make_checkpoint(seed=2))
    source = resolve_source(str(run))
    assert source.origin["file"] == "best.npz" and source.origin["seed"] == 2
    assert np.array_equal(source.weights[0], make_checkpoint(seed=2).weights[0])
    save_checkpoint(run / "calibrated.npz", make_checkpoint(seed=3))
    assert resolve_source(str(run)).origin["file"] == "calibrated.npz"


def test_shipped_model_by_name(tmp_path, capsys):
    """Name resolution of shipped models (the package folder is swapped for a test folder)."""
    with pytest.raises(Bs4nnError, match="shipped model 'fashion' is not installed"):
        resolve_source("fashion", pretrained_root=tmp_path)
    with pytest.raises(Bs4nnError, match="no shipped model named"):
        shipped_model_path("cifar", tmp_path)
    save_checkpoint(tmp_path / "fashion.npz", make_checkpoint(dataset="fashion-mnist", seed=4))
    source = resolve_source("fashion", pretrained_root=tmp_path)
    assert source.origin["kind"] == "shipped" and source.origin["name"] == "fashion"
    result = export_model(source, tmp_path / "out", evaluate_accuracy=True, images=SUBSET)
    assert result.model.manifest["dataset"] == "fashion-mnist"
    assert result.model.manifest["metrics"]["images"] == SUBSET
    assert result.model.manifest["source"]["sha256"] == sha256_path(tmp_path / "fashion.npz")


def test_from_npy_matches_the_checkpoint_export(tmp_path, checkpoint_file, capsys):
    checkpoint = make_checkpoint()
    np.save(tmp_path / "W0.npy", checkpoint.weights[0])
    np.save(tmp_path / "W1.npy", checkpoint.weights[1][:, :, None])  # (out, in, 1) accepted
    out_npy, out_ckpt = tmp_path / "npy", tmp_path / "ckpt"
    npy_args = ["--from-npy", str(tmp_path / "W0.npy"), str(tmp_path / "W1.npy"), "--alpha", "0.0312", "0.55"]
    assert run_cli(capsys, *npy_args, "--theta", "0.7", "2.0", "-o", str(out_npy), "--no-eval")[0] == 0
    assert run_cli(capsys, "--to-bits", str(checkpoint_file), "-o", str(out_ckpt), "--no-eval")[0] == 0
    npy_model, ckpt_model = load_bit_model(out_npy), load_bit_model(out_ckpt)
    for a, b in zip(npy_model.network.layers, ckpt_model.network.layers, strict=True):
        assert np.array_equal(a.signs, b.signs) and a.threshold_count == b.threshold_count
    files = npy_model.manifest["source"]["files"]
    assert [f["sha256"] for f in files] == [sha256_path(tmp_path / f"W{i}.npy") for i in range(2)]
    # One theta for every layer; +-1 weights; other tmax/imax.
    signs = np.where(np.random.default_rng(3).random((10, 784)) < 0.5, -1.0, 1.0)
    np.save(tmp_path / "B.npy", signs)
    args = ["--from-npy", str(tmp_path / "B.npy"), "--alpha", "1", "--theta", "5", "--tmax", "64", "--imax", "15"]
    assert run_cli(capsys, *args, "-o", str(tmp_path / "pm1"), "--no-eval")[0] == 0
    model = load_bit_model(tmp_path / "pm1")
    assert (model.network.tmax, model.network.imax, model.manifest["time_bits"]) == (64, 15, 7)
    assert np.array_equal(model.network.layers[0].signs, (signs > 0).astype(np.uint8))
    assert model.network.layers[0].threshold_count == 5


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=2, max_size=4),
    lanes=st.integers(1, 64),
    seed=st.integers(0, 2**16),
)
def test_export_round_trip_any_shape(tmp_path_factory, sizes, lanes, seed):
    """Re-loading gives the exported bits, for any shapes and lane counts."""
    checkpoint = make_checkpoint(sizes, [0.5] * (len(sizes) - 1), [1.0] * (len(sizes) - 1), seed=seed)
    source = source_from_checkpoint(save_checkpoint(tmp_path_factory.mktemp("c") / "c.npz", checkpoint))
    out = tmp_path_factory.mktemp("o") / "bits"
    export_model(source, out, lanes=lanes, evaluate_accuracy=False)
    model = verify_bit_model(out)
    for layer, weight in zip(model.network.layers, checkpoint.weights, strict=True):
        assert np.array_equal(layer.signs, (weight >= 0).astype(np.uint8))
        assert layer.threshold_count == 2


# ---------------------------------------------------------------- --from-bits


def test_from_bits_verifies_and_summarises(tmp_path, checkpoint_file, capsys):
    out = tmp_path / "bits"
    assert run_cli(capsys, "--to-bits", str(checkpoint_file), "-o", str(out), "--images", "200", "--quiet")[0] == 0
    code, stdout, _ = run_cli(capsys, "--from-bits", str(out))
    assert code == 0
    assert "network 784-48-10" in stdout and "all 11 files match their sha256" in stdout
    assert "threshold count 24" in stdout and "200 images" in stdout

    (out / "layer1.mif").write_bytes((out / "layer1.mif").read_bytes().replace(b"END;", b"END; "))
    assert_clean_error(capsys, ["--from-bits", str(out)], None, "sha256 does not match")


def write_sealed(path, manifest: dict) -> None:
    """Write an edited manifest with its own digest recomputed, as another tool might."""
    path.write_text(json.dumps({**manifest, SELF_DIGEST: manifest_digest(manifest)}))


def test_from_bits_rejects_an_inconsistent_manifest(tmp_path, checkpoint_file, capsys):
    """A manifest that passes the hash checks (edited, then re-sealed as another tool would) but
    declares too-narrow counters or a wrong geometry."""
    out = tmp_path / "bits"
    assert run_cli(capsys, "--to-bits", str(checkpoint_file), "-o", str(out), "--no-eval")[0] == 0
    manifest_path = out / "manifest.json"
    original = json.loads(manifest_path.read_text())

    narrow = json.loads(json.dumps(original))
    narrow["layers"][0]["counter_bits"] = 8
    write_sealed(manifest_path, narrow)
    assert_clean_error(capsys, ["--from-bits", str(out)], None, "would overflow")

    wrong = json.loads(json.dumps(original))
    wrong["layers"][1]["memory"]["depth"] += 1
    write_sealed(manifest_path, wrong)
    assert_clean_error(capsys, ["--from-bits", str(out)], None, "memory geometry")

    typo = json.loads(json.dumps(original))
    typo["layers"][0]["counter_bits"] = "eleven"
    write_sealed(manifest_path, typo)
    assert_clean_error(capsys, ["--from-bits", str(out)], None, "malformed manifest")

    # A .hex image that disagrees with the .bin, re-hashed so that the sha256 check passes.
    hex_path = out / "layer1.hex"
    lines = hex_path.read_text().splitlines()
    lines[0] = f"{int(lines[0], 16) ^ 1:04x}"
    hex_path.write_text("\n".join(lines) + "\n")
    rehashed = json.loads(json.dumps(original))
    rehashed["files"]["layer1.hex"] = sha256_path(hex_path)
    write_sealed(manifest_path, rehashed)
    assert_clean_error(capsys, ["--from-bits", str(out)], None, "layer1.hex does not hold the signs of layer1.bin")

    manifest_path.write_text("{not json")
    assert_clean_error(capsys, ["--from-bits", str(out)], None, "not valid JSON")


# ---------------------------------------------------------------- --check


def test_check_float_and_integer_models_agree(tmp_path, checkpoint_file, capsys):
    code, stdout, _ = run_cli(capsys, "--check", str(checkpoint_file), "--quiet", "--images", "2000")
    assert code == 0
    assert "images whose spike times differ: 0 (OK)" in stdout
    float_line = next(line for line in stdout.splitlines() if line.startswith("float model"))
    integer_line = next(line for line in stdout.splitlines() if line.startswith("integer model"))
    assert float_line.split("accuracy")[1] == integer_line.split("accuracy")[1]


def test_check_reports_float_rounding_at_the_threshold(tmp_path, capsys):
    """0.3 + 0.3 + 0.3 < 0.9 in binary floats while 3 * 0.3 = 0.9 exactly: the check must see it."""
    checkpoint = make_checkpoint(alphas=[0.3, 0.55], thetas=[0.9, 2.0])
    path = save_checkpoint(tmp_path / "edge.npz", checkpoint)
    code, stdout, _ = run_cli(capsys, "--check", str(path), "--json", "--images", "300")
    result = json.loads(stdout)
    assert code == 1 and result["differing_images"] > 0 and result["images"] == 300


# ---------------------------------------------------------------- bad input


def npz_with(tmp_path: Path, name: str, mutate) -> Path:
    """A checkpoint archive whose header or arrays were changed after writing (bypassing validation)."""
    with np.load(io.BytesIO(checkpoint_bytes(make_checkpoint()))) as archive:
        arrays = {key: archive[key] for key in archive.files}
    mutate(arrays)
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path, checkpoint_file, capsys):
    out = tmp_path / "bits"
    assert run_cli(capsys, "--to-bits", str(checkpoint_file), "-o", str(out), "--no-eval")[0] == 0

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(checkpoint_file.read_bytes()[:300])
    assert_clean_error(capsys, ["--to-bits", str(corrupt), "-o", str(out)], out, "not a readable bs4nn checkpoint")
    assert_clean_error(capsys, ["--to-bits", str(corrupt), "-o", str(tmp_path / "new")], tmp_path / "new", "readable")

    def nan_weights(arrays):
        arrays["weight_1"][0, 0] = np.nan

    nan_ckpt = npz_with(tmp_path, "nan.npz", nan_weights)
    assert_clean_error(capsys, ["--to-bits", str(nan_ckpt), "-o", str(out)], out, "NaN")

    def header_with(**changes):
        def mutate(arrays):
            header = json.loads(str(arrays["header"]))
            header.update(changes)
            arrays["header"] = np.array(json.dumps(header))

        return mutate

    negative = "alphas [-1.0, 0.5] (alphas and thetas must be positive)"
    for alphas, message in (([-1.0, 0.5], negative), ([0.004, 0.5], "rounds to 0.00")):
        bad = npz_with(tmp_path, "alpha.npz", header_with(alphas=alphas))
        assert_clean_error(capsys, ["--to-bits", str(bad), "-o", str(out)], out, message)

    np.save(tmp_path / "nan.npy", np.full((10, 784), np.nan))
    npy = ["--from-npy", str(tmp_path / "nan.npy"), "--alpha", "1", "--theta", "1", "-o", str(out)]
    assert_clean_error(capsys, npy, out, "NaN")
    np.save(tmp_path / "ok.npy", np.ones((10, 784)))
    zero_alpha = ["--from-npy", str(tmp_path / "ok.npy"), "--alpha", "0", "--theta", "1", "-o", str(out)]
    assert_clean_error(capsys, zero_alpha, out, "alpha 0.0 must be a positive")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    junk = ["--from-npy", str(tmp_path / "junk.npy"), "--alpha", "1", "--theta", "1", "-o", str(out)]
    assert_clean_error(capsys, junk, out, "not a readable .npy")
    np.save(tmp_path / "W1.npy", np.ones((10, 11)))
    chain = ["--from-npy", str(tmp_path / "ok.npy"), str(tmp_path / "W1.npy"), "--alpha", "1", "1"]
    assert_clean_error(capsys, [*chain, "--theta", "1", "-o", str(out)], out, "does not match")
    assert_clean_error(capsys, [*chain[:-1], "--theta", "1", "-o", str(out)], out, "one value per layer")

    imax = ["--from-npy", str(tmp_path / "ok.npy"), "--alpha", "1", "--theta", "1", "--imax", "15", "-o", str(out)]
    assert_clean_error(capsys, imax, out, "do not fit the model's imax 15")

    # The hardware's declared counter width: 784 inputs need 11 signed bits.
    overflow = ["--to-bits", str(checkpoint_file), "-o", str(out), "--counter-bits", "10"]
    assert_clean_error(capsys, overflow, out, "would overflow")
    with pytest.raises(SystemExit) as stopped:  # refused by the argument parser, before any work
        run_cli(capsys, "--to-bits", str(checkpoint_file), "-o", str(out), "--lanes", "65")
    assert stopped.value.code == 2 and "lanes must be 1..64, got 65" in capsys.readouterr().err
    assert_clean_error(capsys, ["--to-bits", str(tmp_path / "nope.npz"), "-o", str(out)], out, "no such file or folder")
    assert_clean_error(capsys, ["--to-bits", str(checkpoint_file), "-o", str(out), "--alpha", "1"], out, "--from-npy")
    assert_clean_error(capsys, ["--to-bits", str(checkpoint_file)], None, "-o DIR is required")

    # A folder that is not a bit-model folder is never replaced.
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert_clean_error(capsys, ["--to-bits", str(checkpoint_file), "-o", str(precious)], precious, "refusing")

    # A missing dataset with evaluation on: nothing written either.
    other = tmp_path / "other"
    assert_clean_error(
        capsys, ["--to-bits", str(checkpoint_file), "-o", str(other), "--data-dir", str(tmp_path)], other, "not found"
    )


def test_declared_counter_width_goes_into_the_manifest(tmp_path, checkpoint_file, capsys):
    out = tmp_path / "bits"
    assert (
        run_cli(capsys, "--to-bits", str(checkpoint_file), "-o", str(out), "--no-eval", "--counter-bits", "16")[0] == 0
    )
    assert [entry["counter_bits"] for entry in verify_bit_model(out).manifest["layers"]] == [16, 16]


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--to-bits",
        "--from-bits",
        "--check",
        "--from-npy",
        "--alpha",
        "--theta",
        "--tmax",
        "--imax",
        "--dataset",
        "--lanes",
        "--counter-bits",
        "--no-eval",
        "--images",
        "--data-dir",
        "-o",
    ):
        assert option in text


def test_unreachable_threshold_is_a_warning(tmp_path, capsys):
    np.save(tmp_path / "W.npy", np.ones((3, 8)))
    args = ["--from-npy", str(tmp_path / "W.npy"), "--alpha", "0.5", "--theta", "5", "--no-eval"]
    code, stdout, err = run_cli(capsys, *args, "-o", str(tmp_path / "out"))
    assert code == 0 and "threshold count 10" in stdout
    assert err.strip() == (
        "bs4nn-export: warning: layer 0: threshold count 10 exceeds fan-in 8: its neurons can never fire"
    )


def test_manifest_accuracy_is_what_bs4nn_sim_golden_reports(tmp_path, checkpoint_file, capsys):
    out = tmp_path / "bits"
    assert run_cli(capsys, "--to-bits", str(checkpoint_file), "-o", str(out), "--quiet")[0] == 0
    code, stdout, _ = run_cli(capsys, "sim", "golden", "--manifest", str(out), "--json", entry=bs4nn_cli.main)
    assert code == 0
    summary = json.loads(stdout)
    metrics = load_bit_model(out).manifest["metrics"]
    assert summary["images"] == metrics["images"] == 10000
    assert summary["accuracy"] == metrics["test_accuracy"]
    for key in ("mean_decision_time", "first_spike_decisions", "p95_decision_time", "mean_spikes_until_decision"):
        assert summary[key] == metrics[key]
    assert 0 <= summary["tied_decisions"] <= summary["images"]
    assert summary["accuracy_ties_lenient"] >= summary["accuracy"]


def test_real_valued_checkpoint_exports_its_signs_with_a_warning(tmp_path, capsys):
    checkpoint = make_checkpoint()
    checkpoint.binary = False
    path = save_checkpoint(tmp_path / "s4nn.npz", checkpoint)
    code, _, err = run_cli(capsys, "--to-bits", str(path), "-o", str(tmp_path / "out"), "--no-eval")
    assert code == 0 and "real-valued (binary=False)" in err
    signs = load_bit_model(tmp_path / "out").network.layers[0].signs
    assert np.array_equal(signs, (checkpoint.weights[0] >= 0).astype(np.uint8))


def test_named_model_through_the_cli(tmp_path, capsys, monkeypatch, mnist_test):
    """``--to-bits mnist`` resolves the name, exports, and its manifest accuracy is the golden model's.

    The model folder is pointed at a tiny checkpoint made here through $BS4NN_PRETRAINED, so the
    test does not depend on the shipped file.
    """
    models = tmp_path / "models"
    save_checkpoint(models / "mnist.npz", make_checkpoint(seed=9))
    monkeypatch.setenv("BS4NN_PRETRAINED", str(models))
    monkeypatch.chdir(tmp_path)  # no file called "mnist" here: the name is a shipped-model name
    out = tmp_path / "bits"
    code, stdout, _ = run_cli(capsys, "--to-bits", "mnist", "-o", str(out), "--quiet")
    assert code == 0 and "source: shipped mnist" in stdout
    model = verify_bit_model(out)
    source = model.manifest["source"]
    assert (source["kind"], source["name"]) == ("shipped", "mnist")
    assert source["sha256"] == sha256_path(models / "mnist.npz")
    expected = make_checkpoint(seed=9).weights
    for layer, weight in zip(model.network.layers, expected, strict=True):
        assert np.array_equal(layer.signs, (weight >= 0).astype(np.uint8))
    images, labels = mnist_test
    assert model.manifest["metrics"]["test_accuracy"] == run_golden_images(model.network, images).accuracy(labels)
    with pytest.raises(Bs4nnError, match="shipped model 'fashion' is not installed"):
        resolve_source("fashion")  # only mnist.npz in $BS4NN_PRETRAINED


PRETRAINED = Path(__file__).resolve().parents[1] / "train" / "pretrained"


@pytest.mark.parametrize(
    ("name", "dataset"),
    [("mnist", "mnist"), ("mnist-early", "mnist"), ("mnist-early-1200", "mnist"), ("fashion-early", "fashion-mnist")],
)
def test_shipped_bs4nn_model(tmp_path, capsys, monkeypatch, data_dir, name, dataset):
    """The real shipped models: ``bs4nn-export --to-bits NAME`` exports the package's NAME.npz, and
    the golden model gives the test figures its trainer (or ``bs4nn calibrate``) recorded (the early
    models: their early decisions)."""
    shipped = PRETRAINED / f"{name}.npz"
    monkeypatch.delenv("BS4NN_PRETRAINED", raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / name
    code, stdout, _ = run_cli(capsys, "--to-bits", name, "-o", str(out), "--quiet")
    assert code == 0 and f"source: shipped {name}" in stdout
    model = verify_bit_model(out)
    assert model.manifest["source"]["sha256"] == sha256_path(shipped)
    checkpoint = load_checkpoint(shipped)
    expected = integer_network(
        checkpoint.weights, checkpoint.alphas, checkpoint.thetas, checkpoint.tmax, checkpoint.imax
    )
    for layer, reference in zip(model.network.layers, expected.layers, strict=True):
        assert np.array_equal(layer.signs, reference.signs)
        assert layer.threshold_count == reference.threshold_count
    images, labels = load_split(dataset, "test", data_dir)
    accuracy = model.manifest["metrics"]["test_accuracy"]
    assert model.manifest["metrics"]["images"] == len(labels) == 10000
    result = run_golden_images(model.network, images)
    assert accuracy == result.accuracy(labels)
    record = json.loads(shipped.with_suffix(".json").read_text())["test"]  # the trainer's figures
    assert accuracy == record["accuracy"]
    figures = decision_statistics(result, model.network.tmax)
    assert figures["no_output_spike"] == record["no_output_spike"]  # decided by the fallback, not a first spike
    assert figures["mean_decision_time"] == pytest.approx(record["mean_decision_time"])

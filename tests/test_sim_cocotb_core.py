"""The generated RTL core under cocotb (Icarus and Verilator), spike for spike against the golden model.

Every test here runs the real core (``bs4nn.rtl``), compiled by the real simulators, on real
MNIST / Fashion-MNIST test images or crafted edge cases; the scoreboard is ``run_golden``.
Compiled models are shared by the whole session (keyed by the Verilog's hash), so tests that
use the same bit model and lane count build once.

Cost (2 cores): see ``sim/README.md``; the full 784-600-10 regression of the 10,000 MNIST test
images is ``pytest -m slow tests/test_sim_cocotb_core.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bs4nn.export.bitmodel import load_bit_model, write_bit_model
from bs4nn.sim.golden import IntegerLayer, IntegerNetwork, random_network, run_golden
from bs4nn.sim.regress import SIMULATORS, StreamOptions, run_regression
from bs4nn.sim.semantics import encode_images
from bs4nn.train.datasets import load_split

TMAX = 256
REAL_SIZES, REAL_THRESHOLDS = [784, 64, 10], [8, 3]  # about half the hidden neurons fire on MNIST
# (MNIST, Fashion-MNIST).  Icarus is ~6x slower than Verilator and the second opinion here: a few dozen real
# images on it keep the default suite inside CI's budget; the 10,000-image regressions are behind `slow`.
REAL_IMAGES = {"verilator": (150, 150), "icarus": (12, 6)}
EARLY_EXIT_IMAGES = 60
BACKPRESSURE = 0.25
RESETS = {3: 0, 7: 5, 11: 40, 16: 1000}  # image index -> reset after this many beats (clipped to the image)
SMALL_INPUTS = 24


@pytest.fixture(scope="session")
def build_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sim_build")


@pytest.fixture(scope="session")
def real_model(tmp_path_factory) -> Path:
    """A seeded random 784-64-10 bit model: small enough for the default suite on both simulators."""
    return write_bit_model(
        random_network(REAL_SIZES, REAL_THRESHOLDS, seed=7), tmp_path_factory.mktemp("bits") / "real"
    )


@pytest.fixture(scope="session")
def test_splits(data_dir):
    return load_split("mnist", "test", data_dir)[0], load_split("fashion-mnist", "test", data_dir)[0]


def _real_images(test_splits, simulator: str) -> np.ndarray:
    n_mnist, n_fashion = REAL_IMAGES[simulator]
    return np.concatenate([test_splits[0][:n_mnist], test_splits[1][:n_fashion]])


def _assert_bit_exact(report) -> None:
    print(report.summary())
    assert report.ok, f"{report.summary()}\nreproduce: {report.reproduce}\nartefacts: {report.artefacts}"


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_real_images_are_bit_exact_under_backpressure_and_resets(
    simulator, real_model, test_splits, build_root, tmp_path
):
    """MNIST + Fashion-MNIST test images, random valid/ready gaps, resets inside images."""
    real_images = _real_images(test_splits, simulator)
    resets = [-1] * len(real_images)
    for index, after in RESETS.items():
        resets[index] = after
    options = StreamOptions(
        seed=11,
        input_gap_probability=BACKPRESSURE,
        result_delay_probability=BACKPRESSURE,
        reset_after_events=resets,
    )
    network = load_bit_model(real_model).network
    report = run_regression(
        real_model,
        encode_images(real_images, network.tmax, network.imax),
        simulator=simulator,
        options=options,
        work_dir=tmp_path,
        build_root=build_root,
        images=real_images,
    )
    _assert_bit_exact(report)
    assert report.images == sum(REAL_IMAGES[simulator])
    assert (report.cycles > 0).all()


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_early_exit_decisions_are_exact(simulator, real_model, test_splits, build_root, tmp_path):
    """Early exit: decision, its time and every hidden spike up to it; the rest of the image is drained."""
    images = _real_images(test_splits, simulator)[-EARLY_EXIT_IMAGES:]
    network = load_bit_model(real_model).network
    report = run_regression(
        real_model,
        encode_images(images, network.tmax, network.imax),
        simulator=simulator,
        options=StreamOptions(seed=5, input_gap_probability=0.1, early_exit=True),
        work_dir=tmp_path,
        build_root=build_root,
    )
    _assert_bit_exact(report)
    golden = run_golden(network, encode_images(images, network.tmax, network.imax))
    assert (report.decisions == golden.decision).all()


# --- crafted edge cases on small networks (fast builds) ---


def _edge_images(rng: np.random.Generator) -> np.ndarray:
    """All-black, all-white, one pixel, two brightness levels only (many equal times), random."""
    n = SMALL_INPUTS
    rows = [
        np.zeros(n),
        np.full(n, 255),
        np.eye(1, n, 5)[0] * 255,
        np.where(np.arange(n) % 2 == 0, 255, 128),
        *rng.integers(0, 256, size=(12, n)),
        *(rng.integers(0, 2, size=(4, n)) * 255),
    ]
    return np.asarray(rows, dtype=np.uint8)


def _edge_networks() -> dict[str, IntegerNetwork]:
    rng = np.random.default_rng(3)
    hidden, outputs = 12, 6
    signs0 = rng.integers(0, 2, size=(hidden, SMALL_INPUTS), dtype=np.uint8)
    signs1 = rng.integers(0, 2, size=(outputs // 2, hidden), dtype=np.uint8)
    tied = np.repeat(signs1, 2, axis=0)  # outputs 2k and 2k+1 identical: every decision is a tie
    return {
        # outputs tie in time (fired) and in counters (not fired): lowest index wins
        "ties": IntegerNetwork((IntegerLayer(signs0, 3), IntegerLayer(tied, 2)), tmax=TMAX),
        # no output can reach its threshold (> fan-in): decision by the largest final counter
        "silent outputs": IntegerNetwork((IntegerLayer(signs0, 2), IntegerLayer(tied, hidden + 1)), tmax=TMAX),
        # all +1 and threshold = fan-in: counters reach their maximum exactly (all-white image)
        "maximal counters": IntegerNetwork(
            (
                IntegerLayer(np.ones((hidden, SMALL_INPUTS), np.uint8), SMALL_INPUTS),
                IntegerLayer(np.ones((outputs, hidden), np.uint8), hidden),
            ),
            tmax=TMAX,
        ),
        # three layers, sizes not multiples of the lane count
        "three layers": random_network([SMALL_INPUTS, 13, 11, 5], [2, 2, 1], seed=9, tmax=TMAX),
    }


EDGE_NETWORKS = {
    "icarus": ("ties", "silent outputs", "maximal counters", "three layers"),
    "verilator": ("ties", "maximal counters"),  # each network is a separate build: ~30 s with Verilator
}


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_edge_cases_are_bit_exact(simulator, build_root, tmp_path):
    images = _edge_images(np.random.default_rng(0))
    for name in EDGE_NETWORKS[simulator]:
        network = _edge_networks()[name]
        manifest = write_bit_model(network, tmp_path / name.replace(" ", "_"))
        golden = run_golden(network, encode_images(images, network.tmax, network.imax))
        if name == "ties":
            assert (golden.decision % 2 == 0).all()  # the rule under test really is exercised
        if name == "silent outputs":
            assert (golden.decision_time == network.tmax).all()
        if name == "maximal counters":
            assert golden.spike_times[0][1].max() == 0 and (golden.output_counts[1] == 12).all()
        report = run_regression(
            manifest,
            encode_images(images, network.tmax, network.imax),
            simulator=simulator,
            lanes=4,
            options=StreamOptions(seed=2, input_gap_probability=0.3, result_delay_probability=0.3),
            quick_build=True,
            work_dir=tmp_path / f"run_{name.replace(' ', '_')}",
            build_root=build_root,
        )
        print(name, end=": ")
        _assert_bit_exact(report)


def test_random_small_networks_are_bit_exact_on_icarus(build_root, tmp_path, data_dir):
    """Seeded random shapes and lane counts (Icarus builds in about a second)."""
    mnist, _ = load_split("mnist", "test", data_dir)
    rng = np.random.default_rng(2024)
    for trial in range(3):
        hidden = int(rng.integers(3, 40))
        outputs = int(rng.integers(2, 12))
        lanes = int(rng.choice([1, 3, 8, 16]))
        network = random_network(
            [784, hidden, outputs], [int(rng.integers(2, 10)), int(rng.integers(1, 4))], seed=trial
        )
        manifest = write_bit_model(network, tmp_path / f"net{trial}")
        images = mnist[rng.choice(len(mnist), size=6, replace=False)]
        report = run_regression(
            manifest,
            encode_images(images, network.tmax, network.imax),
            simulator="icarus",
            lanes=lanes,
            options=StreamOptions(seed=trial, input_gap_probability=0.2, result_delay_probability=0.2),
            work_dir=tmp_path / f"run{trial}",
            build_root=build_root,
        )
        print(f"784-{hidden}-{outputs} lanes {lanes}", end=": ")
        _assert_bit_exact(report)


# --- a deliberately wrong core must fail the regression ---


def _broken_models(network: IntegerNetwork, folder: Path) -> dict[str, Path]:
    """Bit models that differ from ``network`` by one threshold or one weight bit."""
    first, rest = network.layers[0], network.layers[1:]
    flipped = first.signs.copy()
    flipped[2, 5] ^= 1
    return {
        "threshold + 1": write_bit_model(
            IntegerNetwork((IntegerLayer(first.signs, first.threshold_count + 1), *rest), network.tmax, network.imax),
            folder / "threshold",
        ),
        "one weight bit flipped": write_bit_model(
            IntegerNetwork((IntegerLayer(flipped, first.threshold_count), *rest), network.tmax, network.imax),
            folder / "weight",
        ),
    }


def _check_failure_artefacts(report, simulator: str, inputs: np.ndarray, images: np.ndarray) -> None:
    assert not report.ok and report.mismatch is not None
    index = report.first_failure
    assert (np.load(report.artefacts["inputs"]) == inputs[index : index + 1]).all()
    assert (np.load(report.artefacts["pixels"]) == images[index : index + 1]).all()
    assert report.artefacts["waveform"].stat().st_size > 0
    assert f"--inputs {report.artefacts['inputs']}" in report.reproduce
    assert f"--simulator {simulator}" in report.reproduce


def test_a_wrong_core_fails_with_a_reproducible_first_mismatch_on_icarus(build_root, tmp_path):
    """Cores generated from a bit model one threshold or one weight bit away from the golden one."""
    network = _edge_networks()["ties"]
    images = _edge_images(np.random.default_rng(1))
    inputs = encode_images(images, network.tmax, network.imax)
    for name, manifest in _broken_models(network, tmp_path).items():
        report = run_regression(
            manifest,
            inputs,
            simulator="icarus",
            lanes=4,
            golden_network=network,
            work_dir=tmp_path / f"run_{name.split()[0]}",
            build_root=build_root,
            images=images,
        )
        print(f"{name}: {report.summary()}")
        _check_failure_artefacts(report, "icarus", inputs, images)
        assert report.mismatch.layer == 0 and report.mismatch.what == "spike time"


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_weights_loaded_at_run_time_are_bit_exact_and_a_wrong_one_is_caught(simulator, build_root, tmp_path):
    """The write port loads another model's weights (no rebuild); one flipped bit must then fail."""
    built = _edge_networks()["ties"]
    manifest = write_bit_model(built, tmp_path / "ties")
    other = IntegerNetwork(
        tuple(
            IntegerLayer(
                np.random.default_rng(index).integers(0, 2, layer.signs.shape, np.uint8), layer.threshold_count
            )
            for index, layer in enumerate(built.layers)
        ),
        built.tmax,
        built.imax,
    )
    images = _edge_images(np.random.default_rng(4))
    inputs = encode_images(images, built.tmax, built.imax)
    common = {"simulator": simulator, "lanes": 4, "build_root": build_root, "images": images, "quick_build": True}
    report = run_regression(manifest, inputs, load_network=other, work_dir=tmp_path / "loaded", **common)
    _assert_bit_exact(report)
    flipped = other.layers[1].signs.copy()
    flipped[0, 3] ^= 1
    wrong = IntegerNetwork((other.layers[0], IntegerLayer(flipped, other.layers[1].threshold_count)), built.tmax)
    report = run_regression(
        manifest, inputs, load_network=wrong, golden_network=other, work_dir=tmp_path / "wrong", **common
    )
    print(f"one loaded weight bit flipped: {report.summary()}")
    _check_failure_artefacts(report, simulator, inputs, images)
    assert (report.mismatch.layer, report.mismatch.neuron) in ((1, 0), (-1, -1))


# --- the command line ---


def _bs4nn(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bs4nn.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


def test_cli_reports_bit_exact_images_and_reproduces_a_saved_input(real_model, build_root, tmp_path, data_dir):
    common = ["--manifest", str(real_model), "--build-dir", str(build_root), "--data-dir", str(data_dir)]
    done = _bs4nn(
        "sim",
        "cocotb",
        *common,
        "--images",
        "4",
        "--simulator",
        "icarus",
        "--dataset",
        "fashion-mnist",
        "--work-dir",
        str(tmp_path / "a"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4/4 bit-exact" in done.stdout
    network = load_bit_model(real_model).network
    mnist, _ = load_split("mnist", "test", data_dir)
    saved = tmp_path / "one.npy"
    np.save(saved, encode_images(mnist[:1], network.tmax, network.imax)[0])
    done = _bs4nn(
        "sim",
        "cocotb",
        *common,
        "--inputs",
        str(saved),
        "--simulator",
        "icarus",
        "--backpressure",
        "0.5",
        "--work-dir",
        str(tmp_path / "b"),
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"bit_exact": 1' in done.stdout


def test_cli_bad_input_is_one_line(tmp_path, real_model):
    for args in (
        ["--manifest", str(tmp_path / "nowhere")],
        ["--manifest", str(real_model), "--inputs", str(tmp_path / "missing.npy")],
        ["--manifest", str(real_model), "--backpressure", "2"],
    ):
        done = _bs4nn("sim", "cocotb", *args, "--work-dir", str(tmp_path / "w"), cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


# --- the full regression (documented command: pytest -m slow tests/test_sim_cocotb_core.py) ---


@pytest.mark.slow
def test_full_mnist_test_set_on_a_784_600_10_core_through_verilator(tmp_path, data_dir):
    """10,000 MNIST test images through the shipped 784-600-10 model, Verilator."""
    from bs4nn.export.exporter import export_model, resolve_source

    manifest = export_model(resolve_source("mnist"), tmp_path / "bits", evaluate_accuracy=False).path
    images, _ = load_split("mnist", "test", data_dir)
    network = load_bit_model(manifest).network
    report = run_regression(
        manifest,
        encode_images(images, network.tmax, network.imax),
        simulator="verilator",
        work_dir=tmp_path / "run",
        build_root=tmp_path / "build",
    )
    print(f"{report.bit_exact}/{report.images} bit-exact, {report.images_per_second:.1f} images/s")
    _assert_bit_exact(report)
    assert report.images == 10_000

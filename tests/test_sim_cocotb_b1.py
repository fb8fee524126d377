"""The B1 core under cocotb (Icarus and Verilator), through the same harness as BS4NN's
(``run_regression``, ``tb_core``), scored by the B1 golden model: every hidden spike step, every
output score, the decision.  The slow 10,000-image run: ``pytest -m slow tests/test_sim_cocotb_b1.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_rtl_b1_core import bump_bias, flip_weight, mutated, visible

from bs4nn.export.bitmodel import load_bit_model, write_bit_model
from bs4nn.rtl.b1core import B1CoreParams
from bs4nn.rtl.cycles import clear_cycles, predicted_b1_cycles
from bs4nn.sim.b1 import B1Network, random_b1_network, run_b1
from bs4nn.sim.regress import SIMULATORS, StreamOptions, run_regression
from bs4nn.sim.semantics import encode_images
from bs4nn.train.datasets import load_split

REAL_SIZES, REAL_RAMP, REAL_WINDOW, REAL_BIAS = [784, 40, 10], 250, 40, 4000  # most hidden neurons fire, unsaturated
REAL_IMAGES = 24
BBIT_SIZES, BBIT_RAMP, BBIT_BIAS, BBIT_IMAGES = [784, 32, 10], 400, 12_000, 36
SHIPPED_IMAGES = {"verilator": 20, "icarus": 2}  # the 784-600-10 core: Icarus ~16 s an image
LANES = 8
CENTRE_PIXEL = 14 * 28 + 14


@pytest.fixture(scope="session")
def build_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("b1_sim_build")


@pytest.fixture(scope="session")
def real_b1(tmp_path_factory) -> tuple[B1Network, Path]:
    network = random_b1_network(REAL_SIZES, 1, [REAL_RAMP], [REAL_WINDOW], seed=4)
    biases = np.random.default_rng(4).integers(-REAL_BIAS, REAL_BIAS + 1, size=REAL_SIZES[1])
    network = mutated(network, 0, bias=biases)  # biases of the size of a potential, not of a whole window
    return network, write_bit_model(network, tmp_path_factory.mktemp("b1bits") / "real")


@pytest.fixture(scope="session")
def real_b1_4bit(tmp_path_factory) -> tuple[B1Network, Path]:
    """A random 784-32-10 network of 4-bit weights, biases centred so about half the hidden
    neurons fire on MNIST, few of them saturated."""
    network = random_b1_network(BBIT_SIZES, 4, [BBIT_RAMP], [REAL_WINDOW], seed=7)
    biases = BBIT_BIAS + np.random.default_rng(7).integers(-3000, 3001, size=BBIT_SIZES[1])
    network = mutated(network, 0, bias=biases)
    return network, write_bit_model(network, tmp_path_factory.mktemp("b1bits4") / "real4")


@pytest.fixture(scope="session")
def mnist_images(data_dir) -> np.ndarray:
    return load_split("mnist", "test", data_dir)[0]


def _assert_bit_exact(report) -> None:
    print(report.summary())
    assert report.ok, f"{report.summary()}\nreproduce: {report.reproduce}\nartefacts: {report.artefacts}"


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_random_b1_core_on_real_images_under_backpressure_and_resets(
    simulator, real_b1, mnist_images, build_root, tmp_path
):
    network, manifest = real_b1
    images = mnist_images[:REAL_IMAGES]
    inputs = encode_images(images, network.tmax, network.imax)
    golden = run_b1(network, inputs)
    assert (golden.values[1] > 0).mean() > 0 and (golden.values[1] == REAL_WINDOW).mean() < 1, "unsaturated spikes"
    resets = [-1] * REAL_IMAGES
    resets[3], resets[10] = 0, 40
    options = StreamOptions(
        seed=5, input_gap_probability=0.25, result_delay_probability=0.25, reset_after_events=resets
    )
    report = run_regression(
        manifest, inputs, simulator=simulator, lanes=LANES, options=options, work_dir=tmp_path, build_root=build_root
    )
    _assert_bit_exact(report)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_shipped_mnist_b1_is_bit_exact_and_takes_the_predicted_cycles(simulator, mnist_images, build_root, tmp_path):
    """The shipped 784-600-10 ``mnist-b1`` at its manifest's 16 lanes, real test images; the cycles
    the testbench counts (no gaps) follow :func:`predicted_b1_cycles` exactly."""
    from bs4nn.export.b1export import export_b1_model
    from bs4nn.export.exporter import resolve_source

    manifest = export_b1_model(resolve_source("mnist-b1"), tmp_path / "bits", evaluate_accuracy=False).path
    network = load_bit_model(manifest).network
    model_lanes = load_bit_model(manifest).lanes
    images = mnist_images[: SHIPPED_IMAGES[simulator]]
    inputs = encode_images(images, network.tmax, network.imax)
    report = run_regression(
        manifest, inputs, simulator=simulator, lanes=model_lanes, work_dir=tmp_path / "run", build_root=build_root
    )
    _assert_bit_exact(report)
    params = B1CoreParams.from_network(network, model_lanes)
    predicted = predicted_b1_cycles(params, run_b1(network, inputs))
    # the testbench counts from the first beat it offers, which waits out the clear after the
    # previous result (max W cycles) and one more cycle: the same offset on every image
    assert report.cycles.tolist() == (predicted + clear_cycles(params) + 1).tolist()


def test_random_4_bit_b1_core_on_real_images_through_verilator(real_b1_4bit, mnist_images, build_root, tmp_path):
    """b-bit weights under cocotb: every hidden spike step, every score, the decision of a 784-32-10
    network of 4-bit weights on real MNIST images, and the cycles of the B1 formula."""
    network, manifest = real_b1_4bit
    inputs = encode_images(mnist_images[:BBIT_IMAGES], network.tmax, network.imax)
    golden = run_b1(network, inputs)
    hidden = golden.values[1]
    assert (hidden > 0).mean() > 0.2 and (hidden == REAL_WINDOW).mean() < 0.2, "real, unsaturated spikes"
    report = run_regression(
        manifest, inputs, simulator="verilator", lanes=LANES, work_dir=tmp_path, build_root=build_root, quick_build=True
    )
    _assert_bit_exact(report)
    params = B1CoreParams.from_network(network, LANES)
    assert report.cycles.tolist() == (predicted_b1_cycles(params, golden) + clear_cycles(params) + 1).tolist()


def _mutants(network: B1Network, inputs: np.ndarray) -> dict[str, B1Network]:
    """Networks one weight bit / one ramp or bias unit away from ``network``, each the first
    candidate whose change shows in the golden model on ``inputs``."""
    hidden = network.layers[0].fan_out
    return {
        "flipped weight bit": visible(
            [flip_weight(network, 0, n, CENTRE_PIXEL) for n in range(hidden)], network, inputs
        ),
        "ramp + 1": visible([mutated(network, 0, ramp=network.layers[0].ramp + 1)], network, inputs),
        "ramp - 1": visible([mutated(network, 0, ramp=network.layers[0].ramp - 1)], network, inputs),
        "hidden bias + 1": visible([bump_bias(network, 0, n) for n in range(hidden)], network, inputs),
        "output bias + 1": visible([bump_bias(network, 1, 0)], network, inputs),
    }


def test_mutated_b1_cores_are_caught_on_icarus(real_b1, mnist_images, build_root, tmp_path):
    """Cores generated from a bit model one weight bit, one ramp unit or one bias unit away from
    the golden one: the scoreboard names a first mismatch and saves a reproducer."""
    network, _ = real_b1
    images = mnist_images[:REAL_IMAGES]
    inputs = encode_images(images, network.tmax, network.imax)
    for name, bad in _mutants(network, inputs).items():
        manifest = write_bit_model(bad, tmp_path / name.replace(" ", "_"))
        report = run_regression(
            manifest,
            inputs,
            simulator="icarus",
            lanes=LANES,
            golden_network=network,
            work_dir=tmp_path / f"run_{name.replace(' ', '_')}",
            build_root=build_root,
            failure_waves=False,
        )
        print(f"{name}: {report.summary()}")
        assert not report.ok and report.mismatch is not None, name
        assert report.reproduce and report.artefacts["inputs"].is_file()


@pytest.mark.slow
def test_all_mnist_test_images_through_verilator_on_the_shipped_mnist_b1(tmp_path, mnist_images):
    """10,000 MNIST test images through the shipped 784-600-10 B1 model, Verilator, bit-exact."""
    from bs4nn.export.b1export import export_b1_model
    from bs4nn.export.exporter import resolve_source

    manifest = export_b1_model(resolve_source("mnist-b1"), tmp_path / "bits", evaluate_accuracy=False).path
    network = load_bit_model(manifest).network
    report = run_regression(
        manifest,
        encode_images(mnist_images, network.tmax, network.imax),
        simulator="verilator",
        lanes=load_bit_model(manifest).lanes,
        work_dir=tmp_path / "run",
        build_root=tmp_path / "build",
    )
    print(f"{report.bit_exact}/{report.images} bit-exact, {report.images_per_second:.1f} images/s")
    _assert_bit_exact(report)
    assert report.images == 10_000

"""The portable C inference routine (firmware/c) against the golden model, bit for bit."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bs4nn.errors import Bs4nnError
from bs4nn.export.cheader import HEADER_NAME, c_header
from bs4nn.firmware.c_runtime import build_c_example, build_c_runtime, run_c_inference
from bs4nn.sim.golden import IntegerLayer, IntegerNetwork, random_network, run_golden, run_golden_images
from bs4nn.sim.semantics import layer_spike_times

MNIST_SIZES = [784, 600, 10]
MNIST_THRESHOLDS = [20, 5]  # neurons of a random +-1 net do fire with these


@pytest.fixture(scope="module")
def c_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c_runtime(tmp_path_factory.mktemp("c_build"))


def assert_same_as_golden(c_program: Path, network: IntegerNetwork, images: np.ndarray) -> None:
    golden = run_golden_images(network, images)
    answer = run_c_inference(c_program, network, pixels=images)
    for layer, (want, got) in enumerate(zip(golden.spike_times, answer.spike_times, strict=True)):
        np.testing.assert_array_equal(got, want, err_msg=f"layer {layer} spike times differ")
    np.testing.assert_array_equal(answer.counts[-1], golden.output_counts)
    np.testing.assert_array_equal(answer.decision, golden.decision)
    np.testing.assert_array_equal(answer.decision_time, golden.decision_time)
    # hidden layers' final counters too (the golden result keeps only the output layer's)
    presynaptic = golden.input_times
    for layer, counts in zip(network.layers[:-1], answer.counts[:-1], strict=True):
        presynaptic, want = layer_spike_times(presynaptic, layer.weights(), layer.threshold_count, network.tmax)
        np.testing.assert_array_equal(counts, want)


def test_mnist_random_784_600_10_matches_golden(c_program: Path, mnist_test) -> None:
    images, _ = mnist_test
    network = random_network(MNIST_SIZES, MNIST_THRESHOLDS, seed=1)
    golden = run_golden_images(network, images[:300])
    # The comparison means something only if hidden and output neurons do fire.
    assert (golden.spike_times[0] < network.tmax).mean() > 0.01
    assert (golden.decision_time < network.tmax).mean() > 0.5
    assert_same_as_golden(c_program, network, images[:300])


@pytest.mark.slow
def test_mnist_1000_images_match_golden(c_program: Path, mnist_test) -> None:
    """Done-criterion of the C routine: 1,000 MNIST test images, every spike time equal."""
    images, _ = mnist_test
    assert_same_as_golden(c_program, random_network(MNIST_SIZES, MNIST_THRESHOLDS, seed=1), images[:1000])


def test_early_exit_gives_the_same_decision(c_program: Path, mnist_test) -> None:
    images, _ = mnist_test
    network = random_network(MNIST_SIZES, MNIST_THRESHOLDS, seed=2)
    golden = run_golden_images(network, images[:100])
    early = run_c_inference(c_program, network, pixels=images[:100], early_exit=True)
    np.testing.assert_array_equal(early.decision, golden.decision)
    np.testing.assert_array_equal(early.decision_time, golden.decision_time)
    # Nothing recorded after the decision step.
    assert (early.spike_times[0][early.spike_times[0] < network.tmax] <= early.decision_time.max()).all()


@st.composite
def networks_and_times(draw: st.DrawFn) -> tuple[IntegerNetwork, np.ndarray]:
    n_layers = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 70), min_size=n_layers + 1, max_size=n_layers + 1))
    tmax = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        threshold = draw(st.integers(1, max(1, fan_in // 2)))
        layers.append(IntegerLayer(rng.integers(0, 2, size=(fan_out, fan_in), dtype=np.uint8), threshold))
    batch = draw(st.integers(1, 6))
    # Times beyond tmax (never) included, and many spikes per step (dense path) as well as few.
    times = rng.integers(0, tmax + 3, size=(batch, sizes[0]))
    return IntegerNetwork(tuple(layers), tmax=tmax), times


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=networks_and_times())
def test_any_network_and_spike_times_match_golden(c_program: Path, case) -> None:
    network, times = case
    golden = run_golden(network, times)
    answer = run_c_inference(c_program, network, input_times=times)
    for want, got in zip(golden.spike_times, answer.spike_times, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(answer.counts[-1], golden.output_counts)
    np.testing.assert_array_equal(answer.decision, golden.decision)
    np.testing.assert_array_equal(answer.decision_time, golden.decision_time)


def test_pixel_above_imax_is_an_error(c_program: Path) -> None:
    network = IntegerNetwork((IntegerLayer(np.ones((2, 4), np.uint8), 1),), tmax=8, imax=100)
    with pytest.raises(Bs4nnError, match="pixel above imax"):
        run_c_inference(c_program, network, pixels=np.array([[0, 50, 101, 3]]))


def test_wrong_weight_file_size_is_one_line_error(c_program: Path, tmp_path: Path) -> None:
    bad = tmp_path / "layer0.bin"
    bad.write_bytes(b"\x00" * 3)
    done = subprocess.run(
        [str(c_program), "8", "255", "1", "16", "2", "1", str(bad)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "wrong size" in done.stderr


def test_example_with_the_exporters_header_matches_golden(tmp_path: Path, mnist_test) -> None:
    """The microcontroller-style build: model compiled in from bs4nn_model.h, static buffers."""
    images, _ = mnist_test
    images = images[:50]
    network = random_network(MNIST_SIZES, MNIST_THRESHOLDS, seed=4)
    (tmp_path / HEADER_NAME).write_text(c_header(network, "mnist"))
    program = build_c_example(tmp_path, tmp_path / "build")
    done = subprocess.run([str(program)], input=images.tobytes(), capture_output=True, check=True)
    answers = np.array([line.split() for line in done.stdout.decode().splitlines()], dtype=np.int64)
    golden = run_golden_images(network, images)
    np.testing.assert_array_equal(answers[:, 0], golden.decision)
    np.testing.assert_array_equal(answers[:, 1], golden.decision_time)
    np.testing.assert_array_equal(answers[:, 2:], golden.spike_times[-1])


def test_the_comparison_catches_a_single_flipped_weight(c_program: Path, mnist_test) -> None:
    """Sensitivity check: one flipped sign bit in the C routine's model changes its hidden layer."""
    images, _ = mnist_test
    network = random_network(MNIST_SIZES, MNIST_THRESHOLDS, seed=1)
    golden = run_golden_images(network, images[:20])
    _, hidden_counts = layer_spike_times(golden.input_times, network.layers[0].weights(), 20, network.tmax)
    signs = network.layers[0].signs.copy()
    pixel = int(np.argmin(golden.input_times[0]))  # a pixel that spikes on image 0
    signs[0, pixel] ^= 1
    broken = IntegerNetwork((IntegerLayer(signs, 20), network.layers[1]), tmax=network.tmax)
    answer = run_c_inference(c_program, broken, pixels=images[:20])
    assert answer.counts[0][0, 0] == hidden_counts[0, 0] + (2 if signs[0, pixel] else -2)
    np.testing.assert_array_equal(answer.counts[0][:, 1:], hidden_counts[:, 1:])

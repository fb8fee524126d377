"""The portable C routine (firmware/c) on B1 networks, bit for bit against the B1 golden model
(:mod:`bs4nn.sim.b1`): every decision, score, hidden potential and hidden spike step."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bs4nn.errors import Bs4nnError
from bs4nn.export.cheader import HEADER_NAME, c_header
from bs4nn.export.models import named_model
from bs4nn.firmware.c_runtime import CResult, build_c_example, build_c_runtime, run_c_inference
from bs4nn.sim.b1 import B1Layer, B1Network, layer_potentials, random_b1_network, run_b1
from bs4nn.sim.semantics import encode_images

MNIST_IMAGES = 1000


@pytest.fixture(scope="module")
def c_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c_runtime(tmp_path_factory.mktemp("c_build"))


@pytest.fixture(scope="module")
def mnist_b1():
    return named_model("mnist-b1", "test", say=lambda line: None)


def assert_same_as_b1_golden(network: B1Network, input_times: np.ndarray, answer: CResult) -> None:
    golden = run_b1(network, input_times)
    np.testing.assert_array_equal(answer.decision, golden.decision)
    np.testing.assert_array_equal(answer.counts[-1], golden.scores)
    np.testing.assert_array_equal(answer.decision_time, np.full(len(input_times), network.latency))
    np.testing.assert_array_equal(answer.spike_times[-1], np.full_like(golden.scores, network.latency))
    for index, layer in enumerate(network.layers[:-1]):
        values = golden.values[index + 1]
        steps = np.where(values > 0, layer.window - values, network.latency)
        np.testing.assert_array_equal(answer.spike_times[index], steps, err_msg=f"layer {index} spike steps")
        np.testing.assert_array_equal(answer.counts[index], layer_potentials(golden.values[index], layer))


def test_mnist_b1_1000_test_images_match_the_b1_golden_model(c_program: Path, mnist_b1, mnist_test) -> None:
    """The shipped mnist-b1 (784-600-10, 1-bit) on 1,000 MNIST test images: every field equal."""
    images, labels = mnist_test
    network = mnist_b1.network
    answer = run_c_inference(c_program, network, pixels=images[:MNIST_IMAGES])
    assert_same_as_b1_golden(network, encode_images(images[:MNIST_IMAGES], network.tmax, network.imax), answer)
    assert (answer.decision == labels[:MNIST_IMAGES]).mean() > 0.95  # a trained model, not a random one
    assert 0.05 < (answer.spike_times[0] < network.latency).mean() < 0.95  # hidden neurons do and do not spike


@pytest.mark.parametrize("weight_bits", [1, 2, 3, 5, 8])
def test_random_b_bit_networks_and_spike_times_match(c_program: Path, weight_bits: int) -> None:
    """b-bit weights (fields across byte borders), three layers, inputs that never spike included."""
    network = random_b1_network([37, 13, 7, 5], weight_bits, ramps=[3, 2], windows=[6, 9], seed=weight_bits, tmax=20)
    times = np.random.default_rng(weight_bits).integers(0, 23, size=(12, 37))
    assert_same_as_b1_golden(network, times, run_c_inference(c_program, network, input_times=times))


def test_the_comparison_catches_a_flipped_weight_and_a_bias_off_by_one(c_program: Path) -> None:
    network = random_b1_network([30, 8, 4], 1, ramps=[2], windows=[6], seed=5, tmax=16)
    times = np.random.default_rng(1).integers(0, 16, size=(4, 30))  # every input spikes: value >= 1
    hidden, output = network.layers
    golden = layer_potentials(run_b1(network, times).values[0], hidden)
    flipped = hidden.weights.copy()
    flipped[2, 0] *= -1
    bias = hidden.bias.copy()
    bias[5] += 1
    broken = B1Network((B1Layer(flipped, bias, 1, hidden.ramp, hidden.window), output), tmax=16)
    answer = run_c_inference(c_program, broken, input_times=times)
    values = 16 - times[:, 0]
    np.testing.assert_array_equal(answer.counts[0][:, 2], golden[:, 2] + 2 * flipped[2, 0] * values)
    np.testing.assert_array_equal(answer.counts[0][:, 5], golden[:, 5] + 1)
    with pytest.raises(AssertionError):
        assert_same_as_b1_golden(network, times, answer)


def test_the_exported_b1_header_runs_in_the_microcontroller_example(tmp_path: Path, mnist_b1, mnist_test) -> None:
    """The bit-model folder's own bs4nn_model.h, compiled in with -Werror, static buffers only."""
    images = mnist_test[0][:50]
    network = mnist_b1.network
    assert mnist_b1.manifest["c_header"] == HEADER_NAME
    program = build_c_example(mnist_b1.path, tmp_path / "build")
    done = subprocess.run([str(program)], input=images.tobytes(), capture_output=True, check=True)
    answers = np.array([line.split() for line in done.stdout.decode().splitlines()], dtype=np.int64)
    golden = run_b1(network, encode_images(images, network.tmax, network.imax))
    np.testing.assert_array_equal(answers[:, 0], golden.decision)
    assert (answers[:, 1:] == network.latency).all()


def test_the_b1_header_holds_the_b1_fields() -> None:
    network = random_b1_network([19, 6, 3], 3, ramps=[4], windows=[7], seed=2, tmax=12)
    text = c_header(network, "mnist")
    defines = dict(re.findall(r"^#define (\w+) ([^\\\n]+)$", text, flags=re.M))
    assert (defines["BS4NN_MODEL_FAMILY"], defines["BS4NN_DECISION_LATENCY"]) == ("1", str(network.latency))
    assert (defines["BS4NN_LAYER0_RAMP"], defines["BS4NN_LAYER0_WINDOW"], defines["BS4NN_LAYER1_WEIGHT_BITS"]) == (
        "4",
        "7",
        "3",
    )
    assert "BS4NN_LAYER1_RAMP" not in defines and "THRESHOLD" not in text
    assert defines["BS4NN_LAYER0_ROW_BYTES"] == str(-(-19 * 3 // 8))
    (bias,) = re.findall(r"bs4nn_layer1_bias\[[^\]]*\] BS4NN_UNUSED = \{([^}]*)\}", text)
    assert [int(v) for v in bias.split(",")] == network.layers[1].bias.tolist()


def test_potentials_beyond_32_bits_are_refused_for_c(c_program: Path) -> None:
    weights = np.ones((2, 3), np.int16)
    huge = B1Network((B1Layer(weights, np.array([1 << 40, 0]), 1),), tmax=4)
    with pytest.raises(Bs4nnError, match="32"):
        run_c_inference(c_program, huge, input_times=np.zeros((1, 3), np.int64))

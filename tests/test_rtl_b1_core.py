"""The B1 core (rtl/b1core.py) in Amaranth's simulator against the B1 golden model: every hidden
spike step, every output score, the decision and the cycle count, bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bs4nn.export.layout import network_weight_writes
from bs4nn.rtl.b1core import B1Core, B1CoreParams
from bs4nn.rtl.cycles import predicted_b1_cycles
from bs4nn.rtl.simulate import ImageRun, simulate_core
from bs4nn.sim.b1 import B1Layer, B1Network, B1Result, random_b1_network, run_b1
from bs4nn.sim.semantics import encode_images

MNIST_IMAGES = 3
MNIST_LANES = 16


def hidden_values(run: ImageRun, network: B1Network) -> list[np.ndarray]:
    """Per hidden layer, each neuron's value ``x`` rebuilt from the debug spikes (step = window - x)."""
    values = [np.zeros(layer.fan_out, dtype=np.int64) for layer in network.layers[:-1]]
    for layer, neuron, step in run.spikes:
        assert values[layer][neuron] == 0, f"layer {layer} neuron {neuron} fired twice"
        values[layer][neuron] = network.layers[layer].window - step
    return values


def b1_mismatches(runs: list[ImageRun], golden: B1Result, network: B1Network) -> list[str]:
    """Every difference between the core's answers and the golden model's (empty: bit-exact)."""
    problems = []
    for index, run in enumerate(runs):
        if run.decision != golden.decision[index]:
            problems.append(f"image {index}: decision {run.decision}, golden {golden.decision[index]}")
        if run.counts != golden.scores[index].tolist():
            problems.append(f"image {index}: scores {run.counts}, golden {golden.scores[index].tolist()}")
        if (run.decision_time, set(run.spike_times)) != (network.latency, {network.latency}):
            problems.append(f"image {index}: times {run.decision_time} {run.spike_times}, want {network.latency}")
        for layer, values in enumerate(hidden_values(run, network)):
            if values.tolist() != golden.values[layer + 1][index].tolist():
                problems.append(f"image {index}: layer {layer} spikes differ")
    return problems if len(runs) == len(golden.decision) else [f"{len(runs)} results for {len(golden.decision)}"]


def run_core(network: B1Network, input_times: np.ndarray, lanes: int, **kwargs) -> list[ImageRun]:
    return simulate_core(network, input_times, core=B1Core(network, lanes), max_cycles=10**6, **kwargs)


@st.composite
def b1_cases(draw, weight_bits: tuple[int, ...] = (1,)):
    n_layers = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 12), min_size=n_layers + 1, max_size=n_layers + 1))
    ramps = draw(st.lists(st.integers(1, 9), min_size=n_layers - 1, max_size=n_layers - 1))
    windows = draw(st.lists(st.integers(1, 7), min_size=n_layers - 1, max_size=n_layers - 1))
    tmax = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**16))
    network = random_b1_network(sizes, draw(st.sampled_from(weight_bits)), ramps, windows, seed=seed, tmax=tmax)
    times = np.random.default_rng(seed).integers(0, tmax + 3, size=(draw(st.integers(1, 3)), sizes[0]))
    return network, np.minimum(times, tmax), draw(st.integers(1, 9))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b1_cases())
def test_any_small_b1_network_is_bit_exact_and_takes_the_predicted_cycles(case) -> None:
    check_b1_case(*case)


def check_b1_case(network, input_times, lanes: int) -> None:
    """Every spike step, score and decision equal to ``sim/b1.py``; cycles equal to the formula."""
    golden = run_b1(network, input_times)
    runs = run_core(network, input_times, lanes)
    assert b1_mismatches(runs, golden, network) == []
    params = B1CoreParams.from_network(network, lanes)
    assert [run.cycles for run in runs] == predicted_b1_cycles(params, golden).tolist()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b1_cases(weight_bits=(2, 4, 8)))
def test_any_small_b_bit_network_is_bit_exact_and_takes_the_predicted_cycles(case) -> None:
    """2-, 4- and 8-bit weights: each lane multiplies its weight field by the event's value."""
    check_b1_case(*case)


def test_b_bit_potentials_add_weight_times_tmax_minus_k() -> None:
    # one hidden neuron (ramp 4, window 3), 4-bit weights -8, 7, -3 on 3 inputs, then one output
    hidden = B1Layer(np.array([[-8, 7, -3]]), np.array([2]), 4, ramp=4, window=3)
    output = B1Layer(np.array([[-5]]), np.array([20]), 4)
    network = B1Network((hidden, output), tmax=8)
    # inputs at steps 7, 6, never: V = 2 - 8*1 + 7*2 = 8, x = 2, spike at step 1; score 20 - 5*2
    (run,) = run_core(network, np.array([[7, 6, 8]]), lanes=1)
    assert run.spikes == [(0, 0, 1)]
    assert run.counts == [10]


def test_potentials_start_at_the_bias_and_add_plus_minus_tmax_minus_k() -> None:
    # one hidden neuron (ramp 2, window 3) feeding one output; weights +1, -1, +1 on 3 inputs
    hidden = B1Layer(np.array([[1, -1, 1]]), np.array([1]), 1, ramp=2, window=3)
    output = B1Layer(np.array([[-1]]), np.array([5]), 1)
    network = B1Network((hidden, output), tmax=8)
    # inputs at steps 2, 7, never: V = 1 + (8-2) - (8-7) = 6, x = 3 (clipped), spike at step 0
    (run,) = run_core(network, np.array([[2, 7, 8]]), lanes=1)
    assert run.spikes == [(0, 0, 0)]
    assert run.counts == [5 - 3]


def test_bias_only_image_and_negative_potentials_do_not_spike() -> None:
    network = random_b1_network([5, 7, 3], 1, [2], [4], seed=3, tmax=6)
    empty = np.full((1, 5), 6)  # no input spike: potentials stay at the biases
    golden = run_b1(network, empty)
    runs = run_core(network, empty, lanes=3)
    assert b1_mismatches(runs, golden, network) == []
    assert runs[0].cycles == predicted_b1_cycles(B1CoreParams.from_network(network, 3), golden)[0]


@pytest.mark.parametrize("weight_bits", [1, 8])
def test_run_time_weight_loading_over_empty_memories(weight_bits) -> None:
    """The core's ``weights`` port takes whole words (8 bits x 4 lanes = 32-bit words)."""
    network = random_b1_network([6, 9, 4], weight_bits, [3], [5], seed=5, tmax=10)
    writes = [tuple(int(v) for v in row) for row in network_weight_writes(network, 4)]
    times = np.random.default_rng(1).integers(0, 11, size=(3, 6))
    core = B1Core(network, 4, weight_init=False)
    runs = simulate_core(network, times, core=core, weight_writes=writes, max_cycles=10**6)
    assert b1_mismatches(runs, run_b1(network, times), network) == []


def mutated(network: B1Network, layer: int, **changes) -> B1Network:
    layers = list(network.layers)
    layers[layer] = dataclasses.replace(layers[layer], **changes)
    return dataclasses.replace(network, layers=tuple(layers))


def flip_weight(network: B1Network, layer: int, neuron: int, presynaptic: int) -> B1Network:
    weights = network.layers[layer].weights.copy()
    weights[neuron, presynaptic] *= -1
    return mutated(network, layer, weights=weights)


def flip_low_weight_bit(network: B1Network, layer: int, neuron: int, presynaptic: int) -> B1Network:
    """A b-bit weight with its least significant bit flipped (still in range: two's complement)."""
    weights = network.layers[layer].weights.copy()
    weights[neuron, presynaptic] ^= 1
    return mutated(network, layer, weights=weights)


def bump_bias(network: B1Network, layer: int, neuron: int) -> B1Network:
    bias = network.layers[layer].bias.copy()
    bias[neuron] += 1
    return mutated(network, layer, bias=bias)


def visible(mutations, network: B1Network, input_times: np.ndarray) -> B1Network:
    """The first of ``mutations`` that changes the golden model's answer on these inputs (a
    hidden bias one off, say, only shows where a potential sits at a multiple of the ramp)."""
    golden = run_b1(network, input_times)
    for bad in mutations:
        other = run_b1(bad, input_times)
        pairs = zip([*golden.values, golden.scores], [*other.values, other.scores], strict=True)
        if any((want != have).any() for want, have in pairs):
            return bad
    raise AssertionError("no mutation changes the model on these inputs: pick other inputs")


MUTATIONS = {
    "flipped-weight-bit": lambda net: [flip_weight(net, 0, n, j) for n in range(6) for j in range(8)],
    "ramp-plus-one": lambda net: [mutated(net, 0, ramp=net.layers[0].ramp + 1)],
    "ramp-minus-one": lambda net: [mutated(net, 0, ramp=net.layers[0].ramp - 1)],
    "hidden-bias-plus-one": lambda net: [bump_bias(net, 0, n) for n in range(6)],
    "output-bias-plus-one": lambda net: [bump_bias(net, 1, 0)],
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_mutated_core_is_caught(mutation) -> None:
    """A core built from a network one bit / one unit off disagrees with the golden model of the
    real one: the comparison the tests above rely on can fail."""
    network = random_b1_network([8, 6, 4], 1, [5], [6], seed=2, tmax=12)
    times = np.random.default_rng(7).integers(0, 15, size=(6, 8)).clip(0, 12)
    golden = run_b1(network, times)
    assert b1_mismatches(run_core(network, times, 2), golden, network) == []
    bad = visible(MUTATIONS[mutation](network), network, times)
    runs = simulate_core(bad, times, core=B1Core(bad, 2), max_cycles=10**6)
    assert b1_mismatches(runs, golden, network) != []


def test_a_b_bit_core_one_weight_bit_off_is_caught() -> None:
    network = random_b1_network([8, 6, 4], 4, [9], [6], seed=3, tmax=12)
    times = np.random.default_rng(8).integers(0, 15, size=(6, 8)).clip(0, 12)
    golden = run_b1(network, times)
    assert b1_mismatches(run_core(network, times, 4), golden, network) == []
    bad = visible([flip_low_weight_bit(network, layer, 1, 2) for layer in (0, 1)], network, times)
    assert b1_mismatches(run_core(bad, times, 4), golden, network) != []


def test_shipped_mnist_b1_on_real_test_images(tmp_path, mnist_test) -> None:
    """The shipped 784-600-10 ``mnist-b1`` (exported as a user would), real MNIST test images:
    every hidden spike, every score, the decision and the cycles equal the golden model's."""
    from bs4nn.export import cli as export_cli
    from bs4nn.export.bitmodel import load_bit_model

    assert export_cli.main(["--to-bits", "mnist-b1", "-o", str(tmp_path / "b1"), "--quiet"]) == 0
    network = load_bit_model(tmp_path / "b1").network
    images, _ = mnist_test
    input_times = encode_images(images[:MNIST_IMAGES], network.tmax, network.imax)
    golden = run_b1(network, input_times)
    assert (golden.values[1] > 0).sum() > 0, "hidden neurons must fire for a real test"
    runs = run_core(network, input_times, MNIST_LANES)
    assert b1_mismatches(runs, golden, network) == []
    params = B1CoreParams.from_network(network, MNIST_LANES)
    assert [run.cycles for run in runs] == predicted_b1_cycles(params, golden).tolist()

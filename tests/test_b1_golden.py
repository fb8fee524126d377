"""The B1 contract: the vectorised closed form against a literal step-by-step simulation of the
slope/ramp dynamics, and the trainer's forward pass against the golden model, on random networks
with 1- to 8-bit weights."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.sim.b1 import B1Layer, B1Network, random_b1_network, run_b1, weight_range
from bs4nn.train.b1_model import B1Shape, Parameters, b1_network, forward


def step_simulation(network: B1Network, input_times: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Literal reading of the contract, one time step at a time (vectorised over the batch only).

    Phase 1 of layer l runs through the previous layer's window: at each step, the spikes of that
    step add their weights to the slopes, then every potential grows by its slope.  Phase 2 runs
    through the layer's own window: the slope is the ramp, and a neuron fires at the first step
    whose potential reaches ``window * ramp``.  Returns every hidden layer's spike steps (window
    where silent) and the output potentials.
    """
    batch = input_times.shape[0]
    spike_steps, window_in = np.asarray(input_times), network.tmax
    hidden_steps = []
    for layer in network.layers:
        weights = layer.weights.astype(np.int64)
        potential = np.tile(layer.bias, (batch, 1))
        slope = np.zeros_like(potential)
        for step in range(window_in):
            slope += (spike_steps == step).astype(np.int64) @ weights.T
            potential += slope
        if not layer.hidden:
            return hidden_steps, potential
        fired = np.full(potential.shape, layer.window)
        for step in range(layer.window):
            crossing = (potential >= layer.window * layer.ramp) & (fired == layer.window)
            fired[crossing] = step
            potential += layer.ramp
        hidden_steps.append(fired)
        spike_steps, window_in = fired, layer.window
    raise AssertionError("a B1 network ends with an output layer")


@st.composite
def networks_and_inputs(draw):
    bits = draw(st.integers(1, 8))
    tmax = draw(st.integers(1, 12))
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    low, high = weight_range(bits)
    layers = []
    for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        values = st.sampled_from([-1, 1]) if bits == 1 else st.integers(low, high)
        weights = np.array(draw(st.lists(values, min_size=n_in * n_out, max_size=n_in * n_out)))
        bias = np.array(draw(st.lists(st.integers(-300, 300), min_size=n_out, max_size=n_out)))
        hidden = index < len(sizes) - 2
        ramp, window = (draw(st.integers(1, 40)), draw(st.integers(1, 9))) if hidden else (None, None)
        layers.append(B1Layer(weights.reshape(n_out, n_in), bias, bits, ramp, window))
    batch = draw(st.integers(1, 4))
    times = draw(st.lists(st.integers(0, tmax), min_size=batch * sizes[0], max_size=batch * sizes[0]))
    return B1Network(tuple(layers), tmax=tmax), np.array(times).reshape(batch, sizes[0])


@settings(max_examples=300, deadline=None)
@given(networks_and_inputs())
def test_closed_form_equals_step_simulation(case):
    """Every hidden spike step and every output score, 1- to 8-bit weights."""
    network, inputs = case
    result = run_b1(network, inputs, chunk=3)
    hidden_steps, scores = step_simulation(network, inputs)
    for layer, steps in enumerate(hidden_steps):
        window = network.layers[layer].window
        assert np.array_equal(window - result.values[layer + 1], steps)
    assert np.array_equal(result.scores, scores)
    assert np.array_equal(result.decision, np.argmax(scores, axis=1))


def test_ties_go_to_the_lowest_index_and_silent_pixels_count_zero():
    layer = B1Layer(np.array([[1, 1], [1, 1], [-1, -1]]), np.array([0, 0, 5]), 1)
    network = B1Network((layer,), tmax=4)
    result = run_b1(network, np.array([[4, 4], [1, 4]]))  # step 4 = tmax: never spikes
    assert result.scores.tolist() == [[0, 0, 5], [3, 3, 2]]
    assert result.decision.tolist() == [2, 0]


@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(1, 8),
    hidden=st.lists(st.integers(1, 12), min_size=0, max_size=2),
    seed=st.integers(0, 2**16),
    tmax=st.sampled_from([8, 256]),
)
def test_trainer_forward_is_the_integer_network(bits, hidden, seed, tmax):
    """The training forward (real proxies) gives the golden model's values and scores exactly."""
    rng = np.random.default_rng(seed)
    sizes = (20, *hidden, 5)
    shape = B1Shape(sizes, tmax, tuple(int(w) for w in rng.integers(1, 17, size=len(hidden))), bits)
    params = Parameters(
        [rng.normal(0, 0.3, size=(n_out, n_in)).astype(np.float32) for n_in, n_out in itertools.pairwise(sizes)],
        [np.array([rng.normal(-2, 1.5)], dtype=np.float32) for _ in sizes[1:]],
        [rng.normal(0, 2, size=n).astype(np.float32) for n in sizes[1:]],
    )
    times = rng.integers(0, tmax + 1, size=(7, sizes[0]))
    run = forward(params, times, shape)
    network = b1_network(params.weights, params.scales(), params.biases, shape, 255)
    golden = run_b1(network, times)
    for ours, theirs in zip(run.values, golden.values, strict=True):
        assert np.array_equal(ours, theirs)
    assert np.array_equal(run.scores, golden.scores)
    assert np.array_equal(np.argmax(run.logits, axis=1), golden.decision)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(weight_bits=9), "weight_bits must be in 1..8"),
        (dict(weight_bits=0), "weight_bits must be in 1..8"),
        (dict(ramp=0), "ramp must be >= 1"),
        (dict(window=0), "window must be >= 1"),
        (dict(weights=np.array([[2, 1]])), "1-bit weights must lie in -1..1"),
        (dict(weights=np.array([[0, 1]])), "no 0"),
        (dict(bias=np.array([0.5])), "bias must be 1 integers"),
    ],
)
def test_layer_refuses_what_the_contract_forbids(change, message):
    fields = dict(weights=np.array([[1, -1]]), bias=np.array([3]), weight_bits=1, ramp=2, window=4)
    with pytest.raises(ValueError, match=message):
        B1Layer(**{**fields, **change})


def test_network_refuses_a_potential_wider_than_declared():
    hidden = B1Layer(np.ones((3, 4), dtype=int), np.zeros(3, dtype=int), 1, 1, 8, potential_bits=8)
    output = B1Layer(np.ones((2, 3), dtype=int), np.zeros(2, dtype=int), 1)
    with pytest.raises(ValueError, match="overflow the declared 8 bits"):
        B1Network((hidden, output), tmax=256)  # 4 inputs x 256 = 1024 needs 12 bits
    assert B1Network((hidden, output), tmax=31).layers[0].needed_potential_bits(31) == 8


def test_random_network_runs_and_reports_spikes():
    network = random_b1_network([30, 8, 6, 4], 3, ramps=[5, 2], windows=[8, 4], seed=1, tmax=16)
    result = run_b1(network, np.random.default_rng(2).integers(0, 17, size=(9, 30)))
    assert len(result.spikes_per_neuron()) == 3 and result.scores.shape == (9, 4)
    assert network.latency == 16 + 8 + 4

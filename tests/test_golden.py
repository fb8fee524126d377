"""The golden model against a plain step-by-step reference written here, on random nets."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.sim.golden import (
    IntegerLayer,
    IntegerNetwork,
    decision_line,
    decision_statistics,
    golden_summary,
    random_network,
    run_golden,
    trace_potentials,
)


def reference_run(network: IntegerNetwork, input_times: np.ndarray):
    """Literal reading of the README's rules: one image, one step, one neuron at a time."""
    tmax = network.tmax
    spikes = [list(input_times)]
    counters = [[0] * layer.fan_out for layer in network.layers]
    fired = [[tmax] * layer.fan_out for layer in network.layers]
    for step in range(tmax):
        for index, layer in enumerate(network.layers):
            pre = spikes[0] if index == 0 else fired[index - 1]
            for j in range(layer.fan_out):
                for i in range(layer.fan_in):
                    if pre[i] == step:
                        counters[index][j] += 1 if layer.signs[j, i] else -1
                if fired[index][j] == tmax and counters[index][j] >= layer.threshold_count:
                    fired[index][j] = step
    out = fired[-1]
    if min(out) < tmax:
        decision, when = out.index(min(out)), min(out)
    else:
        decision, when = counters[-1].index(max(counters[-1])), tmax
    return fired, counters[-1], decision, when


@st.composite
def networks_and_inputs(draw):
    tmax = draw(st.integers(1, 12))
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    layers = []
    for n_in, n_out in itertools.pairwise(sizes):
        signs = np.array(draw(st.lists(st.integers(0, 1), min_size=n_in * n_out, max_size=n_in * n_out)))
        layers.append(IntegerLayer(signs.reshape(n_out, n_in), draw(st.integers(1, 4))))
    batch = draw(st.integers(1, 4))
    times = draw(st.lists(st.integers(0, tmax), min_size=batch * sizes[0], max_size=batch * sizes[0]))
    return IntegerNetwork(tuple(layers), tmax=tmax), np.array(times).reshape(batch, sizes[0])


@settings(max_examples=300, deadline=None)
@given(networks_and_inputs())
def test_golden_equals_step_by_step_reference(case):
    network, inputs = case
    result = run_golden(network, inputs, chunk=2)
    for row in range(len(inputs)):
        fired, counters, decision, when = reference_run(network, inputs[row])
        for layer_index, layer_times in enumerate(fired):
            assert result.spike_times[layer_index][row].tolist() == layer_times
        assert result.output_counts[row].tolist() == counters
        assert int(result.decision[row]) == decision
        assert int(result.decision_time[row]) == when
        spiked = [list(inputs[row]), *fired]
        expected_until = [sum(t <= when and t < network.tmax for t in times) for times in spiked]
        assert result.spikes_until_decision[row].tolist() == expected_until


def test_trace_crosses_threshold_at_spike_time(mnist_test):
    network = random_network([784, 40, 10], [8, 3], seed=3)
    images = mnist_test[0][:20]
    from bs4nn.sim.semantics import encode_images

    times = encode_images(images)
    result = run_golden(network, times)
    for row in range(len(images)):
        traces = trace_potentials(network, times[row])
        for layer_index, (trace, layer) in enumerate(zip(traces, network.layers, strict=True)):
            crossed = trace >= layer.threshold_count
            first = np.where(crossed.any(axis=0), crossed.argmax(axis=0), network.tmax)
            assert first.tolist() == result.spike_times[layer_index][row].tolist()
        assert traces[-1][-1].tolist() == result.output_counts[row].tolist()


def test_real_images_order_independent_of_chunking(mnist_test):
    network = random_network([784, 100, 10], [20, 5], seed=1)
    images = mnist_test[0][:300]
    from bs4nn.sim.golden import run_golden_images

    a = run_golden_images(network, images, chunk=7, workers=1)
    b = run_golden_images(network, images, chunk=300, workers=2)
    for x, y in zip(a.spike_times, b.spike_times, strict=True):
        assert np.array_equal(x, y)
    assert np.array_equal(a.decision, b.decision)
    assert (a.spike_times[0] < network.tmax).any(), "the test net must actually fire"


def test_spikes_until_decision_never_counts_missing_spikes():
    """No output fires (decision time tmax): neurons that never spiked are not counted."""
    network = IntegerNetwork((IntegerLayer(np.ones((3, 5), np.uint8), 99),), tmax=16)
    result = run_golden(network, np.array([[0, 3, 16, 16, 16], [16, 16, 16, 16, 16]]))
    assert (result.decision_time == 16).all()
    assert result.spikes_until_decision.tolist() == [[2, 0], [0, 0]]


def test_tied_decisions_and_the_authors_lenient_score():
    """Outputs 1 and 2 cross in the same step (the tie rule picks 1); output 0 never fires."""
    signs = np.array([[0, 0], [1, 1], [1, 1]], np.uint8)  # output 0: -1 per input, outputs 1, 2: +1
    network = IntegerNetwork((IntegerLayer(signs, 2),), tmax=8)
    result = run_golden(network, np.array([[1, 3], [1, 3], [8, 8]]))
    assert result.decision.tolist() == [1, 1, 0]  # third image: nobody fires, largest counter (all 0)
    assert result.tied(network.tmax).tolist() == [True, True, False]  # a silent image is no tie
    labels = np.array([1, 2, 1])
    assert result.accuracy(labels) == 1 / 3  # honest: the label-2 tie is lost
    assert result.accuracy_ties_lenient(labels, network.tmax) == 2 / 3  # the tie counted as correct


def test_decision_statistics_of_a_known_network():
    """One input per output, each output fires at its input's step (count 1); 20 images.

    Image k (k = 0..18) spikes its input at step k + 1, so its first output spike decides at k + 1;
    image 19 has no input spike, so nothing fires and the largest counter decides at tmax.
    """
    tmax = 32
    network = IntegerNetwork((IntegerLayer(np.eye(2, dtype=np.uint8), 1),), tmax=tmax)
    times = np.full((20, 2), tmax)
    times[:19, 0] = np.arange(1, 20)
    result = run_golden(network, times)
    figures = decision_statistics(result, tmax)
    assert figures["first_spike_decisions"] == 19 / 20
    assert figures["no_output_spike"] == 1
    assert figures["mean_decision_time"] == (sum(range(1, 20)) + tmax) / 20
    assert figures["p95_decision_time"] == 19  # 19 of 20 images (95 %) are decided by step 19
    assert figures["mean_spikes_until_decision"] == [19 / 20, 19 / 20]
    line = decision_line(figures)
    assert "first-spike decisions 95.0 % (1 by the largest counter at tmax)" in line
    assert "mean 11.1, 95th percentile 19" in line and "(input first) 0.9, 0.9" in line
    summary = golden_summary(result, np.zeros(20, np.int64), tmax, 1.0)
    assert {key: summary[key] for key in figures} == figures  # every report quotes the same figures

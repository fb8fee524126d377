"""The regression's stimulus and scoreboard rules, without a simulator (fast, exhaustive-ish)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.sim.golden import random_network, run_golden
from bs4nn.sim.scoreboard import ImageResult, first_mismatch, spike_events, stream_spike_times
from bs4nn.sim.semantics import address_events

TMAX = 16


@st.composite
def spike_time_rows(draw, tmax: int = TMAX):
    n = draw(st.integers(1, 40))
    return np.asarray(draw(st.lists(st.integers(0, tmax + 3), min_size=n, max_size=n)), np.int64)


@given(spike_time_rows())
def test_address_events_are_the_inputs_in_time_order(times):
    events = address_events(times, TMAX)
    assert events.dtype == np.int32 and events.shape[1] == 2
    # every spiking pixel once, never-spiking pixels left out
    assert sorted(events[:, 0].tolist()) == np.flatnonzero(times < TMAX).tolist()
    assert (events[:, 1] == times[events[:, 0]]).all()
    # time order, ties lowest pixel first
    keys = events[:, 1].astype(np.int64) * len(times) + events[:, 0]
    assert (np.diff(keys) > 0).all()


@given(st.lists(spike_time_rows(), min_size=1, max_size=3))
def test_spike_events_round_trip(layers):
    events = spike_events(layers, TMAX)
    times, problems = stream_spike_times(events, [len(layer) for layer in layers], TMAX)
    assert problems == []
    for want, got in zip(layers, times, strict=True):
        assert (np.minimum(want, TMAX) == got).all()
    assert (np.diff(events[:, 2]) >= 0).all()


def _golden_images(seed: int = 0, n: int = 6):
    network = random_network([20, 8, 4], [2, 2], seed=seed, tmax=TMAX)
    inputs = np.random.default_rng(seed).integers(0, TMAX + 4, size=(n, 20))
    result = run_golden(network, inputs)
    return network, [ImageResult.from_golden(result, i, TMAX) for i in range(n)]


def _copy(result: ImageResult) -> ImageResult:
    return ImageResult(
        result.output_times.copy(),
        result.output_counts.copy(),
        result.decision,
        result.decision_time,
        result.spike_events.copy(),
    )


def test_golden_matches_itself_and_reordered_streams():
    network, images = _golden_images()
    sizes = network.sizes[1:]
    for image in images:
        assert first_mismatch(image, _copy(image), sizes, TMAX) is None
        # within one step the hardware may emit layers/neurons in any order
        got = _copy(image)
        events = got.spike_events
        got.spike_events = events[np.lexsort((-events[:, 1], events[:, 2]))]
        assert first_mismatch(image, got, sizes, TMAX) is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 5), st.integers(0, 10_000), st.integers(1, 3))
def test_a_moved_spike_is_named_with_its_layer_neuron_and_step(image_index, pick, shift):
    network, images = _golden_images()
    expected = images[image_index]
    if len(expected.spike_events) == 0:
        return
    got = _copy(expected)
    row = pick % len(got.spike_events)
    layer, neuron, step = got.spike_events[row].tolist()
    got.spike_events[row, 2] = step + shift if step + shift < TMAX else step - shift
    if got.spike_events[row, 2] < 0:
        got.spike_events[row, 2] = step + 1
    got.spike_events = got.spike_events[np.argsort(got.spike_events[:, 2], kind="stable")]
    mismatch = first_mismatch(expected, got, network.sizes[1:], TMAX)
    assert mismatch is not None
    assert (mismatch.layer, mismatch.neuron, mismatch.what) == (layer, neuron, "spike time")
    assert mismatch.step == min(step, int(got.spike_events[got.spike_events[:, :2].tolist().index([layer, neuron]), 2]))
    assert mismatch.expected == step


def test_the_earliest_of_several_differences_is_reported():
    network, images = _golden_images(seed=1, n=10)
    expected = max(images, key=lambda image: len(image.spike_events))
    assert len(expected.spike_events) >= 2
    got = _copy(expected)
    got.spike_events = got.spike_events[1:]  # drop the earliest spike ...
    got.output_counts[0] += 1  # ... and break a counter (reported at the end, tmax)
    mismatch = first_mismatch(expected, got, network.sizes[1:], TMAX)
    layer, neuron, step = expected.spike_events[0].tolist()
    assert (mismatch.layer, mismatch.neuron, mismatch.step, mismatch.got) == (layer, neuron, step, TMAX)
    assert "spike time differs at step" in mismatch.describe()


def test_stream_problems_are_caught():
    network, images = _golden_images(seed=2, n=10)
    sizes = network.sizes[1:]
    expected = max(images, key=lambda image: len(image.spike_events))
    twice = _copy(expected)
    twice.spike_events = np.concatenate([twice.spike_events, twice.spike_events[-1:]])
    assert first_mismatch(expected, twice, sizes, TMAX).what == "second spike"
    backwards = _copy(expected)
    late = backwards.spike_events[-1].copy()
    backwards.spike_events = np.concatenate([backwards.spike_events, [[late[0], (late[1] + 1) % sizes[late[0]], 0]]])
    assert first_mismatch(expected, backwards, sizes, TMAX) is not None
    out_of_range = _copy(expected)
    out_of_range.spike_events = np.concatenate([out_of_range.spike_events, [[len(sizes), 0, 1]]])
    assert first_mismatch(expected, out_of_range, sizes, TMAX).what == "event out of range"


def test_result_fields_are_compared():
    network, images = _golden_images(seed=3)
    sizes = network.sizes[1:]
    expected = images[0]
    wrong_decision = _copy(expected)
    wrong_decision.decision = (expected.decision + 1) % sizes[-1]
    assert first_mismatch(expected, wrong_decision, sizes, TMAX).what == "decision"
    wrong_time = _copy(expected)
    wrong_time.decision_time = expected.decision_time - 1
    assert first_mismatch(expected, wrong_time, sizes, TMAX).what == "decision time"
    wrong_result_time = _copy(expected)
    wrong_result_time.output_times[1] = (expected.output_times[1] + 1) % (TMAX + 1)
    mismatch = first_mismatch(expected, wrong_result_time, sizes, TMAX)
    assert (mismatch.what, mismatch.layer, mismatch.neuron) == ("result spike time", len(sizes) - 1, 1)
    wrong_count = _copy(expected)
    wrong_count.output_counts[2] -= 1
    mismatch = first_mismatch(expected, wrong_count, sizes, TMAX)
    assert (mismatch.what, mismatch.neuron, mismatch.step) == ("final counter", 2, TMAX)

"""Stimulus and scoreboard of the hardware regressions: what goes in, what must come out.

The stimulus of an image is its address-event stream, :func:`bs4nn.sim.semantics.address_events`.  The scoreboard takes
what the golden model (:func:`bs4nn.sim.golden.run_golden`) says about the image and what the
hardware reported, and names the FIRST differing event: the earliest step at which the two
disagree, then the lowest layer, then the lowest neuron.  Nothing here depends on cocotb, so the
rules are unit-tested without a simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bs4nn.sim.b1 import B1Network, B1Result, run_b1
from bs4nn.sim.golden import GoldenResult, IntegerNetwork, run_golden


def spike_events(spike_times: Sequence[np.ndarray], tmax: int) -> np.ndarray:
    """``(n, 3)`` int32 ``(layer, neuron, time)`` of one image, sorted by time, layer, neuron.

    ``spike_times`` holds one vector per layer (``tmax`` = never fired).
    """
    rows = []
    for layer, times in enumerate(spike_times):
        times = np.asarray(times)
        neurons = np.flatnonzero(times < tmax)
        rows.append(np.stack([np.full(len(neurons), layer), neurons, times[neurons]], axis=1))
    events = np.concatenate(rows, axis=0).astype(np.int32) if rows else np.zeros((0, 3), np.int32)
    return events[np.lexsort((events[:, 1], events[:, 0], events[:, 2]))]


@dataclass
class ImageResult:
    """What one image produced, on either side of the comparison.

    ``spike_events`` is the ``(n, 3)`` stream of ``(layer, neuron, time)`` spikes of every neuron
    layer (layer 0 = first hidden layer, the last = the outputs), in the order it was produced;
    ``output_times`` are the output spike times of the result (both are checked).
    """

    output_times: np.ndarray  # (n_out,) int, tmax = never fired
    output_counts: np.ndarray  # (n_out,) int, counters after the last step
    decision: int
    decision_time: int
    spike_events: np.ndarray

    @classmethod
    def from_golden(cls, result: GoldenResult, index: int, tmax: int) -> ImageResult:
        """The expectation for image ``index`` of a golden-model run."""
        layers = [times[index] for times in result.spike_times]
        return cls(
            output_times=np.asarray(result.spike_times[-1][index], np.int64),
            output_counts=np.asarray(result.output_counts[index], np.int64),
            decision=int(result.decision[index]),
            decision_time=int(result.decision_time[index]),
            spike_events=spike_events(layers, tmax),
        )

    @classmethod
    def from_b1(cls, result: B1Result, index: int, network: B1Network) -> ImageResult:
        """The expectation of a B1 core for image ``index``: hidden spikes at ``window - x``, the
        scores as output counters, no output spike, every time field ("never", the decision
        step) at the decision latency."""
        hidden = [
            np.where(values[index] > 0, layer.window - values[index], network.latency)
            for values, layer in zip(result.values[1:], network.layers[:-1], strict=True)
        ]
        n_out = network.layers[-1].fan_out
        return cls(
            output_times=np.full(n_out, network.latency, np.int64),
            output_counts=np.asarray(result.scores[index], np.int64),
            decision=int(result.decision[index]),
            decision_time=network.latency,
            spike_events=spike_events([*hidden, np.full(n_out, network.latency)], network.latency),
        )


@dataclass(frozen=True)
class Mismatch:
    """The first event at which hardware and golden model disagree."""

    layer: int  # neuron layer (0 = first hidden layer; the output layer is the last); -1: the decision
    neuron: int  # -1: not about one neuron
    step: int  # time step of the disagreement (tmax: at the end of the image)
    expected: int | str
    got: int | str
    what: str  # "spike time", "final counter", "decision", "decision time", "stream order", ...

    def describe(self) -> str:
        where = "decision" if self.layer < 0 else f"layer {self.layer} neuron {self.neuron}"
        return f"{self.what} differs at step {self.step}, {where}: expected {self.expected}, got {self.got}"


def stream_spike_times(
    events: np.ndarray, layer_sizes: Sequence[int], tmax: int, ordered: bool = True
) -> tuple[list[np.ndarray], list]:
    """Per neuron layer, the first reported time of each neuron, plus stream problems found.

    Problems are ``(layer, neuron, step, what, expected, got)``: a neuron reported twice, an
    address out of range, a time outside ``0..tmax-1``, or (``ordered``) a stream that goes back in
    time: BS4NN cores emit in time order, B1 cores each layer's spikes in neuron order.
    """
    events = np.asarray(events, dtype=np.int64).reshape(-1, 3)
    times = [np.full(size, tmax, np.int64) for size in layer_sizes]
    problems = []
    last_time = -1
    for layer, neuron, time in events.tolist():
        if not (0 <= layer < len(layer_sizes) and 0 <= neuron < layer_sizes[layer]) or not 0 <= time < tmax:
            problems.append((layer, neuron, time, "event out of range", "a valid (layer, neuron, time)", "reported"))
            continue
        if ordered and time < last_time:
            problems.append((layer, neuron, time, "stream order", f"time >= {last_time}", time))
        last_time = max(last_time, time)
        if times[layer][neuron] < tmax:
            problems.append((layer, neuron, time, "second spike", "one spike", f"again at {time}"))
            continue
        times[layer][neuron] = time
    return times, problems


def expected_results(network: IntegerNetwork | B1Network, input_times: np.ndarray) -> list[ImageResult]:
    """The golden model's expectation of every image, for either family's core."""
    if isinstance(network, B1Network):
        result = run_b1(network, input_times)
        return [ImageResult.from_b1(result, index, network) for index in range(len(input_times))]
    golden = run_golden(network, input_times)
    return [ImageResult.from_golden(golden, index, network.tmax) for index in range(len(input_times))]


def time_horizon(network: IntegerNetwork | B1Network) -> int:
    """The "never" of a family's time fields: ``tmax`` (BS4NN), the decision latency (B1)."""
    return network.latency if isinstance(network, B1Network) else network.tmax


def first_mismatch(
    expected: ImageResult, got: ImageResult, layer_sizes: Sequence[int], tmax: int, ordered: bool = True
) -> Mismatch | None:
    """The earliest disagreement (step, then layer, then neuron), or ``None`` if bit-exact.

    ``layer_sizes`` are the neuron layers' sizes (``network.sizes[1:]``).  Checked: every spike
    of the stream (time, uniqueness, order), the result's output spike times, the final output
    counters, the decision time and the decision.
    """
    candidates: list[tuple[int, int, int, int, Mismatch]] = []

    def add(layer: int, neuron: int, step: int, what: str, want, have, rank: int = 0) -> None:
        mismatch = Mismatch(layer, neuron, int(step), want, have, what)
        candidates.append((int(step), rank, layer, neuron, mismatch))

    def compare_times(layer: int, want: np.ndarray, have: np.ndarray, what: str, rank: int) -> None:
        want, have = np.asarray(want, np.int64), np.asarray(have, np.int64)
        if want.shape != have.shape:
            add(layer, -1, 0, f"{what} count", len(want), len(have), rank)
            return
        for neuron in np.flatnonzero(want != have).tolist():
            add(layer, neuron, min(want[neuron], have[neuron]), what, int(want[neuron]), int(have[neuron]), rank)

    expected_times, _ = stream_spike_times(expected.spike_events, layer_sizes, tmax)
    got_times, problems = stream_spike_times(got.spike_events, layer_sizes, tmax, ordered)
    for layer, neuron, step, what, want, have in problems:
        add(layer, neuron, step, what, want, have)
    for layer, (want, have) in enumerate(zip(expected_times, got_times, strict=True)):
        compare_times(layer, want, have, "spike time", rank=0)
    output_layer = len(layer_sizes) - 1
    compare_times(output_layer, expected.output_times, got.output_times, "result spike time", rank=1)
    want_counts = np.asarray(expected.output_counts, np.int64)
    have_counts = np.asarray(got.output_counts, np.int64)
    if want_counts.shape != have_counts.shape:
        add(output_layer, -1, tmax, "output counter count", len(want_counts), len(have_counts), rank=2)
    else:
        for neuron in np.flatnonzero(want_counts != have_counts).tolist():
            add(output_layer, neuron, tmax, "final counter", int(want_counts[neuron]), int(have_counts[neuron]), 2)
    if expected.decision_time != got.decision_time:
        step = min(expected.decision_time, got.decision_time)
        add(-1, -1, step, "decision time", expected.decision_time, got.decision_time, rank=3)
    if expected.decision != got.decision:
        add(-1, -1, expected.decision_time, "decision", expected.decision, got.decision, rank=3)
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[:4])[-1]

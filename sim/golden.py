"""The bit-exact golden model: the integer network that the hardware implements.

Per layer a 0/1 sign matrix (1 = +1, 0 = -1) and an integer ``threshold_count``; the time
semantics are those of :mod:`bs4nn.sim.semantics`.  Every hardware test uses this model as its
scoreboard, and every reported accuracy of an exported model is computed by it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
from tqdm import tqdm

from bs4nn.sim.b1 import B1Network, B1Result, run_b1_images
from bs4nn.sim.semantics import IMAX, TMAX, Array, decide, encode_images, layer_spike_times


@dataclass(frozen=True)
class IntegerLayer:
    """One layer of the deployed network: sign bits and an integer counter threshold."""

    signs: np.ndarray  # (fan_out, fan_in) uint8, 1 = +1, 0 = -1
    threshold_count: int

    def __post_init__(self) -> None:
        signs = np.asarray(self.signs)
        if signs.ndim != 2 or signs.size == 0:
            raise ValueError(f"signs must be a non-empty 2-D matrix, got shape {signs.shape}")
        if signs.dtype.kind not in "uib" or not np.isin(signs, (0, 1)).all():
            raise ValueError("signs must hold only 0 (-1) and 1 (+1)")
        if int(self.threshold_count) < 1:
            raise ValueError(f"threshold_count must be >= 1, got {self.threshold_count}")
        object.__setattr__(self, "signs", signs.astype(np.uint8))
        object.__setattr__(self, "threshold_count", int(self.threshold_count))

    @property
    def fan_out(self) -> int:
        return self.signs.shape[0]

    @property
    def fan_in(self) -> int:
        return self.signs.shape[1]

    @property
    def weight_bits(self) -> int:
        """Bits per synapse in the weight memory: BS4NN stores sign bits (a B1 layer says its own)."""
        return 1

    def weights(self, xp: ModuleType = np) -> Array:
        """The +1/-1 weights as int8."""
        return xp.asarray(self.signs, dtype=xp.int8) * 2 - 1


@dataclass(frozen=True)
class IntegerNetwork:
    """The whole deployed network; what ``load_bit_model`` returns."""

    layers: tuple[IntegerLayer, ...]
    tmax: int = TMAX
    imax: int = IMAX

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        for index, (before, after) in enumerate(zip(self.layers, self.layers[1:], strict=False)):
            if after.fan_in != before.fan_out:
                raise ValueError(
                    f"layer {index + 1} has fan-in {after.fan_in}, layer {index} has {before.fan_out} neurons"
                )
        if self.tmax < 1 or self.imax < 1:
            raise ValueError("tmax and imax must be positive")

    @property
    def sizes(self) -> list[int]:
        """Neurons per layer, input first: e.g. ``[784, 600, 10]``."""
        return [self.layers[0].fan_in] + [layer.fan_out for layer in self.layers]


@dataclass
class GoldenResult:
    """Everything the golden model says about a batch of images."""

    spike_times: list[np.ndarray]  # per neuron layer: (batch, n) int32, tmax = never fired
    output_counts: np.ndarray  # (batch, n_out) output counters after the last step
    decision: np.ndarray  # (batch,) class
    decision_time: np.ndarray  # (batch,) first output spike time, tmax if none fired
    spikes_until_decision: np.ndarray  # (batch, n_layers + 1) spikes at t <= decision, input first
    input_times: np.ndarray = field(repr=False)  # (batch, n_in)

    def accuracy(self, labels: np.ndarray) -> float:
        return float(np.mean(self.decision == np.asarray(labels)))

    def first_step_outputs(self, tmax: int) -> np.ndarray:
        """(batch, n_out) bool: the outputs that spiked in the decision step (none if no output spiked)."""
        decision_time = self.decision_time[:, None]
        return (self.spike_times[-1] == decision_time) & (decision_time < tmax)

    def tied(self, tmax: int) -> np.ndarray:
        """(batch,) bool: two or more outputs spiked in the decision step (the tie rule decided)."""
        return self.first_step_outputs(tmax).sum(axis=1) >= 2

    def accuracy_ties_lenient(self, labels: np.ndarray, tmax: int) -> float:
        """Accuracy if a tie that includes the label counted as correct: the authors' scoring.

        Reported for comparison with the paper only; never used to choose a model.
        """
        labels = np.asarray(labels)
        label_in_first_step = self.first_step_outputs(tmax)[np.arange(len(labels)), labels]
        return float(np.mean((self.decision == labels) | label_in_first_step))


def _run_chunk(
    input_times: Array, weights: Sequence[Array], thresholds: Sequence[float | int], tmax: int, xp: ModuleType
) -> tuple[Array, ...]:
    times = [input_times]
    counts = None
    for weight, threshold in zip(weights, thresholds, strict=True):
        spikes, counts = layer_spike_times(times[-1], weight, threshold, tmax, xp)
        times.append(spikes)
    decision, decision_time = decide(times[-1], counts, tmax, xp)
    until = decision_time[:, None]
    spikes_until = xp.stack([((t <= until) & (t < tmax)).sum(axis=1) for t in times], axis=1)
    return (*times[1:], counts, decision, decision_time, spikes_until)


def _chunks(order: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    for start in range(0, len(order), chunk):
        yield order[start : start + chunk]


def run_network(
    input_times: Array,
    weights: Sequence[Array],
    thresholds: Sequence[float | int],
    tmax: int = TMAX,
    *,
    chunk: int = 128,
    workers: int = 2,
    xp: ModuleType = np,
    progress: bool = False,
    desc: str = "golden",
) -> GoldenResult:
    """Any stack of IF layers under the contract's semantics, on spike-coded inputs ``(batch, n_in)``.

    Integer +1/-1 weights with integer thresholds are the golden model (:func:`run_golden`); real
    weights with real thresholds are the float models (S4NN mode, ``alpha_q * B`` with theta) that
    the trainer, the exporter's check and the experiments compare with it.  Images run in chunks of
    similar spike counts (less padding in the event arrays) on ``workers`` threads (NumPy
    releases the GIL in its kernels).
    """
    input_times = np.asarray(input_times)
    if input_times.ndim != 2 or input_times.shape[1] != weights[0].shape[1]:
        raise ValueError(f"inputs must be (batch, {weights[0].shape[1]}), got {input_times.shape}")
    weights = [xp.asarray(weight) for weight in weights]
    batch, n_layers = input_times.shape[0], len(weights)
    order = np.argsort((input_times < tmax).sum(axis=1), kind="stable")

    def work(rows: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        outputs = _run_chunk(xp.asarray(input_times[rows]), weights, thresholds, tmax, xp)
        return rows, tuple(np.asarray(xp.asnumpy(o) if hasattr(xp, "asnumpy") else o) for o in outputs)

    spike_times = [np.empty((batch, weight.shape[0]), np.int32) for weight in weights]
    counts_dtype = np.int32 if all(weight.dtype.kind in "iub" for weight in weights) else np.float64
    output_counts = np.empty((batch, weights[-1].shape[0]), counts_dtype)
    decision = np.empty(batch, np.int32)
    decision_time = np.empty(batch, np.int32)
    spikes_until = np.empty((batch, n_layers + 1), np.int64)
    chunks = list(_chunks(order, chunk))
    # disable=None: no bar when stderr is not a terminal (a log, a pipe)
    bar = tqdm(total=len(chunks), desc=desc, unit="chunk", disable=not progress or None)
    with ThreadPoolExecutor(max_workers=max(1, workers if xp is np else 1)) as pool:
        for rows, outputs in pool.map(work, chunks):
            for dest, value in zip(spike_times, outputs[:n_layers], strict=True):
                dest[rows] = value
            output_counts[rows] = outputs[n_layers]
            decision[rows] = outputs[n_layers + 1]
            decision_time[rows] = outputs[n_layers + 2]
            spikes_until[rows] = outputs[n_layers + 3]
            bar.update(1)
    bar.close()
    return GoldenResult(spike_times, output_counts, decision, decision_time, spikes_until, input_times)


def run_golden(network: IntegerNetwork, input_times: Array, **kwargs) -> GoldenResult:
    """Run the integer network (the hardware's behaviour) on spike-coded inputs ``(batch, n_in)``.

    Keyword arguments as :func:`run_network` (``chunk``, ``workers``, ``xp``, ``progress``).
    """
    xp = kwargs.get("xp", np)
    weights = [layer.weights(xp) for layer in network.layers]
    thresholds = [layer.threshold_count for layer in network.layers]
    return run_network(input_times, weights, thresholds, network.tmax, **kwargs)


def run_golden_images(network: IntegerNetwork, images: np.ndarray, **kwargs) -> GoldenResult:
    """Spike-code 8-bit images with the network's ``tmax``/``imax`` and run them."""
    return run_golden(network, encode_images(images, network.tmax, network.imax), **kwargs)


def run_model_images(network: IntegerNetwork | B1Network, images: np.ndarray, **kwargs) -> GoldenResult | B1Result:
    """The golden model of either family on 8-bit images: the one entry point (``bs4nn sim golden``).

    A BS4NN :class:`IntegerNetwork` runs the event-driven race (:func:`run_golden_images`), a
    :class:`~bs4nn.sim.b1.B1Network` the B1 closed form (:func:`bs4nn.sim.b1.run_b1_images`);
    ``kwargs`` go to the BS4NN model (``progress``, ``workers``, ...).
    """
    if isinstance(network, B1Network):
        return run_b1_images(network, images)
    return run_golden_images(network, images, **kwargs)


def trace_potentials(network: IntegerNetwork, input_times: Sequence[int] | np.ndarray) -> list[np.ndarray]:
    """Per-step counters of every layer for one image: ``[(tmax, n) int32, ...]``.

    For debugging and plots (membrane trajectories); counter after the spikes of step t.
    """
    times = np.asarray(input_times).reshape(1, -1)
    steps = np.arange(network.tmax)
    traces = []
    for layer in network.layers:
        arrived = (times[0][None, :] <= steps[:, None]).astype(np.int32)  # (tmax, n_in)
        traces.append(arrived @ layer.weights().astype(np.int32).T)
        times, _ = layer_spike_times(times, layer.weights(), layer.threshold_count, network.tmax)
    return traces


def random_network(sizes: Sequence[int], thresholds: Sequence[int], seed: int = 0, tmax: int = TMAX) -> IntegerNetwork:
    """A reproducible random integer network, for tests and benchmarks."""
    rng = np.random.default_rng(seed)
    layers = [
        IntegerLayer(rng.integers(0, 2, size=(n_out, n_in), dtype=np.uint8), threshold)
        for n_in, n_out, threshold in zip(sizes[:-1], sizes[1:], thresholds, strict=True)
    ]
    return IntegerNetwork(tuple(layers), tmax=tmax)


def decision_statistics(result: GoldenResult, tmax: int) -> dict:
    """How early and how cheaply the network decides: the figures of BS4NN's early exit.

    Why: the first output spike is the answer and the early-exit core stops there, so a model is
    only as fast as the share of images that a first spike decides (the rest wait for ``tmax`` and
    the largest counter, the fallback, whose decision time is ``tmax``).  The 95th percentile is
    the smallest step by which at least 95 % of the images are decided; spikes per layer (input
    first) are counted at ``t <= decision time``.
    """
    times = np.asarray(result.decision_time)
    empty = times.size == 0
    return {
        "first_spike_decisions": 0.0 if empty else float(np.mean(times < tmax)),
        "no_output_spike": int((times >= tmax).sum()),
        "mean_decision_time": float("nan") if empty else float(times.mean()),
        "p95_decision_time": float("nan") if empty else float(np.percentile(times, 95, method="inverted_cdf")),
        "mean_spikes_until_decision": [float(v) for v in np.asarray(result.spikes_until_decision).mean(axis=0)],
    }


def decision_line(figures: dict) -> str:
    """:func:`decision_statistics` (or a summary that holds them) as the one line every report prints."""
    spikes = ", ".join(f"{v:.1f}" for v in figures["mean_spikes_until_decision"])
    return (
        f"first-spike decisions {100 * figures['first_spike_decisions']:.1f} % ({figures['no_output_spike']} "
        f"by the largest counter at tmax), decision step mean {figures['mean_decision_time']:.1f}, 95th "
        f"percentile {figures['p95_decision_time']:.0f}, spikes per layer to the decision (input first) {spikes}"
    )


def golden_summary(result: GoldenResult, labels: np.ndarray, tmax: int, seconds: float) -> dict:
    """The figures every report of a golden-model run quotes: accuracy and :func:`decision_statistics`."""
    return {
        "images": len(labels),
        "accuracy": result.accuracy(labels),
        "tied_decisions": int(result.tied(tmax).sum()),
        "accuracy_ties_lenient": result.accuracy_ties_lenient(labels, tmax),
        **decision_statistics(result, tmax),
        "seconds": seconds,
        "images_per_second": len(labels) / seconds if seconds > 0 else float("inf"),
    }

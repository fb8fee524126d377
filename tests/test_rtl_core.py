"""The RTL core in Amaranth's simulator against the golden model: every spike, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bs4nn.export.layout import network_weight_writes
from bs4nn.rtl.core import Bs4nnCore
from bs4nn.rtl.cycles import clear_cycles, predicted_cycles, worst_case_cycles
from bs4nn.rtl.params import CoreParams
from bs4nn.rtl.simulate import ImageRun, image_beats, simulate_core
from bs4nn.sim.golden import GoldenResult, IntegerLayer, IntegerNetwork, random_network, run_golden, run_golden_images

MNIST_IMAGES = 6
MNIST_LANES = 8


def hidden_spike_times(run: ImageRun, network: IntegerNetwork) -> list[np.ndarray]:
    """Per layer, spike times rebuilt from the core's debug spike stream (tmax = never)."""
    times = [np.full(layer.fan_out, network.tmax, dtype=np.int64) for layer in network.layers]
    for layer, neuron, time in run.spikes:
        assert times[layer][neuron] == network.tmax, f"layer {layer} neuron {neuron} fired twice"
        times[layer][neuron] = time
    return times


def assert_matches_golden(runs: list[ImageRun], golden: GoldenResult, network: IntegerNetwork) -> None:
    """Full mode: decision, decision time, every spike time of every layer, final output counters."""
    assert len(runs) == len(golden.decision)
    for index, run in enumerate(runs):
        assert run.decision == golden.decision[index]
        assert run.decision_time == golden.decision_time[index]
        assert run.spike_times == golden.spike_times[-1][index].tolist()
        assert run.counts == golden.output_counts[index].tolist()
        for layer, times in enumerate(hidden_spike_times(run, network)):
            assert times.tolist() == golden.spike_times[layer][index].tolist(), f"image {index} layer {layer}"
        emitted_times = [time for _, _, time in run.spikes]
        assert emitted_times == sorted(emitted_times), "debug spikes must come out in time order"


def one_neuron(signs: list[int], threshold: int, tmax: int = 8) -> IntegerNetwork:
    return IntegerNetwork((IntegerLayer(np.array([signs], dtype=np.uint8), threshold),), tmax=tmax)


def test_one_neuron_counts_fires_once_and_keeps_integrating() -> None:
    network = one_neuron([1, 1, 0, 1, 1, 0], threshold=2)
    # +1 at t=0, +1 at t=1 (crosses: fires at 1), -1 at t=2, +1 +1 at t=3 (re-crosses: no 2nd spike), -1 at t=5
    times = np.array([[0, 1, 2, 3, 3, 5]])
    (run,) = simulate_core(network, times, lanes=1)
    assert run.spikes == [(0, 0, 1)]
    assert run.spike_times == [1]
    assert run.counts == [2]  # never reset: 1+1-1+1+1-1
    assert (run.decision, run.decision_time) == (0, 1)


def test_threshold_is_tested_after_the_whole_step() -> None:
    # +1 then -1 in the same step: the counter touches 1 inside step 0 but ends it at 0
    network = one_neuron([1, 0, 1], threshold=1)
    (run,) = simulate_core(network, np.array([[0, 0, 4]]), lanes=1)
    assert run.spike_times == [4]
    assert run.counts == [1]


def test_no_spike_and_empty_image_decide_by_largest_counter_lowest_index() -> None:
    signs = np.array([[0, 0], [1, 1], [1, 1], [1, 0]], dtype=np.uint8)
    network = IntegerNetwork((IntegerLayer(signs, 5),), tmax=8)
    runs = simulate_core(network, np.array([[2, 3], [8, 8]]), lanes=3)
    golden = run_golden(network, np.array([[2, 3], [8, 8]]))
    assert_matches_golden(runs, golden, network)
    assert [(run.decision, run.decision_time, run.counts) for run in runs] == [(1, 8, [-2, 2, 2, 0]), (0, 8, [0] * 4)]


@pytest.mark.parametrize("lanes", [1, 3, 8, 64])
def test_a_layer_matches_the_golden_model(lanes: int) -> None:
    network = random_network([24, 13], [2], seed=lanes, tmax=12)
    times = np.random.default_rng(lanes).integers(0, 15, size=(5, 24))
    golden = run_golden(network, times)
    runs = simulate_core(network, times, lanes=lanes)
    assert_matches_golden(runs, golden, network)
    assert [run.cycles for run in runs] == predicted_cycles(
        CoreParams.from_network(network, lanes), golden, network=network
    ).tolist()


@pytest.mark.parametrize("lanes", [1, 3, 12, 24])
def test_a_paired_input_layer_matches_the_golden_model_and_its_cycle_formula(lanes: int) -> None:
    """Two events a sweep (13, 5, 2 and 1 words): every spike bit-exact, the cycles the paired
    formula's (pipelined from two words on), not the unpaired one's."""
    network = random_network([24, 13, 4], [2, 2], seed=lanes, tmax=6)
    times = np.random.default_rng(lanes).integers(0, 8, size=(6, 24))
    golden = run_golden(network, times)
    core = Bs4nnCore(network, lanes, paired=True)
    assert core.params.layers[0].paired and not core.params.layers[1].paired
    runs = simulate_core(network, times, core=core)
    assert_matches_golden(runs, golden, network)
    cycles = [run.cycles for run in runs]
    assert cycles == predicted_cycles(core.params, golden, network=network).tolist()
    unpaired = predicted_cycles(CoreParams.from_network(network, lanes, paired=False), golden, network=network)
    assert all(np.asarray(cycles) < unpaired)
    early = simulate_core(network, times, core=core, early_exit=True)
    assert [run.decision for run in early] == golden.decision.tolist()
    assert [run.cycles for run in early] == predicted_cycles(core.params, golden, True, network).tolist()


def test_the_shipped_size_pairs_at_16_lanes_not_at_20() -> None:
    """784-600-10: paired at 8 and 16 lanes (38 words, two weight copies in 4 SPRAMs), not at 20 (30 words)."""
    network = random_network([784, 600, 10], [20, 5], seed=0)
    assert [CoreParams.from_network(network, lanes).layers[0].paired for lanes in (8, 16, 20, 32)] == [
        True,
        True,
        False,
        False,
    ]


@st.composite
def networks_and_inputs(draw: st.DrawFn) -> tuple[IntegerNetwork, np.ndarray, int]:
    n_layers = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 12), min_size=n_layers + 1, max_size=n_layers + 1))
    tmax = draw(st.integers(1, 12))
    thresholds = draw(st.lists(st.integers(1, 3), min_size=n_layers, max_size=n_layers))
    network = random_network(sizes, thresholds, seed=draw(st.integers(0, 2**16)), tmax=tmax)
    batch = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    times = np.random.default_rng(seed).integers(0, tmax + 3, size=(batch, sizes[0]))
    return network, times, draw(st.integers(1, 9))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks_and_inputs(), st.booleans())
def test_any_small_network_is_bit_exact_in_both_modes(
    case: tuple[IntegerNetwork, np.ndarray, int], paired: bool
) -> None:
    network, times, lanes = case
    check_both_modes(network, times, lanes, Bs4nnCore(network, lanes, paired=paired))


def check_both_modes(network: IntegerNetwork, times: np.ndarray, lanes: int, core: Bs4nnCore) -> None:
    """Full mode bit-exact with every spike; early exit's decisions; both modes' cycles = the formula
    (either core: the narrow one here, the wide one in test_rtl_wide)."""
    golden = run_golden(network, times)
    params = core.params
    full = simulate_core(network, times, core=core)
    assert_matches_golden(full, golden, network)
    assert [run.cycles for run in full] == predicted_cycles(params, golden, network=network).tolist()
    if not params.wide:  # the bound the watchdogs and simulation budgets rely on
        assert max(run.cycles for run in full) + clear_cycles(params) <= worst_case_cycles(params)
    early = simulate_core(network, times, core=core, early_exit=True)
    assert [run.decision for run in early] == golden.decision.tolist()
    assert [run.decision_time for run in early] == golden.decision_time.tolist()
    assert [run.cycles for run in early] == predicted_cycles(params, golden, early_exit=True, network=network).tolist()
    for run, decision_time in zip(early, golden.decision_time, strict=True):
        assert all(time <= decision_time for _, _, time in run.spikes)


@pytest.fixture(scope="module")
def mnist_network() -> IntegerNetwork:
    """A random 784-32-10 net whose thresholds make hidden and output neurons fire on MNIST."""
    return random_network([784, 32, 10], [10, 3], seed=0)


def test_mnist_images_full_mode_every_spike_time_equal(mnist_network: IntegerNetwork, mnist_test) -> None:
    images, _ = mnist_test
    golden = run_golden_images(mnist_network, images[:MNIST_IMAGES])
    assert (golden.spike_times[0] < mnist_network.tmax).sum() > 0, "hidden neurons must fire for a real test"
    runs = simulate_core(mnist_network, golden.input_times, lanes=MNIST_LANES)
    assert_matches_golden(runs, golden, mnist_network)
    params = CoreParams.from_network(mnist_network, MNIST_LANES)
    assert [run.cycles for run in runs] == predicted_cycles(params, golden, network=mnist_network).tolist()


def test_mnist_images_early_exit(mnist_network: IntegerNetwork, mnist_test) -> None:
    images, _ = mnist_test
    golden = run_golden_images(mnist_network, images[:MNIST_IMAGES])
    runs = simulate_core(mnist_network, golden.input_times, lanes=16, early_exit=True)
    assert [run.decision for run in runs] == golden.decision.tolist()
    assert [run.decision_time for run in runs] == golden.decision_time.tolist()
    params = CoreParams.from_network(mnist_network, 16)
    early = predicted_cycles(params, golden, early_exit=True, network=mnist_network)
    assert [run.cycles for run in runs] == early.tolist()
    assert (early < predicted_cycles(params, golden, network=mnist_network)).all()


@pytest.mark.parametrize("weight_init", [True, False])
@pytest.mark.parametrize("paired", [False, True])  # paired: the write lands in both weight copies
def test_weights_loaded_at_run_time_replace_the_initial_model(weight_init: bool, paired: bool) -> None:
    built = random_network([16, 9, 4], [2, 2], seed=1, tmax=10)
    loaded = random_network([16, 9, 4], [2, 2], seed=2, tmax=10)
    lanes = 4
    writes = [tuple(row) for row in network_weight_writes(loaded, lanes).tolist()]
    times = np.random.default_rng(3).integers(0, 12, size=(4, 16))
    core = Bs4nnCore(built, lanes, weight_init=weight_init, paired=paired)
    runs = simulate_core(loaded, times, core=core, weight_writes=writes)
    golden = run_golden(loaded, times)
    assert_matches_golden(runs, golden, loaded)
    assert run_golden(built, times).spike_times[0].tolist() != golden.spike_times[0].tolist()


def test_payload_helpers_round_trip() -> None:
    params = CoreParams.from_network(random_network([784, 600, 10], [30, 5], seed=0), 8)
    assert (params.pixel_bits, params.time_bits, params.class_bits, params.neuron_bits) == (10, 9, 4, 10)
    assert params.encode_event(783, 255) == (255 << 10) | 783
    assert params.encode_event(5, 999) >> 10 == 256
    beats = image_beats(params, np.array([[256] * 780 + [3, 0, 3, 256]]))
    assert [beat >> 10 for beat in beats] == [0, 3, 3, 256]
    assert [beat & 1023 for beat in beats[:3]] == [781, 780, 782]

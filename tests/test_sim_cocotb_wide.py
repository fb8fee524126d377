"""The wide core (lanes beyond 64) under cocotb and Verilator on real MNIST test images, spike for
spike against the golden model, in both modes; its cycles per image against the formula.

Default suite: a seeded random 784-100-10 model at 100 lanes (one compile, about 45 s on 2 cores,
shared by both tests).  ``pytest -m slow tests/test_sim_cocotb_wide.py``: the shipped 784-600-10
MNIST model at 600 lanes on 1,000 test images per mode (the Verilator compile alone takes ~7 minutes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bs4nn.export.bitmodel import load_bit_model, write_bit_model
from bs4nn.rtl.cycles import clear_cycles, overlapped_events, predicted_cycles
from bs4nn.rtl.params import CoreParams
from bs4nn.sim.golden import random_network, run_golden
from bs4nn.sim.regress import StreamOptions, run_regression
from bs4nn.sim.semantics import encode_images

SIZES, THRESHOLDS, LANES = [784, 100, 10], [10, 3], 100
FULL_IMAGES, EARLY_IMAGES, BACK_TO_BACK_IMAGES = 24, 24, 16
SLOW_IMAGES, SHIPPED_LANES = 1000, 600


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> Path:
    return write_bit_model(random_network(SIZES, THRESHOLDS, seed=7), tmp_path_factory.mktemp("bits") / "wide")


@pytest.fixture(scope="module")
def wide_build(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wide_build")


def _inputs(mnist_test, start: int, count: int, network) -> np.ndarray:
    return encode_images(mnist_test[0][start : start + count], network.tmax, network.imax)


def _assert_bit_exact(report) -> None:
    print(report.summary())
    assert report.ok, f"{report.summary()}\nreproduce: {report.reproduce}\nartefacts: {report.artefacts}"


def test_mnist_images_full_mode_under_backpressure(wide_model, wide_build, mnist_test, tmp_path) -> None:
    network = load_bit_model(wide_model).network
    times = _inputs(mnist_test, 0, FULL_IMAGES, network)
    golden = run_golden(network, times)
    assert (golden.spike_times[0] < network.tmax).sum() > 10 * FULL_IMAGES, "hidden neurons must fire"
    options = StreamOptions(seed=3, input_gap_probability=0.25, result_delay_probability=0.25)
    report = run_regression(
        wide_model, times, lanes=LANES, options=options, work_dir=tmp_path, build_root=wide_build, quick_build=True
    )
    _assert_bit_exact(report)
    assert report.images == FULL_IMAGES


def test_mnist_images_full_mode_back_to_back_cycles_match_the_formula(
    wide_model, wide_build, mnist_test, tmp_path
) -> None:
    network = load_bit_model(wide_model).network
    blank = np.full((1, network.layers[0].fan_in), network.tmax)  # no events: no decision, the argmax
    times = np.vstack([_inputs(mnist_test, 2 * FULL_IMAGES, BACK_TO_BACK_IMAGES - 1, network), blank])
    report = run_regression(wide_model, times, lanes=LANES, work_dir=tmp_path, build_root=wide_build, quick_build=True)
    _assert_bit_exact(report)
    golden = run_golden(network, times)
    params = CoreParams.from_network(network, LANES)
    predicted = predicted_cycles(params, golden)
    assert (golden.decision_time < network.tmax).any() and (golden.decision_time >= network.tmax).any(), (
        "both readouts (decided: none; undecided: the argmax) must be exercised"
    )
    # the core's own cycles and one hand-over cycle: no clear between images (it is folded into the
    # result beat); the first image's count holds the reset's one CLEAR cycle
    reset = (np.arange(BACK_TO_BACK_IMAGES) == 0).astype(np.int64)
    assert clear_cycles(params) == 0
    assert (report.cycles - (predicted + 1)).tolist() == reset.tolist()


def test_mnist_images_early_exit_cycles_match_the_formula(wide_model, wide_build, mnist_test, tmp_path) -> None:
    network = load_bit_model(wide_model).network
    times = _inputs(mnist_test, FULL_IMAGES, EARLY_IMAGES, network)
    report = run_regression(
        wide_model,
        times,
        lanes=LANES,
        options=StreamOptions(early_exit=True),
        work_dir=tmp_path,
        build_root=wide_build,
        quick_build=True,
    )
    _assert_bit_exact(report)
    golden = run_golden(network, times)
    assert (report.decisions == golden.decision).all()
    params = CoreParams.from_network(network, LANES)
    predicted = predicted_cycles(params, golden, early_exit=True)
    # no gaps: the testbench counts the core's own cycles, its clear (none between images: folded
    # into the result or the discard; the first image's count holds the reset's one CLEAR cycle),
    # one hand-over cycle and, after an early exit, what the core discards: the beat on offer when
    # it exited and, once it says ``skip``, the end beat (the driver jumps there, as the board's
    # event source does)
    exits = golden.decision_time < network.tmax
    later = ((times > golden.decision_time[:, None]) & (times < network.tmax)).sum(axis=1)
    # beats after the decision's step that the core took before it exited: the one that closed
    # the step, and those of the next step while the decision's step was tested and emitted
    _, taken = overlapped_events(params, golden, np.where(exits, golden.decision_time, network.tmax - 1))
    left = later - np.minimum(later, 1) - taken
    drained = np.where(exits, np.minimum(left, 1) + 1, 0)
    assert (left[exits] > 1).any(), "some exits must leave several beats to skip"
    assert (taken[exits] > 0).any(), "some exits must have taken beats of the next step"
    assert exits.sum() > EARLY_IMAGES // 2
    reset = (np.arange(EARLY_IMAGES) == 0).astype(np.int64)
    assert clear_cycles(params) == 0
    assert (report.cycles - (predicted + 1 + drained)).tolist() == reset.tolist()


# --- the shipped model at full width (documented command: pytest -m slow tests/test_sim_cocotb_wide.py) ---


@pytest.mark.slow
@pytest.mark.parametrize("early_exit", [False, True])
def test_shipped_mnist_model_at_600_lanes_through_verilator(early_exit, tmp_path_factory, mnist_test) -> None:
    """1,000 MNIST test images through the shipped 784-600-10 model on the 600-lane core, per mode."""
    from bs4nn.export.exporter import export_model, resolve_source

    root = tmp_path_factory.getbasetemp() / "shipped_wide"
    manifest = root / "bits"
    if not manifest.exists():
        export_model(resolve_source("mnist"), manifest, evaluate_accuracy=False)
    network = load_bit_model(manifest).network
    times = _inputs(mnist_test, 0, SLOW_IMAGES, network)
    report = run_regression(
        manifest,
        times,
        lanes=SHIPPED_LANES,
        options=StreamOptions(early_exit=early_exit),
        work_dir=tmp_path_factory.mktemp("run"),
        build_root=root / "build",
    )
    _assert_bit_exact(report)
    assert report.images == SLOW_IMAGES
    golden = run_golden(network, times)
    params = CoreParams.from_network(network, SHIPPED_LANES)
    if not early_exit:  # back to back: the core's own cycles and one hand-over cycle (the reset's CLEAR once)
        reset = (np.arange(SLOW_IMAGES) == 0).astype(np.int64)
        assert (report.cycles - predicted_cycles(params, golden) - clear_cycles(params) - 1).tolist() == reset.tolist()

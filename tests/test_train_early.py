"""Early first-spike decisions (issue 28): snapshot-ce's deadline hinge, hand-computed and at work."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bs4nn.errors import Bs4nnError
from bs4nn.sim.semantics import encode_images
from bs4nn.train.datasets import load_split
from bs4nn.train.network import forward
from bs4nn.train.optimizers import Adam
from bs4nn.train.presets import get_preset
from bs4nn.train.rules import RULES, Batch, Parameters, batch_gradients
from bs4nn.train.rules.snapshot_ce import SnapshotCeOptions, snapshot_ce_gradients

TMAX = 256


def _with_and_without(weight: float, *args, **options):
    """The gradients and loss with the deadline hinge at ``weight``, and without it."""
    on = snapshot_ce_gradients(*args, deadline_weight=weight, **options)
    off = snapshot_ce_gradients(*args, **{k: v for k, v in options.items() if k != "decision_deadline"})
    return on, off


def test_deadline_hinge_without_hidden_layer_hand_computed() -> None:
    # 3 pixels at t = 0, 1, never; snapshots s = 0, 2, 5: bits (1, 0, 0), (1, 1, 0), (1, 1, 0)
    in_times = np.array([[0, 1, TMAX]])
    weights = [np.array([[0.3, -0.2, 0.1], [-0.4, 0.5, 0.6]], dtype=np.float32)]  # signs + - + / - + +
    (grads, _, loss, _), (plain, _, plain_loss, _) = _with_and_without(
        0.5, in_times, np.array([0]), weights, [1], 0.5,
        snapshot_steps=(0, 2, 5), surrogate_width=2.0, decision_deadline=3, count_margin=1,
    )  # fmt: skip
    # output counters (1, -1), (0, 0), (0, 0); count 1, margin 1, deadline 3: snapshots 0 and 2.
    # Correct output 0 at s = 2: 0 of 2 counts -> short 2; output 1 at most -1 at s = 0, 2: over 0
    # and 1; s = 5 is past the deadline (its over of 1 is not asked for).  Hinge 3 counts.
    assert loss - plain_loss == pytest.approx(0.5 * 3)
    np.testing.assert_allclose(grads[0] - plain[0], 0.5 * np.outer([-1, 1], [1, 1, 0]), atol=1e-6)


def test_deadline_hinge_reaches_the_hidden_layer_hand_computed() -> None:
    # as test_snapshot_ce_gradients_through_a_hidden_layer_hand_computed: 2 pixels at t = 0, 3,
    # snapshots 0, 4; hidden 0 spikes at s = 4 (bits (0, 0) then (1, 0)); output counters (0, 0), (1, -1)
    in_times = np.array([[0, 3]])
    hidden_w = np.array([[0.5, 0.5], [0.5, -0.5]], dtype=np.float32)  # signs + + / + -
    output_w = np.array([[0.2, -0.2], [-0.2, 0.2]], dtype=np.float32)  # signs + - / - +
    common = (in_times, np.array([1]), [hidden_w, output_w], [2, 1], 1.0)
    # no deadline (tmax): output 1 at s = 4 is -1, short 2 of count 1; output 0 over 0 by 1 at s = 4
    (grads, _, loss, _), (plain, _, plain_loss, _) = _with_and_without(
        1.0, *common, snapshot_steps=(0, 4), surrogate_width=2.0, decision_deadline=TMAX
    )
    assert loss - plain_loss == pytest.approx(3)
    np.testing.assert_allclose(grads[1] - plain[1], np.outer([1, -1], [1, 0]), atol=1e-6)
    # through the output signs (1, -1) @ S = (2, -2), the triangle at hidden counters (2, 0): 0.75, 0.25
    np.testing.assert_allclose(grads[0] - plain[0], np.outer([1.5, -0.5], [1, 1]), atol=1e-6)
    # deadline 4: only s = 0 is before it; output 1 short 1 there, output 0 within; no output bit is
    # set at s = 0, so only the hidden layer moves: (0, -1) @ S = (1, -1), triangle 0.75 at counters (1, 1)
    (grads, _, loss, _), (plain, _, plain_loss, _) = _with_and_without(
        1.0, *common, snapshot_steps=(0, 4), surrogate_width=2.0, decision_deadline=4
    )
    assert loss - plain_loss == pytest.approx(1)
    np.testing.assert_allclose(grads[1], plain[1], atol=1e-6)
    np.testing.assert_allclose(grads[0] - plain[0], np.outer([0.75, -0.75], [1, 0]), atol=1e-6)


def _first_spike_by(weights, labels, in_times, deadline: int) -> float:
    """Share of images decided by a first spike of the correct output before ``deadline`` (exact race)."""
    times, _ = forward(in_times, weights, [1.0, 1.0], [9.5, 9.5], TMAX)
    out = times[-1]
    first = out.min(axis=1)
    decided = (
        (first < deadline) & (out[np.arange(len(labels)), labels] == first) & ((out == first[:, None]).sum(1) == 1)
    )
    return float(decided.mean())


def test_deadline_hinge_trains_earlier_correct_first_spikes(data_dir: Path) -> None:
    # A 784-32-10 network (counts 10/10), 200 real MNIST images, 40 Adam steps of the whole batch from
    # one start, with and without the hinge: with it, more images are decided by a first spike of the
    # correct output before the deadline in the exact race (the hardware's), at the same counts.
    images, labels = load_split("mnist", "train", data_dir)
    in_times = encode_images(images[:200], TMAX, 255).astype(np.int32)
    labels = labels[:200].astype(np.int64)
    rng = np.random.default_rng(0)
    start = [rng.uniform(-1, 1, (32, 784)).astype(np.float32), rng.uniform(-1, 1, (10, 32)).astype(np.float32)]
    deadline, shares = 48, {}
    for weight in (0.0, 0.2):
        options = SnapshotCeOptions(
            TMAX, snapshot_steps=(0, 4, 16, 47, 128, 255), surrogate_width=8.0,
            deadline_weight=weight, decision_deadline=deadline, count_margin=1,
        )  # fmt: skip
        weights = [w.copy() for w in start]
        adam = Adam(weights)
        for _ in range(40):
            params = Parameters(weights, [1.0, 1.0], [9.5, 9.5], extras={"readout_scale": 0.1})
            result = batch_gradients(RULES["snapshot-ce"], Batch(in_times, labels), params, options, np)
            weights = [np.clip(w, -1, 1) for w in adam.step(weights, result.weight_grads, 1e-2)]
        shares[weight] = _first_spike_by(weights, labels, in_times, deadline)
    assert shares[0.2] > shares[0.0] + 0.15, shares  # measured: 0.08 -> 0.365


def test_deadline_hinge_settings_are_checked() -> None:
    preset = get_preset("tiny-ce").with_settings(["deadline_weight=0.1", "decision_deadline=64"])
    assert preset.rule_options().deadline_weight == 0.1 and preset.rule_options().decision_deadline == 64
    with pytest.raises(Bs4nnError, match="deadline_weight must be a number >= 0"):
        get_preset("tiny-ce").with_settings(["deadline_weight=-1"])
    with pytest.raises(Bs4nnError, match=r"deadline_weight needs a decision_deadline in 9\.\.256"):
        get_preset("tiny-ce").with_overrides(deadline_weight=0.1, snapshot_steps=(8, 16), decision_deadline=8)


def test_calibration_with_a_first_spike_share_floor(data_dir: Path) -> None:
    """The shipped MNIST model's output count chosen on 500 validation images for accuracy alone and for
    the most accurate count that decides at least a share of them by a first spike, above the free one's."""
    from bs4nn.train.calibration import BUDGET_COUNT_SCALES, calibrate_thresholds
    from bs4nn.train.checkpoint import load_checkpoint
    from bs4nn.train.finish import checkpoint_network
    from bs4nn.train.metrics import evaluate
    from bs4nn.train.network import LabelledImages
    from bs4nn.train.run import split_data

    network = checkpoint_network(load_checkpoint(Path(__file__).parents[1] / "train/pretrained/mnist.npz"))
    images, labels = split_data(get_preset("mnist"), str(data_dir))["validation"]
    data = LabelledImages(images[:500], labels[:500])
    free = calibrate_thresholds(network, data, scales=BUDGET_COUNT_SCALES, layers=[1])
    floor = max(row["first_spike_decisions"] for row in free.tried)
    assert floor > free.first_spike_decisions  # the free choice leaves images to the fallback
    early = calibrate_thresholds(network, data, scales=BUDGET_COUNT_SCALES, layers=[1], min_first_spike_share=floor)
    assert early.first_spike_decisions >= floor and early.counts[1] < free.counts[1]
    within = [row for row in early.tried if row["first_spike_decisions"] >= floor]
    assert early.accuracy == max(row["accuracy"] for row in within)  # the most accurate above the floor
    rescored = evaluate(dataclasses.replace(network, thetas=early.thetas), data)
    assert (rescored["accuracy"], rescored["first_spike_decisions"]) == (early.accuracy, early.first_spike_decisions)
    with pytest.raises(Bs4nnError, match=r"decision_first_spike_share must be in \[0, 1\]"):
        get_preset("mnist").with_settings(["decision_first_spike_share=1.5"])


def test_the_grid_calibration_tries_every_pair_and_beats_coordinate_ascent(data_dir: Path) -> None:
    """The shipped Fashion-MNIST model on 300 validation images, a budget of 150 steps and >= 95 %
    first-spike decisions: the grid of the two layers' counts holds every pair the coordinate search can
    reach, so it is never worse; its choice is the best pair it tried, and rescoring it agrees."""
    from bs4nn.train.calibration import calibrate_grid, calibrate_thresholds, candidate_counts
    from bs4nn.train.checkpoint import load_checkpoint
    from bs4nn.train.finish import checkpoint_network
    from bs4nn.train.metrics import evaluate
    from bs4nn.train.network import LabelledImages
    from bs4nn.train.run import split_data

    network = checkpoint_network(load_checkpoint(Path(__file__).parents[1] / "train/pretrained/fashion.npz"))
    images, labels = split_data(get_preset("fashion"), str(data_dir))["validation"]
    data = LabelledImages(images[:300], labels[:300])
    limits = {"scales": (0.6, 0.7, 0.8, 0.9, 1.0), "max_mean_decision_time": 150, "min_first_spike_share": 0.95}
    coordinate = calibrate_thresholds(network, data, **limits)
    grid = calibrate_grid(network, data, **limits)
    hidden, output = (len(candidate_counts(count, limits["scales"])) for count in grid.trained_counts)
    assert len(grid.tried) == hidden * output
    assert grid.tried[0]["counts"] == grid.trained_counts and grid.trained_accuracy == grid.tried[0]["accuracy"]
    within = [row for row in grid.tried if row["mean_decision_time"] <= 150 and row["first_spike_decisions"] >= 0.95]
    assert within and grid.accuracy == max(row["accuracy"] for row in within)
    assert grid.mean_decision_time <= 150 and grid.first_spike_decisions >= 0.95
    assert coordinate.mean_decision_time <= 150 and coordinate.first_spike_decisions >= 0.95
    assert grid.accuracy >= coordinate.accuracy
    rescored = evaluate(dataclasses.replace(network, thetas=grid.thetas), data)
    assert (rescored["accuracy"], rescored["first_spike_decisions"]) == (grid.accuracy, grid.first_spike_decisions)
    with pytest.raises(Bs4nnError, match="calibration_search must be one of coordinate, grid"):
        get_preset("fashion").with_settings(["calibration_search=random"])

"""Trainer tests: hand-computed gradients, golden-model agreement, learning, exact resume, errors."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import integer_network, quantize_alpha
from bs4nn.sim.golden import run_golden
from bs4nn.sim.semantics import encode_images, threshold_count
from bs4nn.train.calibration import candidate_counts, theta_for_count
from bs4nn.train.checkpoint import load_checkpoint
from bs4nn.train.epochs import epoch_batches
from bs4nn.train.finish import ship_pretrained
from bs4nn.train.metrics import evaluate
from bs4nn.train.network import LabelledImages, ProxyNetwork, binary_weights, check_not_silent, forward
from bs4nn.train.presets import FIXED_FIELDS, PRESETS, get_preset, parse_setting
from bs4nn.train.rules import RULES, Batch, Parameters, batch_gradients
from bs4nn.train.rules.snapshot import snapshot_gradients
from bs4nn.train.rules.temporal import TemporalOptions, layer_backward, normalise_rows, output_errors, relative_targets
from bs4nn.train.run import RunOptions, split_data
from bs4nn.train.trainer import check_finite, initial_weights, parallel_batch_gradients, train

TMAX = 256


# ---------------------------------------------------------------- hand-computed cases


def test_relative_targets_follow_eq6() -> None:
    out_times = np.array(
        [
            [10, 12, 30, 256],  # label 2 late: correct -> tau-gamma, the two early wrong ones -> tau+gamma
            [256, 256, 256, 256],  # all silent: tmax-gamma for the label, tmax for the others
            [0, 5, 0, 7],  # label 0 tied at t=0: target clipped at 0, tied wrong one pushed to gamma
        ]
    )
    labels = np.array([2, 1, 0])
    targets = relative_targets(out_times, labels, gamma=4, tmax=TMAX)
    np.testing.assert_array_equal(targets[0], [14, 14, 6, 256])
    np.testing.assert_array_equal(targets[1], [256, 252, 256, 256])
    np.testing.assert_array_equal(targets[2], [0, 5, 4, 7])
    errors = output_errors(out_times, targets, TMAX)
    np.testing.assert_allclose(errors[0], np.array([4, 2, -24, 0]) / TMAX)


def test_hardware_target_rule_pulls_the_correct_output_only_when_it_would_lose() -> None:
    out_times = np.array(
        [
            [10, 12, 30, 256],  # label 2 late, output 0 (lower index) leads: tau - 1; early wrong ones -> tau+gamma
            [7, 3, 3, 9],  # label 2 tied with output 1, which the hardware picks: pulled to tau - 1
            [7, 3, 3, 9],  # label 1 tied with a higher index: the hardware picks it, no error
            [12, 30, 10, 256],  # label 0 late, a higher index leads: pulled to tau (no margin needed)
            [256, 256, 256, 256],  # all silent: as eq. 6
            [0, 0, 5, 255],  # label 1 loses a tie at t = 0: clipped at 0; a tie partner near tmax is capped
        ]
    )
    labels = np.array([2, 2, 1, 0, 1, 1])
    targets = relative_targets(out_times, labels, gamma=4, tmax=TMAX, rule="hardware")
    np.testing.assert_array_equal(targets[0], [14, 14, 9, 256])
    np.testing.assert_array_equal(targets[1], [7, 7, 2, 9])
    np.testing.assert_array_equal(targets[2], [7, 3, 7, 9])
    np.testing.assert_array_equal(targets[3], [10, 30, 14, 256])
    np.testing.assert_array_equal(targets[4], [256, 252, 256, 256])
    np.testing.assert_array_equal(targets[5], [4, 0, 5, 255])
    with pytest.raises(Bs4nnError, match="target rule"):
        relative_targets(out_times, labels, gamma=4, tmax=TMAX, rule="lenient")
    with pytest.raises(Bs4nnError, match="target_rule"):
        get_preset("tiny").with_overrides(target_rule="lenient")


def test_layer_backward_hand_computed() -> None:
    # one sample, inputs spike at 0, 2, 5 and never (a black pixel); outputs at 1 and 5
    in_times = np.array([[0, 2, 5, TMAX]])
    out_times = np.array([[1, 5]])
    delta = np.array([[0.6, -0.8]], dtype=np.float32)
    weights = np.array([[1.0, -2.0, 3.0, 4.0], [0.5, 0.25, -1.0, 2.0]], dtype=np.float32)
    pixel = layer_backward(in_times, out_times, delta, weights, TMAX, pixel_inputs=True)
    # dL/dw_ji = delta_j [t_i <= t_j]; the never-spiking pixel takes nothing
    np.testing.assert_allclose(pixel.weights, [[0.6, 0, 0, 0], [-0.8, -0.8, -0.8, 0]])
    assert pixel.delta_in is None
    # as a hidden layer, the silent neuron keeps its fake spike at tmax: nothing precedes t=1 or 5 there
    hidden = layer_backward(in_times, out_times, delta, weights, TMAX, pixel_inputs=False, propagate=True)
    np.testing.assert_allclose(hidden.weights, pixel.weights)
    # delta_i = sum_j delta_j w_ji [t_i <= t_j]
    expected = [0.6 * 1.0 - 0.8 * 0.5, -0.8 * 0.25, -0.8 * -1.0, 0.0]
    np.testing.assert_allclose(hidden.delta_in[0], expected, rtol=1e-6)
    # a silent output (t = tmax) sees the silent hidden neuron's fake spike
    silent = layer_backward(in_times, np.array([[TMAX, 5]]), delta, weights, TMAX, pixel_inputs=False)
    np.testing.assert_allclose(silent.weights[0], [0.6, 0.6, 0.6, 0.6])


def _reference_gradients(in_times, labels, weights, alphas, thetas, gamma):
    """Loop-by-loop transcription of eqs. (5)-(16) for a single sample at a time."""
    times, _ = forward(in_times, weights, alphas, thetas, TMAX)
    grads = [np.zeros(w.shape) for w in weights]
    alpha_grads = [0.0] * len(weights)
    for b in range(in_times.shape[0]):
        if any(not (t[b] < TMAX).any() for t in times[1:-1]):
            continue
        out = times[-1][b].astype(float)
        tau = out.min()
        target = np.empty_like(out)
        for j in range(len(out)):
            if tau >= TMAX:
                target[j] = TMAX - gamma if j == labels[b] else TMAX
            elif j == labels[b]:
                target[j] = max(tau - gamma, 0)
            else:
                target[j] = tau + gamma if out[j] < tau + gamma else out[j]
        delta = (target - out) / TMAX
        delta = delta / np.linalg.norm(delta) if np.linalg.norm(delta) > 0 else delta
        for layer in range(len(weights) - 1, -1, -1):
            t_in, t_out = times[layer][b], times[layer + 1][b]
            signs = np.where(weights[layer] >= 0, 1, -1)
            next_delta = np.zeros(len(t_in))
            for j in range(len(t_out)):
                for i in range(len(t_in)):
                    spiked = t_in[i] < TMAX or layer > 0
                    if spiked and t_in[i] <= t_out[j]:
                        grads[layer][j, i] += delta[j]
                        alpha_grads[layer] += delta[j] * signs[j, i] / weights[layer].size
                        next_delta[i] += delta[j] * weights[layer][j, i]
            norm = np.linalg.norm(next_delta)
            delta = next_delta / norm if norm > 0 else next_delta
    return grads, alpha_grads


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_hidden=st.sampled_from([(5,), (6, 4)]))
def test_batch_gradients_equal_the_formulas(seed: int, n_hidden: tuple[int, ...]) -> None:
    rng = np.random.default_rng(seed)
    sizes = (12, *n_hidden, 3)
    weights = [rng.uniform(-1, 2, size=(o, i)).astype(np.float32) for i, o in itertools.pairwise(sizes)]
    alphas = [1.0] * (len(sizes) - 1)
    thetas = [3.0] * (len(sizes) - 1)
    images = rng.integers(0, 256, size=(6, 12)) * (rng.random((6, 12)) < 0.7)
    in_times = encode_images(images)
    labels = rng.integers(0, 3, size=6)
    params = Parameters(weights, alphas, thetas)
    result = batch_gradients(RULES["temporal"], Batch(in_times, labels), params, TemporalOptions(TMAX, gamma=2.0), np)
    grads, alpha_grads = _reference_gradients(in_times, labels, weights, alphas, thetas, 2.0)
    for got, want in zip(result.weight_grads, grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # float32 sums over every weight entry: relative error up to ~1e-4
    np.testing.assert_allclose(result.alpha_grads, alpha_grads, rtol=1e-4, atol=1e-9)


def test_snapshot_gradients_hand_computed() -> None:
    # 3 pixels -> 2 hidden -> 2 outputs, decision step s = 2; pixels at 0, 1, 5: the first two fired by s
    in_times = np.array([[0, 1, 5]])
    hidden_times = np.array([[1, TMAX]])  # hidden 0 fired by s, hidden 1 never
    out_times = np.array([[2, TMAX]])
    hidden_w = np.array([[0.3, -0.2, 0.1], [0.4, 0.5, -0.6]], dtype=np.float32)  # signs + - + / + + -
    output_w = np.array([[2.0, -1.0], [-3.0, 4.0]], dtype=np.float32)  # signs + - / - +
    grads, loss = snapshot_gradients(
        [in_times, hidden_times, out_times],
        np.array([2]),
        np.array([1]),
        [hidden_w, output_w],
        [1, 1],
        np.array([True]),
        tmax=TMAX,
        count_margin=1,
        surrogate_width=2.0,
    )
    # counters at s: hidden 1-1 = 0 and 1+1 = 2; outputs +1 (output 0) and -1 (output 1, the label)
    # hinge: the label needs >= 1 + 1 (short by 3), output 0 must stay <= 1 - 1 - 1 (over by 2)
    assert loss == 5.0
    r = 1 / np.sqrt(2)  # delta = (+1, -1) normalised
    np.testing.assert_allclose(grads[1], [[r, 0], [-r, 0]], rtol=1e-6)
    # back through the signs: (r - (-r), -r - r) = (sqrt 2, -sqrt 2); triangle around count - 1/2 = 0.5,
    # half-width 2: 0.75 at counter 0, 0.25 at counter 2; then normalised
    hidden_delta = np.array([np.sqrt(2) * 0.75, -np.sqrt(2) * 0.25])
    hidden_delta /= np.linalg.norm(hidden_delta)
    np.testing.assert_allclose(grads[0], np.outer(hidden_delta, [1, 1, 0]), rtol=1e-6)
    # a silent sample (alive False) takes no update
    grads, loss = snapshot_gradients(
        [in_times, hidden_times, out_times], np.array([2]), np.array([1]), [hidden_w, output_w], [1, 1],
        np.array([False]), tmax=TMAX, count_margin=1, surrogate_width=2.0,
    )  # fmt: skip
    assert loss == 0 and not grads[0].any() and not grads[1].any()


def test_snapshot_decision_deadline_moves_the_snapshot_of_late_decisions_only() -> None:
    # one layer, 3 inputs -> 2 outputs (signs + + - / - - +), count 2, margin 0, label 0
    in_times = np.array([[0, 3, 10], [0, 3, 10]])
    out_times = np.array([[TMAX, TMAX], [2, TMAX]])  # image 0: no output spike (fallback); image 1: decided at 2
    weights = [np.array([[0.5, 0.5, -0.5], [-0.5, -0.5, 0.5]], dtype=np.float32)]

    def hinge(deadline: int | None):
        return snapshot_gradients(
            [in_times, out_times], np.array([TMAX, 2]), np.array([0, 0]), weights, [2], np.array([True, True]),
            tmax=TMAX, count_margin=0, surrogate_width=1.0, decision_deadline=deadline,
        )  # fmt: skip

    # no deadline: image 0 is seen at tmax - 1 (all 3 inputs: counters 1, -1: the label is 1 short);
    # image 1 at step 2 (input 0 only: counters 1, -1: 1 short)
    grads, loss = hinge(None)
    assert loss == 2.0 and grads[0].tolist() == [[-2.0, -1.0, -1.0], [0.0, 0.0, 0.0]]
    assert hinge(TMAX)[1] == loss and (hinge(TMAX)[0][0] == grads[0]).all()
    # deadline 6: image 0 is seen at step 5 (inputs 0 and 1: counters 2, -2: nothing to do); image 1 as before
    grads, loss = hinge(6)
    assert loss == 1.0 and grads[0].tolist() == [[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    # deadline 2: both at step 1 (input 0 only)
    grads, loss = hinge(2)
    assert loss == 2.0 and grads[0].tolist() == [[-2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    with pytest.raises(Bs4nnError, match="decision_deadline must be a positive integer"):
        _tiny(backward="snapshot", decision_deadline=0)
    with pytest.raises(Bs4nnError, match=r"decision_deadline must be in 1\.\.tmax"):
        _tiny(backward="snapshot", decision_deadline=TMAX + 1)


def test_snapshot_backward_learns_and_keeps_the_alphas(tmp_path: Path, data_dir: Path) -> None:
    preset = _tiny(backward="snapshot", train_images=2000, validation_images=500, calibrate_thresholds=False)
    train(preset, RunOptions(out_dir=tmp_path, data_dir=str(data_dir), progress=False, test=False), log=lambda _: None)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.npz")
    assert checkpoint.metrics[-1]["validation_accuracy"] > 0.35  # chance: 0.10
    assert checkpoint.alphas == list(preset.alphas)
    with pytest.raises(Bs4nnError, match="cannot train real weights"):
        train(preset, RunOptions(out_dir=tmp_path / "real", binary=False, progress=False), log=lambda _: None)
    with pytest.raises(Bs4nnError, match="backward must be one of"):
        _tiny(backward="nope")
    with pytest.raises(Bs4nnError, match="surrogate_width must be a positive number"):
        _tiny(surrogate_width=0.0)


def test_normalise_rows_keeps_zero_rows() -> None:
    delta = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalise_rows(delta), [[0.6, 0.8], [0.0, 0.0]])


# ---------------------------------------------------------------- the golden model agrees


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), alpha=st.floats(0.3, 7.0), theta=st.floats(1.0, 40.0))
def test_trainer_spike_times_equal_golden_model(seed: int, alpha: float, theta: float) -> None:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0.2, 1, size=shape).astype(np.float32) for shape in ((30, 64), (5, 30))]
    alphas = [float(quantize_alpha(alpha)), float(quantize_alpha(alpha * 1.7))]
    thetas = [theta, theta / 2]
    images = rng.integers(0, 256, size=(40, 64)) * (rng.random((40, 64)) < 0.5)
    times, counts = forward(encode_images(images), weights, alphas, thetas, TMAX)
    golden = run_golden(integer_network(weights, alphas, thetas, TMAX, 255), encode_images(images))
    for mine, theirs in zip(times[1:], golden.spike_times, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(counts, golden.output_counts)


def test_binary_weights_use_the_exporter_sign_rule() -> None:
    np.testing.assert_array_equal(binary_weights(np.array([-0.5, 0.0, 2.0])), [-1, 1, 1])


# ---------------------------------------------------------------- runs


def _tiny(**changes):
    return get_preset("tiny").with_overrides(**changes)


def test_two_epochs_on_2000_images_learn(tmp_path: Path, data_dir: Path) -> None:
    summary = train(_tiny(), RunOptions(out_dir=tmp_path, data_dir=str(data_dir), progress=False), log=lambda _: None)
    assert summary["validation_accuracy"] > 0.35  # chance is 0.10
    assert summary["test"]["accuracy"] > 0.35
    assert summary["test"]["scored_by"].startswith("golden model")
    assert len(summary["test"]["mean_spikes_until_decision"]) == 3
    history = json.loads((tmp_path / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,")
    best = load_checkpoint(tmp_path / "best.npz")
    assert best.binary and best.sizes == [784, 100, 10] and best.dataset == "mnist"
    # The tiny preset calibrates: the search starts from exactly the validation figure of best.npz,
    # never ends below it, and the calibrated model scores what the search says on the golden model.
    calibration = summary["calibration"]
    assert calibration["trained_accuracy"] == summary["validation_accuracy"]
    assert calibration["accuracy"] >= calibration["trained_accuracy"]
    calibrated = load_checkpoint(tmp_path / "calibrated.npz")
    assert calibrated.weights[0].tobytes() == best.weights[0].tobytes()
    assert calibrated.alphas == best.alphas
    counts = [threshold_count(t, quantize_alpha(a)) for t, a in zip(calibrated.thetas, calibrated.alphas, strict=True)]
    assert counts == calibration["counts"]
    images, labels = split_data(_tiny(), str(data_dir))["validation"]
    network = ProxyNetwork(calibrated.weights, calibrated.alphas, calibrated.thetas, tmax=256, imax=255)
    rescored = evaluate(network, LabelledImages(images, labels))
    assert rescored["accuracy"] == calibration["accuracy"] and rescored["threshold_counts"] == counts
    shipped = ship_pretrained(tmp_path, "tiny", "bs4nn train --preset tiny", dest_dir=tmp_path / "pretrained")
    info = json.loads(shipped.with_suffix(".json").read_text())
    assert info["command"] == "bs4nn train --preset tiny" and info["test"]["accuracy"] == summary["test"]["accuracy"]
    assert info["calibration"]["counts"] == counts
    assert load_checkpoint(shipped).thetas == calibrated.thetas
    assert calibrated.state and load_checkpoint(shipped).state == {}  # the optimiser state stays in the run


def test_candidate_counts_are_distinct_multiples_of_the_trained_count() -> None:
    assert candidate_counts(20) == [17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28, 30]
    assert candidate_counts(1, (0.5, 1.0, 2.0)) == [1, 2]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2000), st.integers(1, 2000))
def test_calibrated_theta_gives_the_count_exactly_and_in_floats(count: int, alpha_hundredths: int) -> None:
    # The exporter's integer rule and its --check float model (alpha * B summed in float64) must
    # both put the threshold at exactly `count` spikes.
    alpha = alpha_hundredths / 100
    theta = theta_for_count(count, alpha)
    assert threshold_count(theta, alpha) == count
    sums = np.cumsum(np.full(count, alpha, dtype=np.float64))
    assert sums[-1] >= theta and (count == 1 or sums[-2] < theta)


def test_resume_of_a_finished_run_only_calibrates(tmp_path: Path, data_dir: Path) -> None:
    preset = _tiny(train_images=640, validation_images=200, epochs=1, calibrate_thresholds=False)
    options = {"data_dir": str(data_dir), "progress": False, "test": False}
    train(preset, RunOptions(out_dir=tmp_path, **options), log=lambda _: None)
    assert not (tmp_path / "calibrated.npz").exists()
    before = (tmp_path / "checkpoint.npz").read_bytes()
    calibrated = preset.with_overrides(calibrate_thresholds=True)
    summary = train(calibrated, RunOptions(out_dir=tmp_path, resume=True, **options), log=lambda _: None)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before  # no epoch was trained again
    assert summary["calibration"]["accuracy"] >= summary["validation_accuracy"]
    assert (tmp_path / "calibrated.npz").is_file()


def test_resume_equals_uninterrupted_bitwise(tmp_path: Path, data_dir: Path) -> None:
    preset = _tiny(train_images=640, validation_images=200, epochs=3)
    options = {"data_dir": str(data_dir), "progress": False, "test": False}
    train(preset, RunOptions(out_dir=tmp_path / "whole", **options), log=lambda _: None)
    train(preset.with_overrides(epochs=1), RunOptions(out_dir=tmp_path / "cut", **options), log=lambda _: None)
    train(preset, RunOptions(out_dir=tmp_path / "cut", resume=True, **options), log=lambda _: None)
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.npz")
    resumed = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    assert resumed.epoch == whole.epoch == 3
    for a, b in zip(whole.weights, resumed.weights, strict=True):
        assert a.tobytes() == b.tobytes()
    assert whole.alphas == resumed.alphas
    strip = ("train_seconds", "synaptic_events_per_second")
    assert [{k: v for k, v in row.items() if k not in strip} for row in whole.metrics] == [
        {k: v for k, v in row.items() if k not in strip} for row in resumed.metrics
    ]


def test_bs4nn_weight_average_keeps_averaged_weights_and_alphas(tmp_path: Path, data_dir: Path) -> None:
    """BS4NN's alphas are stepped by the loop (no log-scales): the average holds them as one array."""
    preset = _tiny(train_images=320, validation_images=100, epochs=1, weight_average=0.9)
    options = RunOptions(out_dir=tmp_path, data_dir=str(data_dir), progress=False, test=False)
    train(preset, options, log=lambda _: None)
    raw, best = load_checkpoint(tmp_path / "checkpoint.npz"), load_checkpoint(tmp_path / "best.npz")
    assert [np.array_equal(w, raw.state[f"average_{i}"]) for i, w in enumerate(best.weights)] == [True, True]
    assert best.alphas == raw.state["average_2"].tolist() != raw.alphas
    assert not np.array_equal(best.weights[0], raw.weights[0])


def test_real_weight_mode_trains(tmp_path: Path, data_dir: Path) -> None:
    preset = _tiny(train_images=300, validation_images=100, epochs=1)
    options = RunOptions(out_dir=tmp_path, data_dir=str(data_dir), binary=False, progress=False, test=False)
    train(preset, options, log=lambda _: None)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.npz")
    assert not checkpoint.binary and checkpoint.alphas == list(preset.alphas)


def test_weight_clip_bounds_the_binary_proxy_weights_only(tmp_path: Path, data_dir: Path) -> None:
    # tiny starts from U[0,5] / U[0,50]: a clip of 0.5 on the hidden layer binds from the start,
    # the output layer is left unbounded; S4NN mode (real weights) never clips.
    preset = _tiny(train_images=320, validation_images=100, epochs=1, weight_clip=(0.5, None))
    options = {"data_dir": str(data_dir), "progress": False, "test": False}
    train(preset, RunOptions(out_dir=tmp_path / "binary", **options), log=lambda _: None)
    hidden, output = load_checkpoint(tmp_path / "binary" / "checkpoint.npz").weights
    assert np.abs(hidden).max() == pytest.approx(0.5) and (hidden < 0).any()  # clipped, and some signs flipped
    assert output.max() > 5.0
    train(preset, RunOptions(out_dir=tmp_path / "real", binary=False, **options), log=lambda _: None)
    assert np.abs(load_checkpoint(tmp_path / "real" / "checkpoint.npz").weights[0]).max() > 0.5
    # the clip has no effect on a real-weight run, so it does not stop that run from resuming without it
    unclipped = dataclasses.replace(preset, epochs=2, weight_clip=None)
    train(unclipped, RunOptions(out_dir=tmp_path / "real", binary=False, resume=True, **options), log=lambda _: None)
    assert load_checkpoint(tmp_path / "real" / "checkpoint.npz").epoch == 2
    with pytest.raises(Bs4nnError, match="weight_clip must be positive numbers or None"):
        _tiny(weight_clip=(0.0, None))
    with pytest.raises(Bs4nnError, match="as many weight clips"):
        _tiny(weight_clip=(0.5,))


def test_epoch_batches_are_a_seeded_permutation() -> None:
    counts = np.random.default_rng(1).integers(0, 300, size=1000)
    batches = epoch_batches(7, 3, counts, 32)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    bucketed = epoch_batches(7, 3, counts, 32, bucket_batches=4)
    assert sorted(np.concatenate(bucketed).tolist()) == list(range(1000))
    assert all(np.all(np.diff(counts[batch]) >= 0) for batch in bucketed)
    assert all(np.array_equal(a, b) for a, b in zip(batches, epoch_batches(7, 3, counts, 32), strict=True))
    assert not np.array_equal(np.concatenate(batches), np.concatenate(epoch_batches(7, 4, counts, 32)))


def test_epoch_batches_with_replacement_draw_online_samples() -> None:
    """Batch size 1, drawn with replacement (the paper's online updates): seeded, repeats, about 1/e missed."""
    counts = np.zeros(5000, np.int64)
    drawn = np.concatenate(epoch_batches(7, 3, counts, 1, with_replacement=True))
    assert len(drawn) == 5000 and drawn.min() >= 0 and drawn.max() < 5000
    missed = 1 - len(np.unique(drawn)) / 5000
    assert abs(missed - np.exp(-1)) < 0.02  # 0.368 expected; a permutation misses none
    again = np.concatenate(epoch_batches(7, 3, counts, 1, with_replacement=True))
    assert np.array_equal(drawn, again)
    assert not np.array_equal(drawn, np.concatenate(epoch_batches(7, 4, counts, 1, with_replacement=True)))
    preset = dataclasses.replace(get_preset("mnist-temporal"), **dict([parse_setting("sample_with_replacement=True")]))
    assert preset.sample_with_replacement is True


# ---------------------------------------------------------------- errors and CLI


@pytest.fixture(scope="module")
def fashion_probe_times(data_dir: Path) -> np.ndarray:
    """Input spike times of the first 256 Fashion-MNIST training images."""
    from bs4nn.train.datasets import load_split

    images, _ = load_split("fashion-mnist", "train", data_dir)
    return encode_images(images[:256])


def _initial_spike_times(name: str, in_times: np.ndarray) -> tuple[list[np.ndarray], int]:
    preset = get_preset(name)
    times, _ = forward(in_times, initial_weights(preset, seed=0), preset.alphas, preset.thetas, preset.tmax)
    return times, preset.tmax


def test_fashion_2x600_paper_init_is_refused(fashion_probe_times: np.ndarray) -> None:
    """Table 1's 2x600 init U[-10,10] leaves hidden layer 2 silent: the run must stop, not train."""
    times, tmax = _initial_spike_times("fashion-2x600-paper", fashion_probe_times)
    with pytest.raises(Bs4nnError, match="hidden layer 2 never fires"):
        check_not_silent(times, tmax, "initial network")


def test_fashion_2x600_init_fires(fashion_probe_times: np.ndarray) -> None:
    """The runnable preset's U[-5,10] init: every layer fires on almost every image (255/256 measured)."""
    times, tmax = _initial_spike_times("fashion-2x600", fashion_probe_times)
    check_not_silent(times, tmax, "initial network")
    assert all(float((spikes < tmax).any(axis=1).mean()) > 0.95 for spikes in times[1:])


def test_one_thread_gradients_do_not_depend_on_blas_threads(fashion_probe_times: np.ndarray) -> None:
    """``--threads 1`` gives the same numbers on any machine: BLAS is held to one thread.

    With two hidden layers the snapshot backward's products change with OpenBLAS's thread count
    (measured: 1.4 million entries differ between 1 and 2 threads over 10 batches of 16).
    """
    from threadpoolctl import threadpool_limits

    preset = get_preset("fashion-2x600")
    assert preset.backward == "snapshot"
    weights = initial_weights(preset, seed=0)
    labels = np.arange(32) % 10

    def gradients(blas_threads: int) -> list[np.ndarray]:
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            batch = Batch(fashion_probe_times[:32], labels)
            params = Parameters(weights, list(preset.alphas), preset.thetas)
            return parallel_batch_gradients(None, preset.rule, batch, params, preset.rule_options()).weight_grads

    for one, two in zip(gradients(1), gradients(2), strict=True):
        np.testing.assert_array_equal(one, two)


def test_nan_is_reported_clearly() -> None:
    with pytest.raises(Bs4nnError, match="NaN/inf"):
        check_finite([np.array([1.0, np.nan])], [1.0], "epoch 1, batch 0", np)
    with pytest.raises(Bs4nnError, match="alpha"):
        check_finite([np.zeros(2)], [float("inf")], "epoch 1, batch 0", np)


def test_cli_reports_a_silent_network(tmp_path: Path, bs4nn_cli) -> None:
    code, _, err = bs4nn_cli(["train", "--preset", "tiny", "--out", str(tmp_path), "--thetas", "1e6", "1e6"])
    assert code == 2
    assert err.count("\n") == 1 and "silent network" in err and "Traceback" not in err


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_cli_reports_diverging_weights(tmp_path: Path, bs4nn_cli) -> None:
    argv = ["train", "--preset", "tiny", "--out", str(tmp_path), "--eta", "1e38", "--quiet", "--train-images", "200"]
    code, _, err = bs4nn_cli(argv)
    assert code == 2 and "NaN/inf" in err and err.count("\n") == 1


def test_cli_help_and_bad_arguments(tmp_path: Path, bs4nn_cli) -> None:
    code, out, _ = bs4nn_cli(["train", "--help"])
    assert code == 0 and "--resume" in out and "validation" in out
    code, _, err = bs4nn_cli(["train", "--preset", "nope"])
    assert code == 2 and "invalid choice" in err
    code, _, err = bs4nn_cli(["train", "--preset", "tiny", "--out", str(tmp_path), "--train-images", "59000"])
    assert code == 2 and "at most 55000 training images" in err and err.count("\n") == 1
    code, _, err = bs4nn_cli(["train", "--preset", "tiny", "--thetas", "5"])
    assert code == 2 and "--thetas needs 2 values" in err
    code, _, err = bs4nn_cli(["train", "--preset", "tiny", "--weight-clip", "0.5"])
    assert code == 2 and "--weight-clip needs 2 values" in err
    code, _, err = bs4nn_cli(["train", "--preset", "tiny", "--weight-clip", "0", "none"])
    assert code == 2 and "must be a positive number" in err
    code, _, err = bs4nn_cli(["train", "--preset", "tiny", "--backward", "snapshot", "--real-weights"])
    assert code == 2 and "cannot train real weights" in err and err.count("\n") == 1


def test_presets_are_consistent() -> None:
    for preset in PRESETS.values():
        if preset.rule.model == "bs4nn":
            assert len(preset.thetas) == len(preset.sizes) - 1 and not preset.windows
        else:  # B1: a window per hidden layer, its scales and windows come from the rule
            assert len(preset.windows) == len(preset.sizes) - 2 and not preset.thetas
    assert get_preset("mnist-paper").thetas == (100.0, 100.0)
    assert get_preset("mnist-paper").target_rule == "eq6" and get_preset("mnist-temporal").target_rule == "hardware"
    # the shipped presets are the snapshot-ce ones; what they train and deploy is the paper's architecture
    for name, sizes in (("mnist", (784, 600, 10)), ("fashion", (784, 1000, 10))):
        assert get_preset(name).backward == "snapshot-ce" and get_preset(name).sizes == sizes
    with pytest.raises(Bs4nnError, match="unknown preset"):
        get_preset("nope")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_set_with_a_fields_own_value_gives_the_same_preset(name: str) -> None:
    preset = get_preset(name)
    for key, value in preset.as_dict().items():
        if key not in FIXED_FIELDS:
            assert preset.with_settings([f"{key}={value!r}"]) == preset, key
    assert preset.with_settings([f"backward={preset.backward}"]) == preset  # a bare word for a text field


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("epochs", "expected KEY=VALUE"),
        ("epochs=", "expected KEY=VALUE"),
        ("sizes=(784, 10)", "'sizes' is not a field --set can change"),
        ("tmax=128", "'tmax' is not a field --set can change"),
        ("nope=1", "'nope' is not a field"),
        ("epochs=3.0", "epochs must be int, got float"),
        ("mirror_images=1", "mirror_images must be bool"),
        ("thetas=None", r"thetas must be tuple\[float, ...\]"),
        ("snapshot_steps=(0.5, 1)", r"snapshot_steps must be tuple\[int, ...\]"),
        ("hidden_dropout=1.5", r"hidden_dropout must be in \[0, 1\)"),
        ("backward=sideways", "backward must be one of"),
    ],
)
def test_set_refuses_bad_settings(setting: str, message: str) -> None:
    with pytest.raises(Bs4nnError, match=message):
        get_preset("tiny-ce").with_settings([setting])


def test_set_parses_literals_into_the_fields_types() -> None:
    assert parse_setting("thetas=[100, 150]") == ("thetas", (100.0, 150.0))
    assert parse_setting("weight-clip=(1, None)") == ("weight_clip", (1.0, None))
    assert parse_setting("init_ranges=((-1, 1), (0, 2))") == ("init_ranges", ((-1.0, 1.0), (0.0, 2.0)))
    assert parse_setting("optimizer=adam") == ("optimizer", "adam")
    with pytest.raises(Bs4nnError, match="a field given twice"):
        get_preset("tiny").with_settings(["epochs=1", "epochs=2"])


def test_cli_augmentation_and_hidden_size_options_reach_the_run(tmp_path: Path, bs4nn_cli, data_dir: Path) -> None:
    argv = ["train", "--preset", "tiny-ce", "--out", str(tmp_path), "--train-images", "200", "--epochs", "1"]
    argv += ["--readout-epochs", "0", "--shift-pixels", "2", "--mirror-images", "--no-calibrate-thresholds"]
    argv += ["--hidden-dropout", "0.3", "--set", "decay_factor=0.5", "--set", "snapshot_steps=(0, 4, 255)"]
    argv += ["--hidden", "30", "--quiet", "--no-test", "--data-dir", str(data_dir)]
    code, _, err = bs4nn_cli(argv)
    assert code == 0, err
    checkpoint = load_checkpoint(tmp_path / "checkpoint.npz")
    run = checkpoint.hyperparameters["run"]["preset"]
    assert run["shift_pixels"] == 2 and run["mirror_images"] is True and run["hidden_dropout"] == 0.3
    assert run["decay_factor"] == 0.5 and run["snapshot_steps"] == [0, 4, 255]
    assert list(checkpoint.sizes) == [784, 30, 10] and checkpoint.weights[0].shape == (30, 784)
    code, _, err = bs4nn_cli(["train", "--preset", "tiny-ce", "--hidden", "30", "20"])
    assert code == 2 and "tiny-ce has 1 hidden layer(s)" in err
    code, _, err = bs4nn_cli(["train", "--preset", "tiny-ce", "--epochs", "2", "--set", "epochs=3"])
    assert code == 2 and "given both as a flag and with --set" in err
    code, _, err = bs4nn_cli(["train", "--preset", "tiny-ce", "--shift-pixels", "-1"])
    assert code == 2 and "--shift-pixels" in err
    code, _, err = bs4nn_cli(["train", "--preset", "tiny-ce", "--hidden-dropout", "1"])
    assert code == 2 and "--hidden-dropout" in err and "[0, 1)" in err


def test_calibration_within_a_decision_step_budget(data_dir: Path) -> None:
    """The shipped MNIST model's output count, chosen on 500 validation images for accuracy alone and
    for the most accurate count whose mean decision step is within a budget below it."""
    from bs4nn.train.calibration import BUDGET_COUNT_SCALES, calibrate_thresholds
    from bs4nn.train.finish import checkpoint_network

    network = checkpoint_network(load_checkpoint(Path(__file__).parents[1] / "train/pretrained/mnist.npz"))
    images, labels = split_data(get_preset("mnist"), str(data_dir))["validation"]
    data = LabelledImages(images[:500], labels[:500])
    free = calibrate_thresholds(network, data, scales=BUDGET_COUNT_SCALES, layers=[1])
    budget = free.mean_decision_time - 20
    early = calibrate_thresholds(network, data, scales=BUDGET_COUNT_SCALES, layers=[1], max_mean_decision_time=budget)
    assert early.mean_decision_time <= budget and early.counts[1] < free.counts[1]
    within = [row for row in early.tried if row["mean_decision_time"] <= budget]
    assert within and early.accuracy == max(row["accuracy"] for row in within)  # the most accurate in the budget
    assert early.accuracy < free.accuracy  # here deciding earlier costs accuracy
    rescored = evaluate(dataclasses.replace(network, thetas=early.thetas), data)
    assert (rescored["accuracy"], rescored["mean_decision_time"]) == (early.accuracy, early.mean_decision_time)
    with pytest.raises(Bs4nnError, match="decision_step_budget must be a positive integer"):
        get_preset("mnist").with_overrides(decision_step_budget=0)


def test_training_with_replacement_differs_and_resumes_as_one_run(tmp_path: Path, data_dir: Path) -> None:
    preset = _tiny(train_images=640, validation_images=200, epochs=2, calibrate_thresholds=False)
    drawn = dataclasses.replace(preset, sample_with_replacement=True)
    quiet = {"data_dir": str(data_dir), "progress": False, "test": False}
    train(preset, RunOptions(out_dir=tmp_path / "perm", **quiet), log=lambda _: None)
    train(drawn, RunOptions(out_dir=tmp_path / "drawn", **quiet), log=lambda _: None)
    train(dataclasses.replace(drawn, epochs=1), RunOptions(out_dir=tmp_path / "split", **quiet), log=lambda _: None)
    train(drawn, RunOptions(out_dir=tmp_path / "split", resume=True, **quiet), log=lambda _: None)
    runs = ("perm", "drawn", "split")
    weights = {name: load_checkpoint(tmp_path / name / "checkpoint.npz").weights[0] for name in runs}
    assert not np.array_equal(weights["perm"], weights["drawn"])
    assert weights["drawn"].tobytes() == weights["split"].tobytes()

"""The snapshot-ce mode: hand-computed gradients, Adam, the readout epochs, exact resume, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bs4nn.errors import Bs4nnError
from bs4nn.train.checkpoint import load_checkpoint
from bs4nn.train.network import forward, last_hidden_times
from bs4nn.train.optimizers import ADAM_BETAS, ADAM_EPS, Adam, Sgd, make_optimizer
from bs4nn.train.presets import get_preset
from bs4nn.train.rules import RULES, Batch, Parameters, batch_gradients
from bs4nn.train.rules.snapshot import SnapshotOptions
from bs4nn.train.rules.snapshot_ce import SnapshotCeOptions, snapshot_ce_gradients
from bs4nn.train.run import RunOptions
from bs4nn.train.trainer import train

TMAX = 256


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# ---------------------------------------------------------------- hand-computed cases


def test_snapshot_ce_gradients_without_hidden_layer_hand_computed() -> None:
    # 3 pixels at t = 0, 1, never; snapshots s = 0, 2: bits (1, 0, 0) and (1, 1, 0), summed (2, 1, 0)
    in_times = np.array([[0, 1, TMAX]])
    weights = [np.array([[0.3, -0.2, 0.1], [-0.4, 0.5, 0.6]], dtype=np.float32)]  # signs + - + / - + +
    grads, scale_grad, loss, correct = snapshot_ce_gradients(
        in_times, np.array([0]), weights, [], 0.5, snapshot_steps=(0, 2), surrogate_width=2.0
    )
    # summed counters 2 - 1 = 1 and -2 + 1 = -1; scores 0.5 and -0.5; label 0
    p0 = _sigmoid(1.0)
    assert loss == pytest.approx(-math.log(p0), rel=1e-6)
    assert correct == 1
    g = np.array([p0 - 1, 1 - p0])  # softmax minus one-hot
    np.testing.assert_allclose(grads[0], 0.5 * np.outer(g, [2, 1, 0]), rtol=1e-6)
    assert scale_grad == pytest.approx(float(g @ [1, -1]), rel=1e-6)


def test_snapshot_ce_gradients_through_a_hidden_layer_hand_computed() -> None:
    # 2 pixels at t = 0 and 3; snapshots s = 0, 4: bits (1, 0) and (1, 1)
    in_times = np.array([[0, 3]])
    hidden_w = np.array([[0.5, 0.5], [0.5, -0.5]], dtype=np.float32)  # signs + + / + -
    output_w = np.array([[0.2, -0.2], [-0.2, 0.2]], dtype=np.float32)  # signs + - / - +
    grads, scale_grad, loss, correct = snapshot_ce_gradients(
        in_times, np.array([1]), [hidden_w, output_w], [2], 1.0, snapshot_steps=(0, 4), surrogate_width=2.0
    )
    # hidden counters: s = 0 -> (1, 1), s = 4 -> (2, 0); count 2 reached by hidden 0 at s = 4 only:
    # spiked bits (0, 0) then (1, 0), summed (1, 0); output counters summed (1, -1); label 1 loses
    p1 = _sigmoid(-2.0)
    assert loss == pytest.approx(-math.log(p1), rel=1e-6) and correct == 0
    g = np.array([1 - p1, p1 - 1])
    np.testing.assert_allclose(grads[1], np.outer(g, [1, 0]), rtol=1e-6)
    assert scale_grad == pytest.approx(float(g @ [1, -1]), rel=1e-6)
    # back through the output signs: (g0 - g1, -g0 + g1), at both snapshots; triangle around 1.5 of
    # half-width 2: 0.75 at counters 1 and 2, 0.25 at counter 0
    back = np.array([g[0] - g[1], g[1] - g[0]])
    delta_s0 = back * [0.75, 0.75]
    delta_s4 = back * [0.75, 0.25]
    np.testing.assert_allclose(grads[0], np.outer(delta_s0, [1, 0]) + np.outer(delta_s4, [1, 1]), rtol=1e-6)


def test_snapshot_ce_spikes_are_final_and_late_inputs_count_nowhere() -> None:
    # A hidden neuron that reaches its count at s = 0 stays spiked at s = 4 although its counter fell;
    # a pixel that never spikes (t = tmax) is in no snapshot, even s = tmax - 1.
    in_times = np.array([[0, 3, TMAX]])
    hidden_w = np.array([[0.5, -0.5, 0.5]], dtype=np.float32)
    output_w = np.array([[0.5], [-0.5]], dtype=np.float32)
    _, _, loss, _ = snapshot_ce_gradients(
        in_times, np.array([0]), [hidden_w, output_w], [1], 1.0, snapshot_steps=(0, 4, TMAX - 1), surrogate_width=2.0
    )
    # spiked at all three snapshots: summed output counters (3, -3), loss -log softmax(3, -3)[0]
    assert loss == pytest.approx(-math.log(_sigmoid(6.0)), rel=1e-4)  # float32 log-softmax


def test_batch_gradients_dispatches_snapshot_ce_and_sums_over_the_batch() -> None:
    rng = np.random.default_rng(3)
    in_times = rng.integers(0, TMAX + 1, size=(6, 20))
    labels = rng.integers(0, 4, size=6)
    weights = [rng.uniform(-1, 1, (8, 20)).astype(np.float32), rng.uniform(-1, 1, (4, 8)).astype(np.float32)]
    rule, options = RULES["snapshot-ce"], SnapshotCeOptions(TMAX, snapshot_steps=(0, 64, 200))
    params = Parameters(weights, [1.0, 1.0], [2.5, 1.5], extras={"readout_scale": 0.3})
    whole = batch_gradients(rule, Batch(in_times, labels), params, options, np)
    parts = [
        batch_gradients(rule, Batch(in_times[rows], labels[rows]), params, options, np)
        for rows in (slice(0, 2), slice(2, 6))
    ]
    for layer in range(2):
        np.testing.assert_allclose(whole.weight_grads[layer], sum(p.weight_grads[layer] for p in parts), atol=1e-6)
    scale_grads = [p.extra_grads["readout_scale"] for p in parts]
    assert whole.extra_grads["readout_scale"] == pytest.approx(sum(scale_grads), rel=1e-5)
    assert whole.trained == 6 and whole.silent == 0 and math.isnan(whole.output_time_sum)
    assert whole.alpha_grads == [0.0, 0.0]
    real = Parameters(weights, [1.0, 1.0], [2.5, 1.5], binary=False, extras={"readout_scale": 0.3})
    for backward, rule_options in (("snapshot-ce", options), ("snapshot", SnapshotOptions(TMAX))):
        with pytest.raises(Bs4nnError, match=f"the {backward} backward .* needs binary weights"):  # counter rules
            batch_gradients(RULES[backward], Batch(in_times, labels), real, rule_options, np)


def test_last_hidden_times_in_chunks_equal_the_forward_pass() -> None:
    rng = np.random.default_rng(5)
    in_times = rng.integers(0, TMAX + 1, size=(37, 30)).astype(np.int16)
    weights = [rng.uniform(-1, 1, shape).astype(np.float32) for shape in ((12, 30), (12, 12), (4, 12))]
    alphas, thetas = [1.0] * 3, [2.5, 1.5, 1.5]
    times, _ = forward(in_times.astype(np.int32), weights, alphas, thetas, TMAX)
    cached = last_hidden_times(in_times, weights, alphas, thetas, TMAX, chunk=8)
    assert cached.dtype == np.int16 and np.array_equal(cached, times[-2])


# ---------------------------------------------------------------- optimisers


def test_adam_first_steps_follow_the_formula() -> None:
    param = np.array([1.0, -2.0], dtype=np.float32)
    adam = Adam([param])
    grads = [np.array([0.5, -4.0], dtype=np.float32), np.array([-1.0, 2.0], dtype=np.float32)]
    first = np.zeros(2)
    second = np.zeros(2)
    expected = param.astype(np.float64)
    for step, grad in enumerate(grads, start=1):
        (param,) = adam.step([param], [grad], 0.1)
        first = ADAM_BETAS[0] * first + (1 - ADAM_BETAS[0]) * grad
        second = ADAM_BETAS[1] * second + (1 - ADAM_BETAS[1]) * grad.astype(np.float64) ** 2
        m_hat, v_hat = first / (1 - ADAM_BETAS[0] ** step), second / (1 - ADAM_BETAS[1] ** step)
        expected = expected - 0.1 * m_hat / (np.sqrt(v_hat) + ADAM_EPS)
    np.testing.assert_allclose(param, expected, rtol=1e-5)
    # the first step moves every entry by lr against its gradient's sign, whatever its size
    (moved,) = Adam([np.zeros(3)]).step([np.zeros(3)], [np.array([0.05, -5.0, 2.0])], 0.1)
    np.testing.assert_allclose(moved, [-0.1, 0.1, -0.1], rtol=1e-4)


def test_adam_state_round_trips_and_bad_state_is_refused() -> None:
    params = [np.ones((2, 3), dtype=np.float32)]
    adam = Adam(params)
    params = adam.step(params, [np.full((2, 3), 0.5, dtype=np.float32)], 0.01)
    restored = Adam([np.ones((2, 3), dtype=np.float32)])
    restored.load_state(adam.state_arrays("opt"), "opt")
    grad = [np.full((2, 3), -1.0, dtype=np.float32)]
    assert adam.step(params, grad, 0.01)[0].tobytes() == restored.step(params, grad, 0.01)[0].tobytes()
    with pytest.raises(Bs4nnError, match="lacks the optimiser state"):
        Adam(params).load_state({}, "opt")
    wrong = {**adam.state_arrays("opt"), "opt_first_0": np.zeros(4)}
    with pytest.raises(Bs4nnError, match="shape"):
        Adam(params).load_state(wrong, "opt")
    assert isinstance(make_optimizer("sgd", params), Sgd) and Sgd(params).state_arrays("x") == {}
    with pytest.raises(Bs4nnError, match="unknown optimizer"):
        make_optimizer("lbfgs", params)


# ---------------------------------------------------------------- runs


def _tiny_ce(**changes):
    return get_preset("tiny-ce").with_overrides(**changes)


def _quiet(_: str) -> None:
    pass


def test_tiny_ce_learns_then_trains_the_readout(tmp_path: Path, data_dir: Path) -> None:
    logged: list[str] = []
    options = {"data_dir": str(data_dir), "progress": False}
    summary = train(_tiny_ce(), RunOptions(out_dir=tmp_path, **options), log=logged.append)
    assert summary["validation_accuracy"] > 0.5 and summary["test"]["accuracy"] > 0.5  # chance: 0.10
    checkpoint = load_checkpoint(tmp_path / "checkpoint.npz")
    assert [row["phase"] for row in checkpoint.metrics] == ["train", "train", "readout"]
    assert checkpoint.metrics[0]["train_mean_output_time"] is None  # snapshot-ce has no output spike times
    assert checkpoint.alphas == [5.0, 5.0]  # this mode never moves the alphas
    assert all(np.abs(w).max() <= 1.0 for w in checkpoint.weights)  # the preset's clip
    assert checkpoint.state["readout_scale"].shape == (1,)
    assert "readout_optimizer_step" in checkpoint.state and "optimizer_step" not in checkpoint.state
    # the switch chose the output count on validation, and the readout epoch trained at it
    switch = next(line for line in logged if line.startswith("output count "))
    count = int(switch.split()[2])
    assert checkpoint.metrics[1]["threshold_counts"] == [20, 20]  # the preset's, before the switch
    assert checkpoint.metrics[-1]["threshold_counts"] == [20, count]
    assert (tmp_path / "calibrated.npz").is_file()
    # the readout epoch left the hidden layer as training left it; without readout epochs the
    # calibration after training searches the untrained output count widely first, as the switch does
    logged.clear()
    no_readout = train(_tiny_ce(readout_epochs=0), RunOptions(out_dir=tmp_path / "none", **options), log=logged.append)
    trained_only = load_checkpoint(tmp_path / "none" / "checkpoint.npz")
    assert trained_only.weights[0].tobytes() == checkpoint.weights[0].tobytes()
    assert trained_only.weights[1].tobytes() != checkpoint.weights[1].tobytes()
    if no_readout["best_epoch"] == 2:  # best.npz is the last training epoch: the wide search ran on it
        assert [line.split()[2] for line in logged if line.startswith("output count ")] == [str(count)]
    assert sum(line.startswith("output count ") for line in logged) == 1


def test_tiny_ce_resume_equals_uninterrupted_across_the_switch(tmp_path: Path, data_dir: Path) -> None:
    # with the augmentation and the hidden dropout on, whose draws must resume exactly too
    augmented = {"shift_pixels": 1, "mirror_images": True, "hidden_dropout": 0.2}
    preset = _tiny_ce(train_images=400, validation_images=200, readout_epochs=2, **augmented)
    options = {"data_dir": str(data_dir), "progress": False, "test": False}
    train(preset, RunOptions(out_dir=tmp_path / "whole", **options), log=_quiet)
    # killed after epoch 1 (training), then after epoch 3 (the first readout epoch)
    cut = tmp_path / "cut"
    train(preset.with_overrides(epochs=1, readout_epochs=0), RunOptions(out_dir=cut, **options), log=_quiet)
    train(preset.with_overrides(readout_epochs=1), RunOptions(out_dir=cut, resume=True, **options), log=_quiet)
    train(preset, RunOptions(out_dir=cut, resume=True, **options), log=_quiet)
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.npz")
    resumed = load_checkpoint(cut / "checkpoint.npz")
    assert resumed.epoch == whole.epoch == 4
    for a, b in zip(whole.weights, resumed.weights, strict=True):
        assert a.tobytes() == b.tobytes()
    assert whole.thetas == resumed.thetas
    for name, value in whole.state.items():
        assert value.tobytes() == resumed.state[name].tobytes(), name
    strip = ("train_seconds", "synaptic_events_per_second")
    assert [{k: v for k, v in row.items() if k not in strip} for row in whole.metrics] == [
        {k: v for k, v in row.items() if k not in strip} for row in resumed.metrics
    ]
    # once the readout epochs have begun, the training epochs cannot be extended
    with pytest.raises(Bs4nnError, match="would train every layer again"):
        train(preset.with_overrides(epochs=3), RunOptions(out_dir=cut, resume=True, **options), log=_quiet)


def test_snapshot_ce_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(Bs4nnError, match="snapshot_steps ascending"):
        _tiny_ce(snapshot_steps=())
    with pytest.raises(Bs4nnError, match="snapshot_steps ascending"):
        _tiny_ce(snapshot_steps=(4, 2))
    with pytest.raises(Bs4nnError, match="snapshot_steps ascending"):
        _tiny_ce(snapshot_steps=(0, TMAX))
    with pytest.raises(Bs4nnError, match="optimizer must be one of"):
        _tiny_ce(optimizer="rmsprop")
    with pytest.raises(Bs4nnError, match="readout_epochs must be an integer >= 0"):
        _tiny_ce(readout_epochs=-1)
    with pytest.raises(Bs4nnError, match="cannot train real weights"):
        train(_tiny_ce(), RunOptions(out_dir=tmp_path, binary=False, progress=False), log=_quiet)

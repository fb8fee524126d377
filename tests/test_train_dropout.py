"""Hidden dropout (snapshot-ce): the masks, their effect on a hand-computed case, the batch split."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.errors import Bs4nnError
from bs4nn.train.epochs import keep_masks
from bs4nn.train.presets import get_preset
from bs4nn.train.rules import RULES, Batch, Parameters, batch_gradients
from bs4nn.train.rules.snapshot import SnapshotOptions
from bs4nn.train.rules.snapshot_ce import SnapshotCeOptions, snapshot_ce_gradients
from bs4nn.train.trainer import parallel_batch_gradients

TMAX = 256


def test_masks_are_inverted_dropout_and_a_function_of_seed_epoch_and_batch() -> None:
    masks = keep_masks(seed=0, epoch=3, batch_index=7, batch=200, hidden_sizes=(300, 50), rate=0.25)
    assert [mask.shape for mask in masks] == [(200, 300), (200, 50)]
    assert all(mask.dtype == np.float32 for mask in masks)
    assert set(np.unique(masks[0])) == {np.float32(0), np.float32(1 / 0.75)}
    assert 0.23 < float((masks[0] == 0).mean()) < 0.27
    again = keep_masks(seed=0, epoch=3, batch_index=7, batch=200, hidden_sizes=(300, 50), rate=0.25)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(masks, again, strict=True))
    for other in ({"seed": 1, "epoch": 3, "batch_index": 7}, {"seed": 0, "epoch": 4, "batch_index": 7}):
        moved = keep_masks(**other, batch=200, hidden_sizes=(300, 50), rate=0.25)
        assert moved[0].tobytes() != masks[0].tobytes()
    assert keep_masks(seed=0, epoch=1, batch_index=0, batch=4, hidden_sizes=(5,), rate=0.0)[0].min() == 1


def _hand_case() -> tuple[np.ndarray, list[np.ndarray]]:
    # as test_snapshot_ce_gradients_through_a_hidden_layer_hand_computed: hidden 0 spikes at s = 4, hidden 1 never
    in_times = np.array([[0, 3]])
    hidden_w = np.array([[0.5, 0.5], [0.5, -0.5]], dtype=np.float32)
    output_w = np.array([[0.2, -0.2], [-0.2, 0.2]], dtype=np.float32)
    return in_times, [hidden_w, output_w]


def test_a_dropped_hidden_neuron_is_silent_and_gets_no_gradient() -> None:
    in_times, weights = _hand_case()
    options = {"snapshot_steps": (0, 4), "surrogate_width": 2.0}
    dropped = [np.array([[0.0, 2.0]], dtype=np.float32)]  # hidden 0 dropped (rate 1/2), hidden 1 kept x2
    grads, scale_grad, loss, correct = snapshot_ce_gradients(
        in_times, np.array([1]), weights, [2], 1.0, keep_masks=dropped, **options
    )
    # the only spiking hidden neuron is dropped: both outputs count 0, scores tie, loss log 2
    assert loss == pytest.approx(math.log(2), rel=1e-6) and correct == 0  # argmax ties to output 0
    np.testing.assert_array_equal(grads[1], np.zeros((2, 2)))
    assert scale_grad == 0
    # hidden 0's surrogate gradient is masked away; hidden 1 (kept, x2) still gets one
    assert not grads[0][0].any() and grads[0][1].any()
    kept = [np.array([[2.0, 2.0]], dtype=np.float32)]  # both kept at x2: the summed counters double
    label = np.array([1])
    _, _, doubled_loss, _ = snapshot_ce_gradients(in_times, label, weights, [2], 1.0, keep_masks=kept, **options)
    _, _, plain_loss, _ = snapshot_ce_gradients(in_times, label, weights, [2], 2.0, **options)
    assert doubled_loss == pytest.approx(plain_loss, rel=1e-6)  # a kept bit x2 == the readout scale x2


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), rate=st.sampled_from([0.0, 0.2, 0.5]))
def test_masks_of_ones_change_nothing_and_the_split_batch_sums_to_the_whole(seed: int, rate: float) -> None:
    rng = np.random.default_rng(seed)
    in_times = rng.integers(0, TMAX + 1, size=(6, 20))
    labels = rng.integers(0, 4, size=6)
    weights = [rng.uniform(-1, 1, shape).astype(np.float32) for shape in ((8, 20), (7, 8), (4, 7))]
    params = Parameters(weights, [1.0] * 3, [2.5, 1.5, 1.5], extras={"readout_scale": 1.0})
    rule, options = RULES["snapshot-ce"], SnapshotCeOptions(TMAX, snapshot_steps=(0, 64, 200))
    ones = [np.ones((6, 8), np.float32), np.ones((6, 7), np.float32)]
    plain = batch_gradients(rule, Batch(in_times, labels), params, options, np)
    with_ones = batch_gradients(rule, Batch(in_times, labels, ones), params, options, np)
    for a, b in zip(plain.weight_grads, with_ones.weight_grads, strict=True):
        np.testing.assert_array_equal(a, b)
    masks = keep_masks(seed, 1, 0, 6, (8, 7), rate)
    whole = parallel_batch_gradients(None, rule, Batch(in_times, labels, masks), params, options)
    with ThreadPoolExecutor(max_workers=2) as pool:
        halves = parallel_batch_gradients(pool, rule, Batch(in_times, labels, masks), params, options)
    for a, b in zip(whole.weight_grads, halves.weight_grads, strict=True):
        # float32 sums in another order: relative error of a few ulps on large entries
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert whole.loss == pytest.approx(halves.loss, rel=1e-5)


def test_dropout_outside_snapshot_ce_and_bad_rates_are_refused() -> None:
    preset = get_preset("tiny-ce")
    for rate in (-0.1, 1.0):
        with pytest.raises(Bs4nnError, match=r"hidden_dropout must be in \[0, 1\)"):
            preset.with_overrides(hidden_dropout=rate)
    with pytest.raises(Bs4nnError, match="hidden_dropout is a snapshot-ce, b1 option"):
        get_preset("tiny").with_overrides(hidden_dropout=0.2)
    in_times, weights = _hand_case()
    with pytest.raises(Bs4nnError, match="hidden dropout is a snapshot-ce, b1 option"):
        batch_gradients(
            RULES["snapshot"],
            Batch(in_times, np.array([1]), [np.ones((1, 2), np.float32)]),
            Parameters(weights, [1.0, 1.0], [1.5, 1.5]),
            SnapshotOptions(TMAX),
            np,
        )

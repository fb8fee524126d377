"""The time semantics contract: coding, exact thresholds, the decision rule."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bs4nn.sim.semantics import IMAX, TMAX, decide, encode_images, layer_spike_times, threshold_count


def test_coding_endpoints():
    times = encode_images(np.array([[255, 0, 1, 128]], dtype=np.uint8))
    # bright first; black never (tmax); I=1 is the last step an input can use
    assert times.tolist() == [[0, TMAX, 254, (127 * 256) // 255]]


@given(st.integers(0, IMAX), st.integers(1, 1024))
def test_coding_is_floor_of_eq1(intensity, tmax):
    time = int(encode_images(np.array([[intensity]]), tmax=tmax)[0, 0])
    assert time == math.floor(Fraction((IMAX - intensity) * tmax, IMAX))
    assert (time >= tmax) == (intensity == 0)


def test_coding_rejects_bad_pixels():
    with pytest.raises(ValueError, match=r"0\.\.255"):
        encode_images(np.array([[256]]))
    with pytest.raises(ValueError, match="integers"):
        encode_images(np.array([[0.5]]))


def test_threshold_count_is_exact_on_decimals():
    assert threshold_count(3, 0.3) == 10  # float 0.3 < 3/10 would give 11
    assert threshold_count(100, 5) == 20
    assert threshold_count(100, "4.87") == 21
    assert threshold_count(Decimal("700"), Decimal("0.07")) == 10000
    with pytest.raises(ValueError):
        threshold_count(100, 0)
    with pytest.raises(ValueError):
        threshold_count(100, -1.5)


@given(st.integers(1, 2000), st.integers(1, 999))
def test_threshold_count_matches_integer_comparison(theta, alpha_hundredths):
    alpha = Decimal(alpha_hundredths) / 100
    count = threshold_count(theta, alpha)
    assert alpha * count >= theta > alpha * (count - 1)


def test_decision_ties_and_silence():
    out_times = np.array([[5, 3, 3], [TMAX, TMAX, TMAX], [TMAX, TMAX, TMAX]])
    counts = np.array([[0, 0, 0], [2, 7, 7], [-1, -3, -2]])
    decision, when = decide(out_times, counts)
    assert decision.tolist() == [1, 1, 0]
    assert when.tolist() == [3, TMAX, TMAX]


def test_spikes_of_one_step_are_integrated_before_the_test():
    # +1 then -1 at the same step never crosses threshold 1: the test sees the step's sum.
    weights = np.array([[1, -1, 1]], dtype=np.int8)
    spikes, final = layer_spike_times(np.array([[4, 4, 9]]), weights, 1)
    assert spikes.tolist() == [[9]] and final.tolist() == [[1]]

"""Bounded proofs (Yosys SAT) that a neuron fires at most once and no counter wraps."""

from __future__ import annotations

import pytest

from bs4nn.rtl.formal import prove_core
from bs4nn.sim.golden import random_network

# 3-3-2 network, 2 lanes (2 counter words in layer 0), 4 time steps, thresholds 1: neurons do fire
SMALL = random_network([3, 3, 2], [1, 1], seed=0, tmax=4)
LANES = 2
DEPTH = 24  # reset, clear, a short image with spikes in both layers, its result
DEEP = 40  # a second image after the first


def test_fire_once_and_no_wrap_proved_for_a_small_core() -> None:
    result = prove_core(SMALL, LANES, DEPTH)
    assert result.assertions == 6  # one wrap check per lane and layer, one fire-once check per layer
    assert result.proved, result.log[-3000:]


def test_without_the_input_assumption_a_counter_wraps() -> None:
    # the same pixel sent again and again drives a counter past its width: the check is not vacuous
    result = prove_core(SMALL, LANES, 20, assume_valid_input=False)
    assert not result.proved


@pytest.mark.slow
def test_fire_once_and_no_wrap_proved_over_several_images() -> None:
    result = prove_core(SMALL, LANES, DEEP)
    assert result.proved, result.log[-3000:]

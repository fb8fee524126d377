"""Bounded proofs (Yosys SAT) that a neuron fires at most once and no counter (BS4NN) or
potential (B1) wraps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bs4nn.lanes import MAX_LANES
from bs4nn.rtl.b1core import B1Core, B1CoreParams
from bs4nn.rtl.core import Bs4nnCore
from bs4nn.rtl.family import core_params, worst_case_cycles_of
from bs4nn.rtl.formal import prove, prove_core
from bs4nn.sim.b1 import B1Network, random_b1_network
from bs4nn.sim.golden import random_network

# 3-3-2 network, 2 lanes (2 counter words in layer 0), 4 time steps, thresholds 1: neurons do fire
SMALL = random_network([3, 3, 2], [1, 1], seed=0, tmax=4)
LANES = 2
WIDE = MAX_LANES + 1  # the wide core
# reset, the clear, a short image with spikes in both layers (11-13 cycles by rtl/cycles.py, e.g.
# every pixel at step 0) and its result: the wide core's proof grows fast (16: 12 s, 24: 190 s)
WIDE_DEPTH = 16
DEPTH = 24  # reset, clear, a short image with spikes in both layers, its result
DEEP = 40  # a second image after the first


def test_fire_once_and_no_wrap_proved_for_a_small_core() -> None:
    result = prove_core(SMALL, LANES, DEPTH)
    assert result.assertions == 6  # one wrap check per lane and layer, one fire-once check per layer
    assert result.proved, result.log[-3000:]


def test_fire_once_and_no_wrap_proved_for_a_paired_core() -> None:
    """Two events a sweep, back to back (2 words: the look-ahead in a sweep's first word)."""
    result = prove(Bs4nnCore(SMALL, LANES, formal=True, paired=True), DEPTH)
    assert result.assertions == 6
    assert result.proved, result.log[-3000:]


def test_fire_once_and_no_wrap_proved_for_the_wide_core() -> None:
    """The wide core (every counter a register, a row per cycle, the spike queue, steps overlapped):
    one no-wrap check per lane of each layer, one fire-once check per layer."""
    result = prove_core(SMALL, WIDE, WIDE_DEPTH)
    assert result.assertions == 7
    assert result.proved, result.log[-3000:]


def test_without_the_input_assumption_a_wide_core_counter_wraps() -> None:
    assert not prove_core(SMALL, WIDE, WIDE_DEPTH, assume_valid_input=False).proved


@pytest.mark.slow
def test_the_wide_core_proved_over_more_cycles() -> None:
    result = prove_core(SMALL, WIDE, DEPTH)
    assert result.proved, result.log[-3000:]


def test_without_the_input_assumption_a_counter_wraps() -> None:
    # the same pixel sent again and again drives a counter past its width: the check is not vacuous
    result = prove_core(SMALL, LANES, 20, assume_valid_input=False)
    assert not result.proved


@pytest.mark.slow
def test_fire_once_and_no_wrap_proved_over_several_images() -> None:
    result = prove_core(SMALL, LANES, DEEP)
    assert result.proved, result.log[-3000:]


# --- B1: no potential wraps, a hidden neuron fires at most once (the same proof driver) ---

# 2-2-2, 2 lanes, tmax 4, ramp 2, window 3: mixed weight signs, each hidden neuron fires for some
# images and not for others, every bias fits one bit less than its layer's potentials need
B1_SMALL = random_b1_network([2, 2, 2], 1, [2], [3], seed=5, tmax=4)
B1_3BIT = random_b1_network([2, 2, 2], 3, [2], [3], seed=5, tmax=4)
B1_WIDE = random_b1_network([3, 3, 2], 1, [2], [3], seed=2, tmax=4)  # 2 potential words in layer 0: lane masking


def _one_image(network: B1Network, lanes: int) -> int:
    """Depth of reset plus the longest image (every pixel, every hidden spike) and its clear and result."""
    return 1 + worst_case_cycles_of(core_params(network, lanes))


class _NarrowB1Core(B1Core):
    """The B1 core with layer ``narrow``'s potentials one bit narrower than the manifest's width."""

    def __init__(self, network: B1Network, lanes: int, narrow: int):
        self.narrow = narrow
        super().__init__(network, lanes, formal=True)

    def _core_params(self, network: B1Network, lanes: int) -> B1CoreParams:
        params = super()._core_params(network, lanes)
        layers = list(params.layers)
        layers[self.narrow] = replace(layers[self.narrow], potential_bits=layers[self.narrow].potential_bits - 1)
        return replace(params, layers=tuple(layers))


def test_b1_no_potential_wraps_and_hidden_fire_once_proved_over_one_image() -> None:
    depth = _one_image(B1_SMALL, LANES)
    assert depth == 24
    result = prove_core(B1_SMALL, LANES, depth)
    assert result.assertions == 5  # one wrap check per lane and layer, one fire-once check for the hidden layer
    assert result.proved, result.log[-3000:]


@pytest.mark.parametrize("narrow", [0, 1])
def test_b1_potentials_one_bit_too_narrow_wrap(narrow: int) -> None:
    # the manifest's potential_bits are tight: one bit less and some input makes a potential wrap
    # (the biases still fit that width, so it is the integration that wraps, not the clear)
    result = prove(_NarrowB1Core(B1_SMALL, LANES, narrow), _one_image(B1_SMALL, LANES))
    assert result.assertions == 5
    assert not result.proved


def test_b1_without_the_input_assumption_a_potential_wraps() -> None:
    result = prove_core(B1_SMALL, LANES, 20, assume_valid_input=False)
    assert not result.proved


def test_b1_b_bit_potentials_proved_not_to_wrap_and_one_bit_less_wraps() -> None:
    """3-bit weights (a multiply per lane): the manifest's potential_bits are proved enough, and
    tight (layer 0, whose events are worth up to tmax, one bit narrower wraps)."""
    depth = _one_image(B1_3BIT, LANES)
    result = prove_core(B1_3BIT, LANES, depth)
    assert result.assertions == 5 and result.proved, result.log[-3000:]
    assert not prove(_NarrowB1Core(B1_3BIT, LANES, 0), depth).proved


@pytest.mark.slow
def test_b1_proved_over_two_images() -> None:
    result = prove_core(B1_SMALL, LANES, 2 * _one_image(B1_SMALL, LANES) - 1)
    assert result.proved, result.log[-3000:]


@pytest.mark.slow
def test_b1_proved_over_one_image_with_two_potential_words() -> None:
    result = prove_core(B1_WIDE, LANES, _one_image(B1_WIDE, LANES))
    assert result.proved, result.log[-3000:]

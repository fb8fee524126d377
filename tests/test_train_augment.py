"""Augmentation of the coded training images: where pixels go, what comes in, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.errors import Bs4nnError
from bs4nn.train.epochs import epoch_moves, move_images
from bs4nn.train.presets import get_preset

TMAX = 256
SIDE = 5
ROWS, COLS = np.divmod(np.arange(SIDE * SIDE), SIDE)


def _one_pixel(row: int, col: int, time: int = 7) -> np.ndarray:
    times = np.full((1, SIDE * SIDE), TMAX)
    times[0, row * SIDE + col] = time
    return times


def test_a_pixel_moves_down_and_left_by_the_shift() -> None:
    moved = move_images(_one_pixel(1, 3), np.array([[2, -1, 0]]), TMAX)
    np.testing.assert_array_equal(moved, _one_pixel(3, 2))


def test_a_mirrored_pixel_is_reflected_then_shifted() -> None:
    np.testing.assert_array_equal(move_images(_one_pixel(1, 3), np.array([[0, 0, 1]]), TMAX), _one_pixel(1, 1))
    np.testing.assert_array_equal(move_images(_one_pixel(1, 3), np.array([[1, 1, 1]]), TMAX), _one_pixel(2, 2))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, TMAX), min_size=SIDE * SIDE, max_size=SIDE * SIDE),
    st.integers(-SIDE, SIDE),
    st.integers(-SIDE, SIDE),
)
def test_shifting_back_restores_every_pixel_that_stayed_inside(pixels: list[int], dy: int, dx: int) -> None:
    times = np.array([pixels])
    there = move_images(times, np.array([[dy, dx, 0]]), TMAX)
    back = move_images(there, np.array([[-dy, -dx, 0]]), TMAX)
    stayed = (ROWS + dy >= 0) & (ROWS + dy < SIDE) & (COLS + dx >= 0) & (COLS + dx < SIDE)
    np.testing.assert_array_equal(back[0][stayed], times[0][stayed])
    assert (back[0][~stayed] == TMAX).all()  # what left the frame comes back silent
    assert sorted(there[0][there[0] < TMAX]) == sorted(times[0][stayed & (times[0] < TMAX)])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, TMAX), min_size=SIDE * SIDE, max_size=SIDE * SIDE))
def test_mirroring_twice_is_the_identity(pixels: list[int]) -> None:
    times = np.array([pixels])
    once = move_images(times, np.array([[0, 0, 1]]), TMAX)
    np.testing.assert_array_equal(once[0].reshape(SIDE, SIDE), times[0].reshape(SIDE, SIDE)[:, ::-1])
    np.testing.assert_array_equal(move_images(once, np.array([[0, 0, 1]]), TMAX), times)


def test_each_row_gets_its_own_move_and_zero_is_the_identity() -> None:
    rng = np.random.default_rng(0)
    times = rng.integers(0, TMAX + 1, size=(3, SIDE * SIDE))
    moved = move_images(times, np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0]]), TMAX)
    np.testing.assert_array_equal(moved[[0, 2]], times[[0, 2]])
    np.testing.assert_array_equal(moved[1].reshape(SIDE, SIDE)[1:], times[1].reshape(SIDE, SIDE)[:-1])


def test_epoch_moves_are_bounded_and_a_function_of_seed_and_epoch() -> None:
    moves = epoch_moves(0, 3, 1000, 2)
    assert moves.shape == (1000, 3) and moves[:, :2].min() == -2 and moves[:, :2].max() == 2
    assert (moves[:, 2] == 0).all()
    np.testing.assert_array_equal(moves, epoch_moves(0, 3, 1000, 2))
    assert not np.array_equal(moves, epoch_moves(0, 4, 1000, 2))
    assert not np.array_equal(moves, epoch_moves(1, 3, 1000, 2))
    mirrored = epoch_moves(0, 3, 1000, 2, mirror=True)
    np.testing.assert_array_equal(mirrored[:, :2], moves[:, :2])  # mirroring leaves the shifts as they were
    assert 400 < mirrored[:, 2].sum() < 600 and set(np.unique(mirrored[:, 2])) == {0, 1}


def test_moving_non_square_images_is_refused() -> None:
    with pytest.raises(Bs4nnError, match="moving needs square images, not 10 pixels"):
        move_images(np.zeros((1, 10)), np.zeros((1, 3), dtype=int), TMAX)


def test_a_negative_shift_is_refused() -> None:
    with pytest.raises(Bs4nnError, match="shift_pixels must be an integer >= 0, got -1"):
        get_preset("tiny-ce").with_overrides(shift_pixels=-1)

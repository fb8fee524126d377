"""Shift augmentation of the coded training images: where pixels go, what comes in, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.errors import Bs4nnError
from bs4nn.train.trainer import epoch_shifts, shift_images

TMAX = 256
SIDE = 5


def test_a_pixel_moves_down_and_left_by_the_shift() -> None:
    times = np.full((1, SIDE * SIDE), TMAX)
    times[0, 1 * SIDE + 3] = 7  # row 1, column 3
    moved = shift_images(times, np.array([[2, -1]]), TMAX)
    expected = np.full((1, SIDE * SIDE), TMAX)
    expected[0, 3 * SIDE + 2] = 7  # row 3, column 2
    np.testing.assert_array_equal(moved, expected)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, TMAX), min_size=SIDE * SIDE, max_size=SIDE * SIDE),
    st.integers(-SIDE, SIDE),
    st.integers(-SIDE, SIDE),
)
def test_shifting_back_restores_every_pixel_that_stayed_inside(pixels: list[int], dy: int, dx: int) -> None:
    times = np.array([pixels])
    there = shift_images(times, np.array([[dy, dx]]), TMAX)
    back = shift_images(there, np.array([[-dy, -dx]]), TMAX)
    rows, cols = np.divmod(np.arange(SIDE * SIDE), SIDE)
    stayed = (rows + dy >= 0) & (rows + dy < SIDE) & (cols + dx >= 0) & (cols + dx < SIDE)
    np.testing.assert_array_equal(back[0][stayed], times[0][stayed])
    assert (back[0][~stayed] == TMAX).all()  # what left the frame comes back silent
    assert sorted(there[0][there[0] < TMAX]) == sorted(times[0][stayed & (times[0] < TMAX)])


def test_each_row_gets_its_own_shift_and_zero_is_the_identity() -> None:
    rng = np.random.default_rng(0)
    times = rng.integers(0, TMAX + 1, size=(3, SIDE * SIDE))
    shifts = np.array([[0, 0], [1, 0], [0, 0]])
    moved = shift_images(times, shifts, TMAX)
    np.testing.assert_array_equal(moved[[0, 2]], times[[0, 2]])
    np.testing.assert_array_equal(moved[1].reshape(SIDE, SIDE)[1:], times[1].reshape(SIDE, SIDE)[:-1])


def test_epoch_shifts_are_bounded_and_a_function_of_seed_and_epoch() -> None:
    shifts = epoch_shifts(0, 3, 1000, 2)
    assert shifts.shape == (1000, 2) and shifts.min() == -2 and shifts.max() == 2
    np.testing.assert_array_equal(shifts, epoch_shifts(0, 3, 1000, 2))
    assert not np.array_equal(shifts, epoch_shifts(0, 4, 1000, 2))
    assert not np.array_equal(shifts, epoch_shifts(1, 3, 1000, 2))


def test_shifting_non_square_images_is_refused() -> None:
    with pytest.raises(Bs4nnError, match="square images, not 10 pixels"):
        shift_images(np.zeros((1, 10)), np.zeros((1, 2), dtype=int), TMAX)

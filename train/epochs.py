"""What changes from epoch to epoch: the batches, the images' moves, the dropout masks, the learning rates.

Every draw is a function of ``(seed, epoch, ...)`` alone, each from its own random stream, so a
``--resume``d run continues bitwise as if it had never stopped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.sim.semantics import Array
from bs4nn.train.presets import Preset

MOVE_STREAM = 1
"""Third word of the augmentation RNG's seed, so its stream is not epoch_batches' (seed, epoch) one."""

DROPOUT_STREAM = 2
"""Third word of the hidden-dropout RNG's seed (``keep_masks``), another stream again."""


def epoch_batches(
    seed: int,
    epoch: int,
    spike_counts: np.ndarray,
    batch_size: int,
    bucket_batches: int = 1,
    with_replacement: bool = False,
) -> list[np.ndarray]:
    """The mini-batches of one epoch, a function of (seed, epoch) only, so resume is exact.

    A random permutation cut into batches; ``with_replacement``: as many samples drawn with
    replacement instead (the paper's reference code: each update a random training image, so an
    epoch sees some images twice and misses about 1/e of them).  With ``bucket_batches > 1`` the permutation is cut
    into buckets of that many batches, each sorted by input spike count before being cut, and
    the batch order shuffled again: the forward pads every row to the batch's largest spike
    count, so this is ~1.5x faster, but a batch then holds digits of similar ink (e.g. mostly
    "1"s) and the summed update is biased: measured 75-76 % validation against 78-80 % without.
    """
    rng = np.random.default_rng([seed, epoch])
    n = len(spike_counts)
    order = rng.integers(0, n, size=n) if with_replacement else rng.permutation(n)
    batches = []
    bucket = batch_size * bucket_batches
    for begin in range(0, len(order), bucket):
        members = order[begin : begin + bucket]
        if bucket_batches > 1:
            members = members[np.argsort(spike_counts[members], kind="stable")]
        batches.extend(members[i : i + batch_size] for i in range(0, len(members), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def epoch_moves(seed: int, epoch: int, n_images: int, max_shift: int, mirror: bool = False) -> np.ndarray:
    """Each training image's move in one epoch: (row shift, column shift, mirrored) per row.

    Shifts uniform in [-max_shift, max_shift]; mirrored 0 or 1 with probability 1/2 when
    ``mirror``, else 0.  A function of (seed, epoch) only, like :func:`epoch_batches`, so resume
    stays exact; the shifts are drawn first, so turning mirroring on leaves them as they were.
    """
    rng = np.random.default_rng([seed, epoch, MOVE_STREAM])
    shifts = rng.integers(-max_shift, max_shift + 1, size=(n_images, 2))
    mirrored = rng.integers(0, 2, size=(n_images, 1)) if mirror else np.zeros((n_images, 1), dtype=shifts.dtype)
    return np.concatenate([shifts, mirrored], axis=1)


def move_images(times: Array, moves: Array, tmax: int, xp: ModuleType = np) -> Array:
    """Spike times of square images mirrored left-right where ``moves[:, 2]`` is 1, then shifted
    by ``moves[:, :2]`` (rows, columns); pixels moved in are silent.

    Augmentation on the coded input: a moved digit is the same digit, so the network learns a
    little invariance that the 55,000 fixed images do not teach it (MNIST: test 96.13 -> 97.17 %;
    on Fashion-MNIST, whose shoes all face one way, shifts and mirrors lowered it; train/README.md).
    """
    n_images, n_pixels = times.shape
    side = math.isqrt(n_pixels)
    if side * side != n_pixels:
        raise Bs4nnError(f"moving needs square images, not {n_pixels} pixels")
    grid = xp.arange(side)
    source_rows = grid[None, :, None] - moves[:, 0, None, None]  # output (r, c) reads input (r - dy, c - dx),
    source_cols = grid[None, None, :] - moves[:, 1, None, None]  # mirrored: (r - dy, side - 1 - (c - dx))
    source_cols = xp.where(moves[:, 2, None, None] == 1, side - 1 - source_cols, source_cols)
    inside = (source_rows >= 0) & (source_rows < side) & (source_cols >= 0) & (source_cols < side)
    source = xp.clip(source_rows, 0, side - 1) * side + xp.clip(source_cols, 0, side - 1)
    moved = xp.take_along_axis(times, source.reshape(n_images, n_pixels), axis=1)
    return xp.where(inside.reshape(n_images, n_pixels), moved, tmax).astype(times.dtype)


def keep_masks(
    seed: int, epoch: int, batch_index: int, batch: int, hidden_sizes: Sequence[int], rate: float
) -> list[np.ndarray]:
    """Hidden dropout for one mini-batch: per hidden layer a ``(batch, n)`` float32 mask, 0 for a
    dropped neuron (probability ``rate``), ``1 / (1 - rate)`` for a kept one (inverted dropout:
    the next layer's counters keep their mean, so the trained thresholds hold without dropout).

    A function of (seed, epoch, batch index) only, so resume stays exact.  Why: the Fashion-MNIST
    hidden layer fits its training images far better than the validation ones (train/README.md).
    """
    rng = np.random.default_rng([seed, epoch, DROPOUT_STREAM, batch_index])
    keep = np.float32(1 / (1 - rate))
    return [np.where(rng.random((batch, n)) < rate, np.float32(0), keep) for n in hidden_sizes]


def learning_rates(preset: Preset, epoch: int) -> tuple[float, float]:
    """``(eta, mu)`` of a 1-based epoch: x decay_factor every decay_every epochs (``lr_schedule``
    ``step``), or the cosine's value at the epoch's start (``cosine``, which moves every batch)."""
    if preset.lr_schedule == "cosine":
        return batch_learning_rate(preset, epoch, preset.eta, 0, 1), preset.mu
    factor = preset.decay_factor ** ((epoch - 1) // preset.decay_every)
    return preset.eta * factor, preset.mu * factor


def batch_learning_rate(preset: Preset, epoch: int, eta: float, batch: int, n_batches: int) -> float:
    """The rate of batch ``batch`` of ``n_batches`` in a 1-based epoch whose rate is ``eta``: ``eta``
    itself, or (``lr_schedule`` ``cosine``) a half cosine from ``preset.eta`` to 0 over the preset's
    epochs, a function of the position alone (so ``--resume`` continues it; ``--epochs`` stretches it)."""
    if preset.lr_schedule != "cosine":
        return eta
    progress = min(1.0, (epoch - 1 + batch / n_batches) / preset.epochs)
    return preset.eta * 0.5 * (1 + math.cos(math.pi * progress))

"""``bs4nn sim``'s default model is whatever is shipped now, never a stale export."""

from __future__ import annotations

import numpy as np

from bs4nn.export.bitmodel import load_bit_model
from bs4nn.sim.cli import _shipped_manifest
from bs4nn.train.checkpoint import Checkpoint, save_checkpoint


def shipped(folder, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(6, 784)).astype(np.float32), rng.normal(size=(10, 6)).astype(np.float32)]
    save_checkpoint(folder / "mnist.npz", Checkpoint(sizes=[784, 6, 10], weights=weights, alphas=[1, 1], thetas=[3, 2]))
    return (weights[0] >= 0).astype(np.uint8)


def test_default_manifest_follows_a_newly_shipped_model(tmp_path, monkeypatch):
    monkeypatch.setenv("BS4NN_PRETRAINED", str(tmp_path))
    first = shipped(tmp_path, seed=1)
    folder = _shipped_manifest(str(tmp_path / "build"))
    assert np.array_equal(load_bit_model(folder).network.layers[0].signs, first)
    second = shipped(tmp_path, seed=2)
    assert not np.array_equal(first, second)
    assert np.array_equal(load_bit_model(_shipped_manifest(str(tmp_path / "build"))).network.layers[0].signs, second)

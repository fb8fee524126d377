"""A model named by a shipped name runs whatever is shipped now, never a stale export."""

from __future__ import annotations

import numpy as np

from bs4nn.export.models import named_bit_model
from bs4nn.train.checkpoint import Checkpoint, save_checkpoint


def shipped(folder, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(6, 784)).astype(np.float32), rng.normal(size=(10, 6)).astype(np.float32)]
    save_checkpoint(folder / "mnist.npz", Checkpoint(sizes=[784, 6, 10], weights=weights, alphas=[1, 1], thetas=[3, 2]))
    return (weights[0] >= 0).astype(np.uint8)


def test_a_shipped_name_follows_a_newly_shipped_model(tmp_path, monkeypatch):
    monkeypatch.setenv("BS4NN_PRETRAINED", str(tmp_path))
    first = shipped(tmp_path, seed=1)
    model, name = named_bit_model("mnist", tmp_path / "cache")
    assert name.shipped == "mnist" and np.array_equal(model.network.layers[0].signs, first)
    second = shipped(tmp_path, seed=2)
    assert not np.array_equal(first, second)
    again, _ = named_bit_model("mnist", tmp_path / "cache")
    assert np.array_equal(again.network.layers[0].signs, second) and again.path != model.path

"""Checkpoint and bit-model folder: round trips and clear errors on damaged files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.errors import Bs4nnError
from bs4nn.export import bitmodel
from bs4nn.export.b1bits import weight_fields
from bs4nn.export.bitmodel import integer_network, load_bit_model, pack_rows, unpack_rows, write_bit_model
from bs4nn.export.layout import (
    MemoryLayout,
    counter_bits,
    network_weight_words,
    network_weight_writes,
    signs_from_words,
    weight_memory_words,
)
from bs4nn.sim.b1 import weight_range
from bs4nn.sim.golden import random_network
from bs4nn.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint


def small_checkpoint() -> Checkpoint:
    rng = np.random.default_rng(0)
    return Checkpoint(
        sizes=[12, 5, 3],
        weights=[rng.normal(size=(5, 12)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)],
        alphas=[0.3, 1.25],
        thetas=[3.0, 2.0],
        seed=7,
        epoch=2,
        metrics=[{"epoch": 1, "val_accuracy": 0.5}],
        state={"velocity_0": np.ones(3)},
    )


def test_checkpoint_round_trip(tmp_path):
    original = small_checkpoint()
    save_checkpoint(tmp_path / "c.npz", original)
    loaded = load_checkpoint(tmp_path / "c.npz")
    assert loaded.header() == original.header()
    for a, b in zip(loaded.weights, original.weights, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(loaded.state["velocity_0"], np.ones(3))


def test_checkpoint_errors(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, small_checkpoint())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(Bs4nnError, match="not a readable bs4nn checkpoint"):
        load_checkpoint(path)
    with pytest.raises(Bs4nnError, match="not found"):
        load_checkpoint(tmp_path / "missing.npz")
    bad = small_checkpoint()
    bad.weights[0][0, 0] = np.nan
    with pytest.raises(Bs4nnError, match="NaN"):
        Checkpoint(**{**bad.__dict__})


def test_integer_network_uses_exact_thresholds():
    network = integer_network(small_checkpoint().weights, [0.3, 1.254], [3.0, 2.0], 256, 255)
    assert [layer.threshold_count for layer in network.layers] == [10, 2]  # 3/0.30, 2/1.25


def test_bit_model_round_trip_and_tamper(tmp_path):
    network = random_network([20, 9, 4], [3, 2], seed=5)
    write_bit_model(network, tmp_path / "bits", meta={"dataset": "mnist"})
    model = load_bit_model(tmp_path / "bits")
    for a, b in zip(model.network.layers, network.layers, strict=True):
        assert np.array_equal(a.signs, b.signs) and a.threshold_count == b.threshold_count
    assert model.manifest["layers"][0]["counter_bits"] == counter_bits(20, 3)
    payload = bytearray((tmp_path / "bits" / "layer1.bin").read_bytes())
    payload[0] ^= 1
    (tmp_path / "bits" / "layer1.bin").write_bytes(bytes(payload))
    with pytest.raises(Bs4nnError, match="sha256 does not match"):
        load_bit_model(tmp_path / "bits")


def test_bit_model_write_is_atomic(tmp_path, monkeypatch):
    network = random_network([8, 3], [2], seed=1)
    write_bit_model(network, tmp_path / "bits")
    before = json.loads((tmp_path / "bits" / "manifest.json").read_text())

    def killed(*args, **kwargs):
        raise RuntimeError("killed after the .bin files, before the manifest")

    monkeypatch.setattr(bitmodel.json, "dumps", killed)
    with pytest.raises(RuntimeError):
        write_bit_model(random_network([8, 3], [1], seed=2), tmp_path / "bits")
    monkeypatch.undo()
    assert json.loads((tmp_path / "bits" / "manifest.json").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bits"]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_packing_round_trips(fan_out, fan_in, lanes, seed):
    signs = np.random.default_rng(seed).integers(0, 2, size=(fan_out, fan_in), dtype=np.uint8)
    assert np.array_equal(unpack_rows(pack_rows(signs), fan_out, fan_in), signs)
    words = weight_memory_words(signs, lanes)
    layout = MemoryLayout(fan_in, fan_out, lanes)
    assert words.shape == (layout.depth,)
    assert np.array_equal(signs_from_words(words, fan_out, fan_in, lanes), signs)
    # spot-check the documented address formula on one synapse
    j, i = fan_out - 1, fan_in - 1
    word = int(words[layout.address(i, j // lanes)])
    assert (word >> (j % lanes)) & 1 == signs[j, i]


@pytest.mark.parametrize("lanes", [1, 3, 16])
def test_network_weight_writes_cover_every_word_of_every_layer_once(lanes):
    network = random_network([7, 5, 3], [2, 1], seed=4)
    writes = network_weight_writes(network, lanes)
    for index, layer in enumerate(network.layers):
        rows = writes[writes[:, 0] == index]
        assert rows[:, 1].tolist() == list(range(MemoryLayout(layer.fan_in, layer.fan_out, lanes).depth))
        assert np.array_equal(rows[:, 2], network_weight_words(network, lanes)[index])
        assert np.array_equal(signs_from_words(rows[:, 2], layer.fan_out, layer.fan_in, lanes), layer.signs)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.integers(1, 64), st.integers(2, 8), st.integers(0, 2**32 - 1))
def test_b_bit_weight_words_hold_each_weight_in_its_lane_field(fan_out, fan_in, lanes, bits, seed):
    """A B1 layer of b-bit weights: word ``i * words_per_row + w`` holds weight ``(w*lanes + k, i)``'s
    two's complement in bits ``k*b .. k*b + b-1`` (words past 64 bits as Python integers)."""
    low, high = weight_range(bits)
    weights = np.random.default_rng(seed).integers(low, high + 1, size=(fan_out, fan_in))
    words = weight_memory_words(weight_fields(weights, bits), lanes, bits)
    layout = MemoryLayout(fan_in, fan_out, lanes, bits)
    assert words.shape == (layout.depth,) and layout.width == lanes * bits
    for i in range(fan_in):
        for j in range(fan_out):
            word = int(words[layout.address(i, j // lanes)])
            field = (word >> (j % lanes * bits)) & ((1 << bits) - 1)
            assert field - (field >> (bits - 1) << bits) == weights[j, i]
    assert all(0 <= int(word) < 1 << layout.width for word in words)

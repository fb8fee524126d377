"""Property: the readers of user files (IDX data, checkpoints, bit-model manifests) answer any bytes
and any JSON with a result or one clean :class:`Bs4nnError`, never another exception (which the
command line would show as a traceback)."""

from __future__ import annotations

import gzip
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import MANIFEST, SELF_DIGEST, manifest_digest, write_bit_model
from bs4nn.export.exporter import build_network, source_from_checkpoint, verify_bit_model
from bs4nn.sim.golden import random_network
from bs4nn.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from bs4nn.train.datasets import IMAGE_MAGIC, LABEL_MAGIC, read_idx

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def workdir() -> Path:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def accepts_or_refuses(read, *args) -> object | None:
    """Run a reader: a value, or None after a Bs4nnError; any other exception fails the property."""
    try:
        return read(*args)
    except Bs4nnError:
        return None


# ------------------------------------------------------------------ IDX


def idx_header(magic: int, count: int, dims: tuple[int, ...]) -> bytes:
    return np.array([magic, count, *dims], dtype=">u4").tobytes()


@FUZZ
@given(
    body=st.binary(max_size=2000),
    header=st.sampled_from([b"", idx_header(IMAGE_MAGIC, 2, (28, 28)), idx_header(LABEL_MAGIC, 3, ())]),
    gz=st.sampled_from(["raw", "gzip", "flipped"]),
)
def test_idx_reader_refuses_garbage_cleanly(workdir: Path, body: bytes, header: bytes, gz: str) -> None:
    payload = header + body
    if gz != "raw":
        payload = gzip.compress(payload)
        if gz == "flipped" and len(payload) > 20:
            flipped = bytearray(payload)
            flipped[len(flipped) // 2] ^= 0xA5
            payload = bytes(flipped)
    path = workdir / ("x.gz" if gz != "raw" else "x")
    path.write_bytes(payload)
    for magic, shape in ((IMAGE_MAGIC, (28, 28)), (LABEL_MAGIC, ())):
        result = accepts_or_refuses(read_idx, path, magic, shape)
        assert result is None or result.shape[1:] == shape


# ------------------------------------------------------------------ checkpoints


def good_checkpoint() -> Checkpoint:
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=(2, 3)).astype(np.float32)]
    return Checkpoint(sizes=[6, 3, 2], weights=weights, alphas=[1.0, 1.0], thetas=[2.0, 1.0])


@FUZZ
@given(payload=st.binary(max_size=3000))
def test_checkpoint_reader_refuses_random_bytes(workdir: Path, payload: bytes) -> None:
    good = io.BytesIO()
    np.savez(good, header=np.array("{}"))
    for data in (payload, good.getvalue()[: len(payload) % 400] + payload):
        (workdir / "c.npz").write_bytes(data)
        assert accepts_or_refuses(load_checkpoint, workdir / "c.npz") is None


@FUZZ
@given(field=st.sampled_from([*good_checkpoint().header(), "sizes", "alphas", "thetas"]), value=json_values)
def test_checkpoint_reader_refuses_random_header_fields(workdir: Path, field: str, value) -> None:
    checkpoint = good_checkpoint()
    header = {**checkpoint.header(), field: value}
    arrays = {f"weight_{i}": w for i, w in enumerate(checkpoint.weights)}
    with open(workdir / "h.npz", "wb") as handle:
        np.savez(handle, header=np.array(json.dumps(header)), **arrays)
    loaded = accepts_or_refuses(load_checkpoint, workdir / "h.npz")
    if loaded is not None:  # what the reader accepts, the exporter turns into a network or refuses
        network = accepts_or_refuses(lambda: build_network(source_from_checkpoint(workdir / "h.npz")))
        assert network is None or network.sizes == loaded.sizes


@FUZZ
@given(header=json_values)
def test_checkpoint_reader_refuses_random_json_headers(workdir: Path, header) -> None:
    with open(workdir / "j.npz", "wb") as handle:
        np.savez(handle, header=np.array(json.dumps(header)))
    assert accepts_or_refuses(load_checkpoint, workdir / "j.npz") is None


def test_a_good_checkpoint_still_loads(workdir: Path) -> None:
    save_checkpoint(workdir / "ok.npz", good_checkpoint())
    assert load_checkpoint(workdir / "ok.npz").sizes == [6, 3, 2]


# ------------------------------------------------------------------ manifests


@pytest.fixture(scope="module")
def bit_folder(workdir: Path) -> tuple[Path, dict]:
    folder = write_bit_model(random_network([6, 3, 2], [2, 1], seed=0, tmax=8), workdir / "bits")
    return folder, json.loads((folder / MANIFEST).read_text())


def paths_of(value, prefix=()) -> list[tuple]:
    """Every key path inside a JSON value (to replace one anywhere in a manifest)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths_of(item, (*prefix, index))
    return found


@FUZZ
@given(data=st.data(), value=json_values, reseal=st.booleans())
def test_manifest_reader_refuses_random_fields(bit_folder: tuple[Path, dict], data, value, reseal: bool) -> None:
    folder, original = bit_folder
    manifest = json.loads(json.dumps(original))
    where = data.draw(st.sampled_from(paths_of(manifest)[1:]))
    target = manifest
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    if reseal:  # as another tool that re-hashes would: the deeper checks must hold on their own
        manifest[SELF_DIGEST] = manifest_digest(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    try:
        accepts_or_refuses(verify_bit_model, folder)
    finally:
        (folder / MANIFEST).write_text(json.dumps(original))


@FUZZ
@given(document=json_values | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_manifest_reader_refuses_random_documents(bit_folder: tuple[Path, dict], document) -> None:
    folder, original = bit_folder
    text = document if isinstance(document, str) else json.dumps(document)
    (folder / MANIFEST).write_text(text)
    try:
        assert accepts_or_refuses(verify_bit_model, folder) is None
    finally:
        (folder / MANIFEST).write_text(json.dumps(original))

"""Dataset files: real ones pass the check; damaged ones fail with one clear line."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bs4nn.errors import Bs4nnError
from bs4nn.train import datasets
from bs4nn.train.datasets import check_dataset, load_split


def run_cli(*args: str, env_data: Path | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if env_data is not None:
        env["BS4NN_DATA"] = str(env_data)
    return subprocess.run([sys.executable, "-m", "bs4nn.cli", *args], capture_output=True, text=True, env=env)


def test_data_check_cli_ok_on_all_eight_files(data_dir):
    result = run_cli("data", "check", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("OK ") == 8
    assert "all dataset files OK" in result.stdout


def test_load_split_shapes(data_dir):
    images, labels = load_split("fashion", "test", data_dir)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10


def copy_dataset(data_dir: Path, dest: Path) -> Path:
    shutil.copytree(data_dir / "mnist", dest / "mnist")
    return dest / "mnist"


def test_truncated_copy_fails_clearly(data_dir, tmp_path):
    folder = copy_dataset(data_dir, tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100_000])
    result = run_cli("data", "check", "--dataset", "mnist", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "t10k-images-idx3-ubyte.gz" in lines[0]


def test_plain_idx_with_wrong_length_or_magic(data_dir, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    raw = gzip.decompress((data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (folder / "t10k-labels-idx1-ubyte").write_bytes(raw[:-1])
    with pytest.raises(Bs4nnError, match="bytes, expected"):
        datasets.read_idx(folder / "t10k-labels-idx1-ubyte", datasets.LABEL_MAGIC, ())
    (folder / "t10k-labels-idx1-ubyte").write_bytes(raw)
    with pytest.raises(Bs4nnError, match="magic number 2049, expected 2051"):
        datasets.read_idx(folder / "t10k-labels-idx1-ubyte", datasets.IMAGE_MAGIC, (28, 28))
    labels = datasets.read_idx(folder / "t10k-labels-idx1-ubyte", datasets.LABEL_MAGIC, ())
    assert labels.shape == (10000,)


def test_download_verifies_sha256(data_dir, tmp_path, monkeypatch):
    """The download path, exercised for real through a file:// mirror (no network here)."""
    spec = datasets.DATASETS["mnist"]
    good = datasets.DatasetSpec(**{**spec.__dict__, "mirrors": ((data_dir / "mnist").as_uri() + "/",)})
    monkeypatch.setitem(datasets.DATASETS, "mnist", good)
    cache = tmp_path / "cache"
    path = datasets.locate(good, "t10k-labels-idx1-ubyte", cache)
    assert path == cache / "mnist" / "t10k-labels-idx1-ubyte.gz" and path.is_file()

    bad_mirror = tmp_path / "bad"
    bad_mirror.mkdir()
    (bad_mirror / "t10k-images-idx3-ubyte.gz").write_bytes(b"not the file")
    bad = datasets.DatasetSpec(**{**spec.__dict__, "mirrors": (bad_mirror.as_uri() + "/",)})
    with pytest.raises(Bs4nnError, match="sha256"):
        datasets.locate(bad, "t10k-images-idx3-ubyte", cache)
    assert not (cache / "mnist" / "t10k-images-idx3-ubyte.gz").exists()


def test_check_dataset_reports_label_count_mismatch(data_dir, tmp_path, monkeypatch):
    copy_dataset(data_dir, tmp_path)
    spec = datasets.DATASETS["mnist"]
    wrong = datasets.DatasetSpec(**{**spec.__dict__, "class_counts": {**spec.class_counts, "test": (1,) * 10}})
    monkeypatch.setitem(datasets.DATASETS, "mnist", wrong)
    with pytest.raises(Bs4nnError, match="label counts"):
        check_dataset("mnist", tmp_path)

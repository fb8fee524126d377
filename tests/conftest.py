"""Shared fixtures: where the real datasets are, and a fast path to them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"

# Property tests draw the same examples on every run: a CI failure reproduces locally, and a
# run never goes red on a draw nobody can replay. HYPOTHESIS_PROFILE=explore draws afresh.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tests run on the real IDX files: CI points BS4NN_DATA at ../shared/data; so do we by default.
os.environ.setdefault("BS4NN_DATA", str(DEFAULT_DATA))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding mnist/ and fashion-mnist/ (never downloaded in tests)."""
    path = Path(os.environ["BS4NN_DATA"])
    assert (path / "mnist").is_dir(), f"datasets not found in {path}: set BS4NN_DATA"
    return path


@pytest.fixture(scope="session")
def mnist_test(data_dir: Path):
    """(images, labels) of the MNIST test split, loaded once per session."""
    from bs4nn.train.datasets import load_split

    return load_split("mnist", "test", data_dir)


@pytest.fixture
def bs4nn_cli(capsys):
    """``bs4nn ARGV`` in this process: ``(exit code, stdout, stderr)``, a usage error's exit included."""
    from bs4nn.cli import main

    def run(argv: list[str]) -> tuple[int, str, str]:
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run

"""The public API: the README's examples and the module docstrings run as doctests on the real data."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import bs4nn
from bs4nn import api

README = Path(__file__).resolve().parents[1] / "README.md"


def run_doctest(text: str, name: str) -> doctest.TestResults:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, name, str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    return runner.summarize(verbose=False)


def test_readme_api_examples_run(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    examples = [block for block in blocks if ">>> import bs4nn" in block]
    assert examples, "the README shows no API example"
    for index, block in enumerate(examples):
        result = run_doctest(block, f"README example {index}")
        assert result.failed == 0 and result.attempted > 5


@pytest.mark.parametrize("module", [bs4nn, api])
def test_module_docstrings_run(module, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_train_and_export_through_the_api(tmp_path):
    summary = bs4nn.train_preset("tiny-ce", tmp_path / "run", epochs=1, train_images=500)
    assert (tmp_path / "run" / "best.npz").is_file() and "validation_accuracy" in str(summary)
    model = bs4nn.export_bits(tmp_path / "run", tmp_path / "bits", lanes=8, evaluate=False)
    assert model.family == "bs4nn" and model.bits.lanes == 8
    assert bs4nn.load(tmp_path / "bits").network.sizes == model.network.sizes


def test_bad_names_are_one_error():
    with pytest.raises(bs4nn.errors.Bs4nnError, match="a shipped model name"):
        bs4nn.load("no-such-model")
    with pytest.raises(bs4nn.errors.Bs4nnError, match="no preset"):
        bs4nn.train_preset("nope", "x")
    with pytest.raises(AttributeError):
        bs4nn.nothing  # noqa: B018


def test_model_verilog_is_the_core_of_either_family(tmp_path):
    from bs4nn.export.bitmodel import write_bit_model
    from bs4nn.sim.b1 import random_b1_network
    from bs4nn.sim.golden import random_network

    for name, network in (
        ("bs4nn", random_network([12, 5, 3], [3, 2], seed=1, tmax=8)),
        ("b1", random_b1_network([12, 5, 3], 2, ramps=[2], windows=[4], seed=1, tmax=8)),
    ):
        model = api.load(write_bit_model(network, tmp_path / name))
        verilog = model.verilog(lanes=4)
        assert "module bs4nn_core" in verilog and "endmodule" in verilog

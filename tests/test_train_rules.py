"""The training-rule registry: every rule keeps the protocol, and a new rule needs no edit outside its module."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pytest

from bs4nn.errors import Bs4nnError
from bs4nn.train.checkpoint import MODELS, load_checkpoint
from bs4nn.train.presets import BACKWARDS, Preset, get_preset
from bs4nn.train.rules import RULES, Batch, BatchResult, Parameters, get_rule
from bs4nn.train.rules.base import Bs4nnFamily
from bs4nn.train.rules.temporal import TemporalOptions, temporal_gradients
from bs4nn.train.run import RunOptions
from bs4nn.train.trainer import train

PRESET_FIELDS = {field.name for field in dataclasses.fields(Preset)}


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_registered_rule_keeps_the_protocol(name: str) -> None:
    rule = RULES[name]
    assert rule.name == name and name in BACKWARDS
    options = dataclasses.fields(rule.options_type)
    assert rule.options_type.__dataclass_params__.frozen
    assert {field.name for field in options} <= PRESET_FIELDS  # built from the preset, so --set and --resume work
    assert isinstance(rule.binary_only, bool) and isinstance(rule.figures_from_forward, bool)
    assert set(rule.extra_parameters) <= PRESET_FIELDS and rule.loss_title
    assert rule.model in MODELS
    assert all(isinstance(flag, bool) for flag in (rule.layer_biases, rule.scales_by_optimiser, rule.probes_silence))
    with pytest.raises(Bs4nnError, match="unknown backward 'nope'"):
        get_rule("nope")


@dataclasses.dataclass(frozen=True)
class CopiedOptions:
    tmax: int
    gamma: float = 1.0
    target_rule: str = "eq6"


class CopiedTemporalRule(Bs4nnFamily):
    """A rule registered only here, with its own options type: the temporal gradients under another name."""

    name: ClassVar[str] = "copied-temporal"
    options_type: ClassVar[type] = CopiedOptions
    binary_only: ClassVar[bool] = False
    extra_parameters: ClassVar[tuple[str, ...]] = ()
    loss_title: ClassVar[str] = "copied loss"
    figures_from_forward: ClassVar[bool] = True

    def batch_gradients(self, batch: Batch, params: Parameters, options: Any, xp: ModuleType) -> BatchResult:
        return temporal_gradients(batch, params, TemporalOptions(options.tmax, options.gamma, options.target_rule), xp)


def test_a_rule_added_to_the_registry_trains_through_the_loop(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One registry entry is all the loop and the presets need: the loop, the plot and the checks
    read the rule object, so the copied rule trains bit for bit as the rule it copies."""
    monkeypatch.setitem(RULES, CopiedTemporalRule.name, CopiedTemporalRule())
    base = get_preset("tiny").with_overrides(
        epochs=1, train_images=500, validation_images=200, calibrate_thresholds=False
    )
    weights = {}
    for backward in ("temporal", CopiedTemporalRule.name):
        out = tmp_path / backward
        options = RunOptions(out_dir=out, data_dir=str(data_dir), progress=False, test=False, threads=1, plot=True)
        train(dataclasses.replace(base, backward=backward), options, log=lambda _: None)
        weights[backward] = load_checkpoint(out / "checkpoint.npz").weights
        assert (out / "learning_curves.png").is_file()
    for ours, theirs in zip(weights["temporal"], weights[CopiedTemporalRule.name], strict=True):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(Bs4nnError, match="hidden_dropout is a snapshot-ce, b1 option, not copied-temporal's"):
        dataclasses.replace(base, backward=CopiedTemporalRule.name, hidden_dropout=0.2)

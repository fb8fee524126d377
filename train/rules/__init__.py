"""The registry of training rules: ``Preset.backward`` (``--backward``) names one of ``RULES``.

A new rule: a module beside these with an options type and a rule object (the protocol is
``bs4nn.train.rules.base.TrainingRule``), and one line in ``RULES`` below.  Nothing else names
a rule: presets, the CLI's ``--backward`` choices, the loop, the metrics plot and ``--resume``
read what they need from the rule object.
"""

from __future__ import annotations

from dataclasses import fields
from types import ModuleType
from typing import Any

from bs4nn.errors import Bs4nnError
from bs4nn.train.rules.b1 import B1Rule
from bs4nn.train.rules.base import Batch, BatchResult, Parameters, TrainingRule
from bs4nn.train.rules.snapshot import SnapshotRule
from bs4nn.train.rules.snapshot_ce import SnapshotCeRule
from bs4nn.train.rules.temporal import TemporalRule

RULES: dict[str, TrainingRule] = {
    rule.name: rule
    for rule in (
        TemporalRule(),  # the paper's S4NN backward on spike times (eqs. 5-16)
        SnapshotRule(),  # a hinge on the output counters at the decision step
        SnapshotCeRule(),  # cross-entropy on counters summed over snapshot steps (the shipped models)
        B1Rule(),  # B1 networks: the ReLU network they are equivalent to (train/B1.md)
    )
}


def get_rule(name: str) -> TrainingRule:
    """The rule registered as ``name``; an unknown name is one error line."""
    try:
        return RULES[name]
    except KeyError:
        raise Bs4nnError(f"unknown backward {name!r}; choose one of {', '.join(RULES)}") from None


def has_option(rule: TrainingRule, name: str) -> bool:
    """Whether the rule's options have a field ``name`` (a preset's field the rule acts on)."""
    return any(field.name == name for field in fields(rule.options_type))


def uses_dropout(rule: TrainingRule) -> bool:
    """Whether the rule takes hidden-dropout masks (its options have a ``hidden_dropout`` field)."""
    return has_option(rule, "hidden_dropout")


def uses_teacher(rule: TrainingRule) -> bool:
    """Whether the rule distils from a teacher's logits (its options have a ``distill_weight`` field)."""
    return has_option(rule, "distill_weight")


def rule_options(rule: TrainingRule, settings: Any) -> Any:
    """The rule's options built from the same-named fields of ``settings`` (a ``Preset``)."""
    return rule.options_type(**{field.name: getattr(settings, field.name) for field in fields(rule.options_type)})


def batch_gradients(rule: TrainingRule, batch: Batch, params: Parameters, options: Any, xp: ModuleType) -> BatchResult:
    """``rule``'s gradients of one mini-batch, after the refusals every rule shares."""
    if rule.binary_only and not params.binary:
        raise Bs4nnError(f"the {rule.name} backward works on the binary counters: it needs binary weights")
    if batch.keep_masks is not None and not uses_dropout(rule):
        dropout_rules = ", ".join(name for name, other in RULES.items() if uses_dropout(other))
        raise Bs4nnError(f"hidden dropout is a {dropout_rules} option, not the {rule.name} backward's")
    if batch.teacher_logits is not None and not uses_teacher(rule):
        distilling = ", ".join(name for name, other in RULES.items() if uses_teacher(other))
        raise Bs4nnError(f"a distillation teacher is a {distilling} option, not the {rule.name} backward's")
    return rule.batch_gradients(batch, params, options, xp)

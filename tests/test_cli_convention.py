"""One command-line convention, checked over the whole parser tree of ``bs4nn`` and ``bs4nn-export``.

The same thing has the same flag everywhere: a model is ``--model MODEL`` (``--manifest`` kept as an
alias), an output is ``-o/--output`` (``--out`` kept as an alias); a flag name means one thing in every
command; every command explains itself; help texts name only commands that exist; and one resolver
takes every form of a model name.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from bs4nn import cli as bs4nn_cli
from bs4nn.export import cli as export_cli
from bs4nn.export.naming import BIT_MODEL, CHECKPOINT, RUN, SHIPPED, resolve_model


def commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of both console scripts, named by its command path."""
    stack = [("bs4nn", bs4nn_cli.build_parser()), ("bs4nn-export", export_cli.build_parser())]
    while stack:
        path, parser = stack.pop()
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack += [(f"{path} {name}", sub) for name, sub in action.choices.items()]


def options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield action


ALL = list(commands())
PATHS = {path for path, _ in ALL}


def test_the_tree_is_the_whole_cli():
    expected = {"bs4nn train", "bs4nn report", "bs4nn sim golden", "bs4nn sim cocotb", "bs4nn rtl", "bs4nn rtl report"}
    assert expected | {"bs4nn build", "bs4nn run", "bs4nn export", "bs4nn-export"} <= PATHS


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[path for path, _ in ALL])
def test_models_and_outputs_have_one_flag_each(path, parser):
    for action in options(parser):
        names = set(action.option_strings)
        if names & {"--model", "--manifest"} or action.dest == "model":
            assert names == {"--model", "--manifest"} and action.dest == "model", (path, names)
        if names & {"-o", "--out", "--output"} or action.dest in ("out", "output"):
            assert names == {"-o", "--output", "--out"} and action.dest == "output", (path, names)
    positionals = [a.dest for a in parser._actions if not a.option_strings]
    assert "model" not in positionals and "source" not in positionals, path


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[path for path, _ in ALL])
def test_every_command_explains_itself(path, parser):
    assert parser.description, f"{path} has no description"
    for action in options(parser):
        assert action.help, f"{path} {action.option_strings[0]} has no help"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and not action.required:
            assert action.metavar.startswith("["), f"{path}: an optional action must look optional in the usage"


def test_a_flag_means_one_thing_everywhere():
    meaning: dict[str, tuple[str, str]] = {}
    for path, parser in ALL:
        for action in options(parser):
            kind = "switch" if action.nargs == 0 else "value"
            for name in action.option_strings:
                seen = meaning.setdefault(name, (action.dest, kind))
                assert seen == (action.dest, kind), f"{name} in {path}: {action.dest}/{kind}, elsewhere {seen}"


def test_help_names_only_commands_that_exist():
    """Where a command ``bs4nn X`` has actions, ``bs4nn X Y`` in any help text must name one of them."""
    for path, parser in ALL:
        for text in [parser.description or "", parser.epilog or ""] + [a.help or "" for a in parser._actions]:
            for command in re.findall(r"\bbs4nn ([a-z][\w-]*(?: [a-z][\w-]*)?)", text):
                first, *rest = command.split()
                if f"bs4nn {first}" not in PATHS:
                    continue  # prose ("a bs4nn bitstream"), not a command
                has_actions = any(p.startswith(f"bs4nn {first} ") for p in PATHS)
                if rest and has_actions:
                    assert f"bs4nn {first} {rest[0]}" in PATHS, f"{path}: help names 'bs4nn {command}'"


def test_one_resolver_takes_every_form(tmp_path):
    from bs4nn.export.exporter import export_model, resolve_source
    from bs4nn.train.checkpoint import save_checkpoint

    shipped = resolve_model("MNIST")
    assert shipped.kind == SHIPPED and shipped.shipped == "mnist" and shipped.path.name == "mnist.npz"
    from bs4nn.train.checkpoint import load_checkpoint

    run = tmp_path / "run"
    save_checkpoint(run / "best.npz", load_checkpoint(shipped.path))
    assert resolve_model(str(run)).kind == RUN and resolve_model(str(run)).path == run / "best.npz"
    assert resolve_model(str(run / "best.npz")).kind == CHECKPOINT
    export_model(resolve_source("mnist"), tmp_path / "bits", evaluate_accuracy=False)
    folder = resolve_model(str(tmp_path / "bits"))
    assert folder.kind == BIT_MODEL and str(folder).startswith("bit-model folder")


def test_report_and_sim_golden_take_a_shipped_name(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert bs4nn_cli.main(["sim", "golden", "--model", "mnist", "--images", "200", "--json"]) == 0
    captured = capsys.readouterr()
    assert "model: shipped model mnist" in captured.err and "exported to" in captured.err
    assert '"images": 200' in captured.out
    out = tmp_path / "report"
    code = bs4nn_cli.main(["report", "--model", "mnist", "--images", "100", "-o", str(out), "--quiet"])
    assert code == 0 and (out / "report.md").is_file()
    assert "model: shipped model mnist" in capsys.readouterr().err


def test_an_unknown_model_name_lists_the_forms(capsys):
    assert bs4nn_cli.main(["sim", "golden", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a shipped model name, a checkpoint .npz, a training run folder" in err[0]

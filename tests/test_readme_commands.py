"""Every command the README shows runs as written.

The commands are read out of README.md itself (``sh`` code blocks, and inline code that starts
with ``bs4nn``, ``bs4nn-export``, ``make`` or ``python tests/``), so a README edit is checked
the day it is made.  The cheap ones run, as written, in a scratch folder; the expensive ones
(training, Verilator on 1,000 images, a bitstream, ``make demo``) must at least be accepted by
their command's own parser (``make -n`` for make), with nothing changed.  Templates
(``noise|threshold``, ``MODEL``, ``DEV``) and mentions of a command or an option (``bs4nn run``,
``bs4nn build -o``) are not commands and are left out.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PROGRAMS = ("bs4nn", "bs4nn-export", "make", "python")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$")  # N, MODEL, DEV, DIR (not PYTHON=python3.12)
RUN_AS_WRITTEN = {
    # cheap on the real data and the shipped model: seconds each (--check mnist, 13 s of CPU, parses only)
    "bs4nn-export --to-bits mnist -o bits/",  # first: the folder the next ones read
    "bs4nn data check",
    "bs4nn sim golden --model bits/",  # the 10,000 MNIST test images
    "bs4nn rtl --model bits/ -o core.v",
}


def readme_commands() -> list[str]:
    """The README's shell commands, in order, without comments; ``a && b`` is two commands."""
    text = README.read_text()
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        lines += [line.split("#", 1)[0].strip() for line in block.splitlines()]
    inline = re.findall(r"(?<!`)`((?:bs4nn|bs4nn-export|make|python) [^`]+)`", text)
    # inline code naming a command (`bs4nn run`) or one of its options (`bs4nn build -o`) is not a
    # command: a bs4nn command there has an option and does not end in one
    inline = [" ".join(span.split()) for span in inline]
    lines += [
        span
        for span in inline
        if span.startswith(("make", "python")) or (" -" in span and not span.split()[-1].startswith("-"))
    ]
    commands = []
    for line in lines:
        for command in (part.strip() for part in line.split("&&")):
            words = shlex.split(command)
            if len(words) < 2 or words[0] not in PROGRAMS or "|" in command:
                continue
            if any(PLACEHOLDER.match(word.split("=", 1)[-1]) for word in words[1:]):
                continue
            if command not in commands:
                commands.append(command)
    return commands


def parse_only(command: str, cwd: Path) -> None:
    """The command's own parser accepts it as written (nothing runs)."""
    words = shlex.split(command)
    if words[0] == "make":
        done = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{command}: {done.stderr}"
    elif words[0] == "python":
        script = REPO / words[1]
        assert script.is_file(), f"{command}: no {words[1]}"
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{command}: {done.stderr}"
    else:
        from bs4nn.cli import build_parser
        from bs4nn.export.cli import build_parser as export_parser

        parser = export_parser() if words[0] == "bs4nn-export" else build_parser()
        try:
            parser.parse_args(words[1:])
        except SystemExit as error:
            pytest.fail(f"the README's {command!r} is refused by its parser (exit {error.code})")


def test_the_readme_shows_the_commands_this_test_knows() -> None:
    commands = readme_commands()
    assert "bs4nn build --board icebreaker --model bits/" in commands
    assert "make demo" in commands and "make test" in commands
    assert set(commands) >= RUN_AS_WRITTEN, f"no longer in the README: {RUN_AS_WRITTEN - set(commands)}"


def test_every_readme_command_runs_or_parses_as_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bs4nn.cli import main as bs4nn_main
    from bs4nn.export.cli import main as export_main

    commands = readme_commands()
    ordered = sorted(commands, key=lambda c: c != "bs4nn-export --to-bits mnist -o bits/")
    for command in ordered:
        if command in RUN_AS_WRITTEN:
            words = shlex.split(command)
            with pytest.MonkeyPatch.context() as patch:
                patch.chdir(tmp_path)
                status = (export_main if words[0] == "bs4nn-export" else bs4nn_main)(words[1:])
            assert status == 0, f"{command}: exit {status}: {capsys.readouterr().err}"
        else:
            parse_only(command, tmp_path)
    assert (tmp_path / "bits" / "manifest.json").is_file() and (tmp_path / "core.v").stat().st_size > 1000


def test_the_readme_build_command_writes_beside_the_bit_model_and_spares_a_users_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``bs4nn build --board icebreaker --model bits/`` (no -o) writes bits-icebreaker/; a folder
    of that name that is not an earlier build is the user's: refused in one line, left as it was."""
    from bs4nn.cli import main
    from bs4nn.export.cli import main as export_main
    from bs4nn.firmware.cli import default_build_folder

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        assert export_main(["--to-bits", "mnist", "-o", "bits/"]) == 0
        assert default_build_folder("bits/", "icebreaker") == tmp_path / "bits-icebreaker"
        assert default_build_folder(None, "ulx3s-85f") == tmp_path / "mnist-ulx3s-85f"
        users = tmp_path / "bits-icebreaker"
        users.mkdir()
        (users / "notes.txt").write_text("mine\n")
        capsys.readouterr()
        assert main(["build", "--board", "icebreaker", "--model", "bits/"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not written by bs4nn build" in err and "refusing" in err
    assert [p.name for p in users.iterdir()] == ["notes.txt"] and (users / "notes.txt").read_text() == "mine\n"

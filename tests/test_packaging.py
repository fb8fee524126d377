"""Packaging: every importable folder ships in the wheel, and the commands exist."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = {"bs4nn": "bs4nn", "train": "bs4nn.train", "export": "bs4nn.export", "rtl": "bs4nn.rtl", "sim": "bs4nn.sim"}
STAGES["firmware"] = "bs4nn.firmware"


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, mapping = set(config["packages"]), config["package-dir"]
    found = set()
    for folder, package in STAGES.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            if "sim_build" in relative.parts or "__pycache__" in relative.parts:
                continue
            found.add(".".join([package, *relative.parts]))
    assert found == listed, f"pyproject packages differ: missing {found - listed}, extra {listed - found}"
    for package in listed:
        assert (REPO / mapping[package]).is_dir()


def test_console_scripts_explain_themselves():
    for command in (["bs4nn", "--help"], ["bs4nn", "data", "check", "--help"], ["bs4nn", "sim", "golden", "--help"]):
        result = subprocess.run(
            [sys.executable, "-c", "import sys; from bs4nn.cli import main; sys.exit(main())", *command[1:]],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout

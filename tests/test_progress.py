"""Progress bars of the long commands: on a terminal a bar with rate and ETA, elsewhere silence.

``bs4nn sim cocotb`` counts simulated images (the testbench, in the simulator's process, keeps
the count in a file the command polls); ``bs4nn build`` counts its stages (elaborate, yosys,
nextpnr, pack).  Both run here for real, with stderr on a pseudo-terminal, as a user sees them.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import numpy as np
import pytest

from bs4nn.export.bitmodel import write_bit_model
from bs4nn.sim.golden import IntegerLayer, IntegerNetwork, random_network

COMMAND = [sys.executable, "-m", "bs4nn.cli"]


def run_with_terminal_stderr(args: list[str], cwd: Path, timeout: float) -> tuple[int, str, str]:
    """Run ``args`` with stderr on a pseudo-terminal (stdout a pipe); return (status, stdout, terminal text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    process = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = process.communicate(timeout=timeout)
    reader.join(timeout=10)
    os.close(master)
    return process.returncode, stdout, b"".join(chunks).decode(errors="replace")


def small_model(folder: Path) -> Path:
    rng = np.random.default_rng(11)
    layers = (
        IntegerLayer(rng.integers(0, 2, size=(4, 20), dtype=np.uint8), 2),
        IntegerLayer(rng.integers(0, 2, size=(3, 4), dtype=np.uint8), 1),
    )
    return write_bit_model(IntegerNetwork(layers, tmax=8, imax=255), folder)


def test_sim_cocotb_shows_images_with_rate_and_eta_on_a_terminal_only(tmp_path: Path) -> None:
    manifest = write_bit_model(random_network([24, 6, 3], [2, 1], seed=3, tmax=16), tmp_path / "bits")
    times = np.random.default_rng(4).integers(0, 17, size=(40, 24))
    np.save(tmp_path / "times.npy", times)
    args = [*COMMAND, "sim", "cocotb", "--manifest", str(manifest), "--inputs", str(tmp_path / "times.npy")]
    args += ["--simulator", "icarus", "--lanes", "4", "--work-dir", str(tmp_path / "run")]
    args += ["--build-dir", str(tmp_path / "build")]
    status, stdout, terminal = run_with_terminal_stderr(args, tmp_path, timeout=600)
    assert status == 0, stdout + terminal
    assert "40/40 bit-exact" in stdout
    assert "compiling the core for icarus" in terminal
    assert "icarus: 100%" in terminal and "40/40" in terminal  # the bar, finished
    assert "image/s" in terminal or "s/image" in terminal  # its rate
    # not a terminal (a pipe, a CI log): no bar; --quiet on a terminal: none either
    piped = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert piped.returncode == 0, piped.stderr
    assert "40/40 bit-exact" in piped.stdout and "icarus:" not in piped.stderr and "\r" not in piped.stderr
    status, stdout, quiet_terminal = run_with_terminal_stderr([*args, "--quiet"], tmp_path, timeout=600)
    assert status == 0 and "40/40 bit-exact" in stdout and "icarus:" not in quiet_terminal


def test_build_shows_its_stages_on_a_terminal_and_writes_beside_the_manifest(tmp_path: Path) -> None:
    """No -o: the bitstream goes to bits-icebreaker/ beside bits/."""
    small_model(tmp_path / "bits")
    args = [*COMMAND, "build", "--board", "icebreaker", "--manifest", "bits"]
    status, stdout, terminal = run_with_terminal_stderr(args, tmp_path, timeout=900)
    assert status == 0, stdout + terminal
    assert "icebreaker build: 100%" in terminal and "4/4" in terminal and "stage" in terminal
    for stage in ("elaborate", "yosys", "nextpnr", "pack"):
        assert stage in terminal
    report = json.loads((tmp_path / "bits-icebreaker" / "report.json").read_text())
    assert (tmp_path / "bits-icebreaker" / report["bitstream"]["file"]).stat().st_size > 100_000
    assert "bits-icebreaker" in stdout


@pytest.mark.slow
def test_a_second_build_replaces_the_earlier_one_and_shows_no_bar_in_a_pipe(tmp_path: Path) -> None:
    small_model(tmp_path / "bits")
    args = [*COMMAND, "build", "--board", "icebreaker", "--manifest", "bits"]
    first = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    report = json.loads((tmp_path / "bits-icebreaker" / "report.json").read_text())
    again = subprocess.run([*args, "--early-exit"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert "\r" not in again.stderr and "icebreaker build:" not in again.stderr  # a pipe: no bar
    replaced = json.loads((tmp_path / "bits-icebreaker" / "report.json").read_text())
    assert replaced["early_exit"] and not report["early_exit"]

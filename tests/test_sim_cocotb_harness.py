"""The stream harness (``sim/cocotb_tb/harness.py``): a job without gaps, delays or resets is
streamed by Verilog, cycle for cycle as the Python driver streams it, on both simulators."""

from __future__ import annotations

import numpy as np
import pytest

from bs4nn.export.bitmodel import write_bit_model
from bs4nn.rtl.family import core_params
from bs4nn.sim.cocotb_tb.harness import BEATS_FILE, OBSERVED_FILE, beats_lines, read_observed
from bs4nn.sim.golden import random_network
from bs4nn.sim.regress import SIMULATORS, StreamOptions, run_regression
from bs4nn.sim.semantics import address_events

LANES = 4


def test_the_beats_file_holds_each_image_and_its_end_beat_as_the_core_encodes_them() -> None:
    network = random_network([20, 6, 3], [2, 1], seed=1)
    params = core_params(network, LANES)
    times = np.random.default_rng(0).integers(0, network.tmax + 1, size=(3, 20))
    streams = [address_events(row, network.tmax) for row in times]
    offsets = np.cumsum([0] + [len(s) for s in streams])
    lines = beats_lines(params, np.concatenate(streams), offsets).splitlines()
    expected = []
    for stream in streams:
        beats = [params.encode_event(int(p), int(t)) for p, t in stream] + [params.encode_event(0, network.tmax)]
        expected += [f"{int(k == len(beats) - 1)} {beat:x}" for k, beat in enumerate(beats)]
    assert lines == expected


def test_the_observed_file_is_read_image_by_image(tmp_path) -> None:
    path = tmp_path / OBSERVED_FILE
    path.write_text("S 1a\nS 2b\nR ff\nC 140\nR 0e\nC 12\nS 03\n")  # the last image unfinished
    results, cycles, spikes, slices = read_observed(path)
    assert (results, cycles, spikes, slices) == ([0xFF, 0x0E], [140, 12], [0x1A, 0x2B, 0x03], [(0, 2), (2, 2)])


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_the_harness_streams_as_the_python_driver_does(simulator, tmp_path) -> None:
    """Same images, once streamed by the harness (no gaps) and once by Python (one input gap
    that never fires): every image bit-exact, the same cycles image by image."""
    network = random_network([20, 6, 3], [2, 1], seed=1)
    manifest = write_bit_model(network, tmp_path / "model")
    times = np.random.default_rng(0).integers(0, network.tmax + 1, size=(6, 20))
    runs = {}
    for name, options in (
        ("harness", StreamOptions()),
        ("python", StreamOptions(reset_after_events=[-1] * 5 + [10_000])),  # a reset past the image's end
    ):
        work = tmp_path / name
        report = run_regression(
            manifest, times, simulator=simulator, lanes=LANES, options=options, work_dir=work, build_root=tmp_path / "b"
        )
        assert report.ok, report.summary()
        assert (work / BEATS_FILE).is_file() == (name == "harness")
        assert (work / OBSERVED_FILE).is_file() == (name == "harness")
        runs[name] = report
    assert runs["harness"].cycles[:5].tolist() == runs["python"].cycles[:5].tolist()
    assert runs["harness"].decisions.tolist() == runs["python"].decisions.tolist()

"""``bs4nn sweep``: a tiny sweep on a real local Ray, every row reproduced by its own command."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from bs4nn.cli import main as bs4nn_main
from bs4nn.errors import Bs4nnError
from bs4nn.train.checkpoint import load_checkpoint, run_model_path
from bs4nn.train.finish import checkpoint_network
from bs4nn.train.metrics import evaluate
from bs4nn.train.network import LabelledImages
from bs4nn.train.presets import get_preset
from bs4nn.train.run import split_data
from bs4nn.train.sweep import PLOT_FILE, RESULTS_FILE, TABLE_FILE, make_plan, pareto_front, parse_grid

TINY_SETTINGS = ("train_images=400", "epochs=1", "readout_epochs=1", "calibrate_thresholds=False")
TINY = [f"--set={setting}" for setting in TINY_SETTINGS]


def test_grid_values_are_read_as_set_reads_them() -> None:
    assert parse_grid("thetas=[(97.5, 97.5), (97, 147.5)]") == ("thetas", ((97.5, 97.5), (97.0, 147.5)))
    assert parse_grid("backward=[snapshot, snapshot-ce]") == ("backward", ("snapshot", "snapshot-ce"))
    for bad, message in [
        ("hidden_dropout=0.2", r"expected KEY=\[V1, V2, ...\]"),
        ("hidden_dropout=[]", "no values"),
        ("epochs=[2, 2]", "a value given twice"),
        ("epochs=[2, 0.5]", "epochs must be int"),
        ("sizes=[(784, 10)]", "not a field --set can change"),
    ]:
        with pytest.raises(Bs4nnError, match=message):
            parse_grid(bad)
    with pytest.raises(Bs4nnError, match="each field at most once"):
        make_plan("tiny-ce", ["epochs=1"], ["epochs=[1, 2]"], [0])
    plan = make_plan("tiny-ce", ["epochs=1"], ["hidden_dropout=[0.0, 0.2]", "eta=[0.001, 0.003]"], [0, 1])
    assert len(plan.trials()) == 8 and plan.trials()[1] == {
        "settings": {"epochs": 1, "hidden_dropout": 0.0, "eta": 0.001},
        "seed": 1,
    }


def test_pareto_front_of_accuracy_and_decision_step() -> None:
    rows = [
        {"validation_accuracy": a, "validation_mean_decision_time": t}
        for a, t in [(0.90, 100.0), (0.95, 120.0), (0.94, 130.0), (0.90, 90.0), (0.95, 120.0)]
    ]
    # row 0 is beaten by row 3 (same accuracy, earlier); row 2 by row 1; rows 1 and 4 are equal: both stay
    assert pareto_front(rows) == [False, True, False, True, True]


def test_bad_sweeps_are_one_line_before_ray_starts(tmp_path: Path, capsys) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("the user's")
    assert bs4nn_main(["sweep", "--preset", "tiny-ce", *TINY, "--out", str(tmp_path / "old")]) == 2
    assert "folder not written by bs4nn sweep; refusing" in capsys.readouterr().err
    assert (tmp_path / "old" / "keep.txt").read_text() == "the user's"
    assert bs4nn_main(["sweep", "--preset", "tiny-ce", "--grid", "eta=[0.1, -]", "--out", str(tmp_path / "n")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "eta must be float" in err


def test_tiny_sweep_on_local_ray_and_each_row_reproduced(tmp_path: Path, data_dir: Path, capsys) -> None:
    out = tmp_path / "sweep"
    grid = ["--grid", "hidden_dropout=[0.0, 0.3]"]
    argv = ["sweep", "--preset", "tiny-ce", *TINY, *grid, "--cpus", "2", "--out", str(out), "--data-dir", str(data_dir)]
    assert bs4nn_main(argv) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / RESULTS_FILE).read_text())
    rows = results["rows"]
    assert [row["settings"]["hidden_dropout"] for row in rows] == [0.0, 0.3]
    assert [row["pareto"] for row in rows] == pareto_front(rows)
    table = (out / TABLE_FILE).read_text()
    assert (out / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for row in rows:
        assert f"`{row['command']}`" in table and row["command"] in printed
        assert 0 < row["validation_accuracy"] <= 1 and 0 <= row["validation_first_spike_decisions"] <= 1
    assert bs4nn_main(argv) == 2 and "holds a finished sweep" in capsys.readouterr().err
    # the command of the second row, run by hand, trains the same model and scores the same on validation
    again = tmp_path / "again"
    command = [*shlex.split(rows[1]["command"])[1:], "--out", str(again), "--no-test", "--quiet"]
    assert bs4nn_main([*command, "--data-dir", str(data_dir)]) == 0
    swept, reproduced = load_checkpoint(run_model_path(rows[1]["run_dir"])), load_checkpoint(run_model_path(again))
    for a, b in zip(swept.weights, reproduced.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert swept.thetas == reproduced.thetas
    validation = LabelledImages(*split_data(get_preset("tiny-ce"), str(data_dir))["validation"])
    figures = evaluate(checkpoint_network(reproduced), validation)
    for key in ("accuracy", "first_spike_decisions", "mean_decision_time", "p95_decision_time"):
        assert rows[1][f"validation_{key}"] == figures[key]

"""``bs4nn sweep``: hyperparameter sweeps of a preset on Ray Tune, scored on validation.

Why Ray Tune: a sweep is where a user outgrows one machine, and Ray runs the same trials on this
machine's cores (a local Ray started here) or on a Ray cluster (``address``) without a scheduler
of ours.  Each trial is one ordinary training run (:func:`bs4nn.train.trainer.train`) of the
preset with some fields changed exactly as ``bs4nn train --set KEY=VALUE`` changes them, so every
point of the table comes with the ``bs4nn train`` command that reproduces it.  Trials never touch
the test split: the table and the Pareto plot (accuracy against mean decision step) are of the
validation split, where a model is chosen.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bs4nn.errors import Bs4nnError
from bs4nn.fileio import atomic_write_text, work_directory
from bs4nn.sim.golden import decision_line
from bs4nn.train.checkpoint import load_checkpoint, run_model_path
from bs4nn.train.presets import Preset, get_preset, parse_setting
from bs4nn.train.run import RunOptions

RESULTS_FILE = "sweep.json"
TABLE_FILE = "sweep.md"
PLOT_FILE = "pareto.png"
METRIC = "validation_accuracy"
WRITER = "bs4nn sweep"  # the owner of its output folders (bs4nn.fileio.work_directory)


@dataclass(frozen=True)
class SweepPlan:
    """What to sweep: a preset, fields fixed for every trial, a grid of fields, seeds."""

    preset: str
    fixed: dict[str, Any] = field(default_factory=dict)  # field -> value, every trial
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # field -> values, every combination
    seeds: tuple[int, ...] = (0,)

    def trials(self) -> list[dict[str, Any]]:
        """Every combination of the grid and the seeds, in a fixed order: ``{"settings", "seed"}``."""
        keys = list(self.grid)
        return [
            {"settings": {**self.fixed, **dict(zip(keys, values, strict=True))}, "seed": seed}
            for values in itertools.product(*(self.grid[key] for key in keys))
            for seed in self.seeds
        ]


def parse_grid(text: str) -> tuple[str, tuple[Any, ...]]:
    """``KEY=[V1, V2, ...]`` (a Python list; each value as ``--set KEY=V`` reads it) to a field and values."""
    key, sep, raw = text.partition("=")
    raw = raw.strip()
    if not sep or not (raw.startswith("[") and raw.endswith("]")):
        raise Bs4nnError(f"--grid {text!r}: expected KEY=[V1, V2, ...], e.g. 'hidden_dropout=[0.1, 0.2]'")
    items = _split_list(raw[1:-1])
    if not items:
        raise Bs4nnError(f"--grid {text!r}: no values")
    values = tuple(parse_setting(f"{key}={item}")[1] for item in items)
    if len(set(map(repr, values))) < len(values):
        raise Bs4nnError(f"--grid {text!r}: a value given twice")
    return parse_setting(f"{key}={items[0]}")[0], values


def _split_list(body: str) -> list[str]:
    """The top-level items of a list body (commas inside brackets or parentheses kept)."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(body + ","):
        depth += (char in "([") - (char in ")]")
        if char == "," and depth == 0:
            if body[start:index].strip():
                items.append(body[start:index].strip())
            start = index + 1
    return items


def make_plan(preset: str, settings: Sequence[str], grids: Sequence[str], seeds: Sequence[int]) -> SweepPlan:
    """The plan from the command line's ``--set``, ``--grid`` and ``--seeds``; every trial's preset is
    built here once, so a bad combination is refused before Ray starts."""
    get_preset(preset)
    fixed = dict(parse_setting(text) for text in settings)
    grid = dict(parse_grid(text) for text in grids)
    if len(fixed) < len(settings) or len(grid) < len(grids) or set(fixed) & set(grid):
        raise Bs4nnError("each field at most once in --set and --grid together")
    if len(set(seeds)) < len(seeds) or not seeds:
        raise Bs4nnError(f"--seeds: distinct seeds needed, got {list(seeds)}")
    plan = SweepPlan(preset, fixed, grid, tuple(seeds))
    for trial in plan.trials():
        trial_preset(plan.preset, trial["settings"])
    return plan


def trial_preset(name: str, settings: dict[str, Any]) -> Preset:
    """The preset as ``bs4nn train --preset NAME --set KEY=VALUE ...`` builds it."""
    try:
        return replace(get_preset(name), **settings)
    except (TypeError, ValueError) as error:
        raise Bs4nnError(f"preset {name} with {settings}: {error}") from None


def trial_name(settings: dict[str, Any], seed: int) -> str:
    """A folder name that says what the trial changed (stable across runs of the same sweep)."""
    parts = [f"{key}={_literal(value)}" for key, value in sorted(settings.items())] + [f"seed={seed}"]
    return "_".join("".join(c if c.isalnum() or c in "=.-" else "-" for c in part) for part in parts)


def _literal(value: Any) -> str:
    """A value as ``--set`` reads it back: a bare word for text, a Python literal otherwise."""
    return value if isinstance(value, str) else repr(value)


def train_command(preset: str, settings: dict[str, Any], seed: int, threads: int) -> str:
    """The ``bs4nn train`` command of one trial (it also scores the test split at the end; the sweep does not)."""
    words = ["bs4nn", "train", "--preset", preset, "--seed", str(seed), "--threads", str(threads)]
    for key, value in sorted(settings.items()):
        words += ["--set", f"{key}={_literal(value)}"]
    return shlex.join(words)


def run_trial(config: dict[str, Any]) -> dict[str, Any]:
    """One trial: train the preset with the trial's settings, score its model on validation.

    Runs inside a Ray worker (and is what a test calls without Ray): the training run goes to
    ``config["runs_dir"]/NAME`` with its log in ``train.log`` there.
    """
    from bs4nn.train.finish import checkpoint_network
    from bs4nn.train.metrics import evaluate
    from bs4nn.train.network import LabelledImages
    from bs4nn.train.run import split_data
    from bs4nn.train.trainer import train

    preset = trial_preset(config["preset"], config["settings"])
    out_dir = Path(config["runs_dir"]) / trial_name(config["settings"], config["seed"])
    options = RunOptions(
        out_dir=out_dir,
        data_dir=config["data_dir"],
        seed=config["seed"],
        progress=False,
        test=False,
        threads=config["threads"],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "train.log", "w") as log_file:
        train(preset, options, log=lambda line: print(line, file=log_file, flush=True))
    validation = LabelledImages(*split_data(preset, config["data_dir"])["validation"])
    model = load_checkpoint(run_model_path(out_dir))
    figures = evaluate(checkpoint_network(model), validation)
    keep = ("accuracy", "first_spike_decisions", "no_output_spike", "mean_decision_time", "p95_decision_time")
    return {
        **{f"validation_{key}": figures[key] for key in keep},
        "validation_mean_spikes_until_decision": figures["mean_spikes_until_decision"],
        "best_epoch": model.epoch,
        "run_dir": str(out_dir),
    }


def _ray_trial(config: dict[str, Any]) -> None:
    from ray import tune

    tune.report(run_trial(config))


def claim_sweep_folder(out_dir: Path) -> Path:
    """``out_dir`` as this sweep's folder (:func:`bs4nn.fileio.work_directory`): new, empty, or an
    unfinished sweep's (its trials train again); a finished sweep's or anyone else's is refused."""
    if (out_dir / RESULTS_FILE).exists():
        raise Bs4nnError(f"{out_dir}: holds a finished sweep ({RESULTS_FILE}); give a new --out")
    return work_directory(out_dir, WRITER)


def run_sweep(
    plan: SweepPlan,
    out_dir: Path,
    *,
    data_dir: str | None,
    address: str | None = None,
    cpus: int | None = None,
    cpus_per_trial: int = 1,
) -> list[dict[str, Any]]:
    """Every trial of ``plan`` on Ray Tune; the rows of the table (one per trial, in the plan's order).

    ``address``: a running Ray cluster (``ray start --head`` prints it); none starts a local Ray
    with ``cpus`` CPUs (default: all of this machine's).  Ray schedules the trials, one per
    ``cpus_per_trial`` CPUs; the training threads of a trial are those CPUs (at most 2).
    """
    claim_sweep_folder(out_dir)
    import ray  # here: importing Ray takes seconds
    from ray import tune

    data_dir = str(Path(data_dir).resolve()) if data_dir else os.environ.get("BS4NN_DATA")
    threads = min(2, cpus_per_trial)
    trials = plan.trials()
    param_space = {
        "preset": plan.preset,
        "trial": tune.grid_search(trials),
        "runs_dir": str((out_dir / "runs").resolve()),
        "data_dir": data_dir,
        "threads": threads,
    }
    started_here = not ray.is_initialized()
    if started_here:
        init = {"address": address} if address else {"num_cpus": cpus or os.cpu_count()}
        try:
            ray.init(**init, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except ConnectionError as error:
            raise Bs4nnError(f"cannot reach the Ray cluster at {address}: {error}") from None
    try:
        tuner = tune.Tuner(
            tune.with_resources(_flatten_config(_ray_trial), {"cpu": cpus_per_trial}),
            param_space=param_space,
            tune_config=tune.TuneConfig(metric=METRIC, mode="max"),
            run_config=tune.RunConfig(name="ray", storage_path=str(out_dir.resolve()), verbose=0),
        )
        grid = tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    if grid.errors:
        raise Bs4nnError(f"{len(grid.errors)} of {len(trials)} trials failed; the first: {_first_line(grid.errors[0])}")
    by_name = {}
    for result in grid:
        trial = result.config["trial"]
        by_name[trial_name(trial["settings"], trial["seed"])] = {**trial, **result.metrics}
    rows = [by_name[trial_name(t["settings"], t["seed"])] for t in trials]
    return [_row(plan.preset, row, threads) for row in rows]


def _flatten_config(function: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Ray grids over whole trials (``config["trial"]``); a trial reads them as plain keys."""

    def trainable(config: dict[str, Any]) -> None:
        trial = config["trial"]
        function({**{k: v for k, v in config.items() if k != "trial"}, **trial})

    trainable.__name__ = "bs4nn_trial"
    return trainable


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _row(preset: str, result: dict[str, Any], threads: int) -> dict[str, Any]:
    keys = (METRIC, "validation_first_spike_decisions", "validation_no_output_spike", "validation_mean_decision_time")
    keys += ("validation_p95_decision_time", "validation_mean_spikes_until_decision", "best_epoch", "run_dir")
    return {
        "settings": result["settings"],
        "seed": result["seed"],
        **{key: result[key] for key in keys},
        "command": train_command(preset, result["settings"], result["seed"], threads),
    }


def pareto_front(rows: Sequence[dict[str, Any]]) -> list[bool]:
    """Per row: no other row is at least as accurate and at least as early, and better in one."""

    def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
        acc_a, acc_b = a[METRIC], b[METRIC]
        step_a, step_b = a["validation_mean_decision_time"], b["validation_mean_decision_time"]
        return acc_a >= acc_b and step_a <= step_b and (acc_a > acc_b or step_a < step_b)

    return [not any(dominates(other, row) for other in rows) for row in rows]


def write_results(out_dir: Path, plan: SweepPlan, rows: list[dict[str, Any]]) -> list[Path]:
    """``sweep.json``, ``sweep.md`` (one table, Pareto points marked) and ``pareto.png``."""
    front = pareto_front(rows)
    for row, on_front in zip(rows, front, strict=True):
        row["pareto"] = on_front
    payload = {"preset": plan.preset, "fixed": plan.fixed, "grid": plan.grid, "seeds": plan.seeds, "rows": rows}
    written = [atomic_write_text(out_dir / RESULTS_FILE, json.dumps(payload, indent=2, default=list) + "\n")]
    written.append(atomic_write_text(out_dir / TABLE_FILE, sweep_table(plan, rows)))
    written.append(_plot(out_dir / PLOT_FILE, plan, rows))
    return written


def sweep_table(plan: SweepPlan, rows: list[dict[str, Any]]) -> str:
    """The Markdown table: one line per trial, validation figures, the command that reproduces it."""
    header = "| # | pareto | validation accuracy | first-spike decisions | decision step mean / p95 | command |"
    lines = [f"# Sweep of preset {plan.preset} (validation split, golden model)", "", header, "|---" * 6 + "|"]
    for index, row in enumerate(rows):
        lines.append(
            f"| {index} | {'*' if row['pareto'] else ''} | {100 * row[METRIC]:.2f} % | "
            f"{100 * row['validation_first_spike_decisions']:.1f} % | "
            f"{row['validation_mean_decision_time']:.1f} / {row['validation_p95_decision_time']:.0f} | "
            f"`{row['command']}` |"
        )
    return "\n".join(lines) + "\n"


def row_line(index: int, row: dict[str, Any]) -> str:
    """One trial as the command line prints it."""
    figures = {key.removeprefix("validation_"): value for key, value in row.items()}
    return f"{index}: validation {100 * row[METRIC]:.2f} %, {decision_line(figures)}\n   {row['command']}"


def _plot(path: Path, plan: SweepPlan, rows: list[dict[str, Any]]) -> Path:
    from bs4nn.train.experiments.plots import new_figure, save_figure

    fig, axis = new_figure()
    steps = [row["validation_mean_decision_time"] for row in rows]
    accuracy = [100 * row[METRIC] for row in rows]
    axis.scatter(steps, accuracy, color="tab:grey", label="trial")
    front = sorted((s, a) for s, a, row in zip(steps, accuracy, rows, strict=True) if row["pareto"])
    axis.plot([s for s, _ in front], [a for _, a in front], "o-", color="tab:red", label="Pareto front")
    for index, (step, acc) in enumerate(zip(steps, accuracy, strict=True)):
        axis.annotate(str(index), (step, acc), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axis.set(
        title=f"sweep of {plan.preset}: # = row of {TABLE_FILE}",
        xlabel="mean decision step (validation)",
        ylabel="validation accuracy %",
    )
    axis.legend()
    return save_figure(fig, path)

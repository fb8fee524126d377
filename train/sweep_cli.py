"""``bs4nn sweep``: a grid of preset fields and seeds trained on Ray Tune (``bs4nn.train.sweep``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bs4nn import argtypes
from bs4nn.argtypes import add_data_dir
from bs4nn.train.presets import PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="hyperparameter sweep of a preset on Ray Tune (this machine, or a Ray cluster with --address)",
        description="Train every combination of --grid values (preset fields, as bs4nn train --set reads them) "
        "and --seeds with Ray Tune: on a Ray started here on this machine's CPUs (default), or on a running Ray "
        "cluster with --address (the same trials; every node needs bs4nn and the datasets at the same path, and "
        "writes the runs it trains under the same OUT path). "
        "Each trial is one bs4nn train run scored on the validation split by the golden model (never the test "
        "split). Writes OUT/sweep.md (one table: validation accuracy, share of first-spike decisions, mean and "
        "95th-percentile decision step, and the bs4nn train command that reproduces each row), OUT/sweep.json, "
        "OUT/pareto.png (accuracy against mean decision step, the Pareto front marked), the runs in OUT/runs/ "
        "and Ray's records in OUT/ray/.",
        epilog="example: bs4nn sweep --preset tiny-ce --grid 'hidden_dropout=[0.0, 0.2]' --seeds 0 1 --out sweeps/tiny",
    )
    sweep.add_argument("--preset", default="mnist", choices=sorted(PRESETS), help="the preset swept (default: mnist)")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=[V1,V2,...]",
        help="a preset field and its values, a Python list (repeatable: every combination is a trial), "
        "e.g. --grid 'thetas=[(97.5, 97.5), (97.5, 147.5)]' --grid 'epochs=[20, 50]'",
    )
    sweep.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a preset field fixed for every trial, as bs4nn train --set (repeatable)",
    )
    sweep.add_argument(
        "--seeds", type=int, nargs="+", default=[0], metavar="S", help="seeds of every combination (default: 0)"
    )
    argtypes.add_output_argument(sweep, "DIR", "new output folder (default: sweeps/PRESET)")
    sweep.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="a running Ray cluster ('auto': the one this machine belongs to); default: start Ray here",
    )
    sweep.add_argument(
        "--cpus",
        type=argtypes.positive_int,
        metavar="N",
        help="CPUs of the Ray started here (default: all of this machine's; ignored with --address)",
    )
    sweep.add_argument(
        "--cpus-per-trial",
        type=argtypes.positive_int,
        default=1,
        metavar="N",
        help="CPUs Ray reserves per trial; the trial trains on min(N, 2) threads (default: 1)",
    )
    add_data_dir(sweep)
    sweep.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from bs4nn.train.sweep import make_plan, row_line, run_sweep, write_results

    plan = make_plan(args.preset, args.settings, args.grid, args.seeds)
    out_dir = Path(args.output or f"sweeps/{args.preset}")
    print(f"sweep of {plan.preset}: {len(plan.trials())} trials on Ray ({args.address or 'started here'})")
    rows = run_sweep(
        plan, out_dir, data_dir=args.data_dir, address=args.address, cpus=args.cpus, cpus_per_trial=args.cpus_per_trial
    )
    written = write_results(out_dir, plan, rows)
    for index, row in enumerate(rows):
        print(("* " if row["pareto"] else "  ") + row_line(index, row))
    print("(* on the Pareto front of validation accuracy and mean decision step)")
    print("written: " + ", ".join(str(path) for path in written))
    return 0

"""``bs4nn report --model MODEL`` and ``bs4nn experiment {noise,threshold,alpha,real-weights,bnn,relu}``.

Registered by ``bs4nn.cli`` (``"bs4nn.train.experiments_cli"`` in ``STAGE_CLIS``).  MODEL is a
checkpoint ``.npz`` (everything works) or a bit-model folder (everything that does not need the
real-valued weights).  All spike data come from the golden model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bs4nn import argtypes
from bs4nn.argtypes import add_data_dir
from bs4nn.errors import Bs4nnError
from bs4nn.export.naming import resolve_model
from bs4nn.sim.golden import decision_line, decision_statistics
from bs4nn.train.datasets import DATASETS, dataset_spec, load_split
from bs4nn.train.experiments import baseline as baseline_loop
from bs4nn.train.experiments import bnn, relu, sweeps
from bs4nn.train.experiments.models import AnalysedModel, load_model
from bs4nn.train.experiments.report import analyse, write_report

SWEEPS = {
    "noise": "accuracy under uniform jitter noise on the pixels, 0..100 %% of Imax (Fig. 5)",
    "threshold": "accuracy and mean response time with the threshold swept 0..2x the trained one (Fig. 7)",
    "alpha": "accuracy with alpha rounded to 0..4 decimals, and unrounded",
    "real-weights": "the real-valued weights W in place of alpha*B in the binary-trained network",
}

EXPERIMENT_WRITER = "bs4nn experiment"  # the owner of the sweeps' and baseline's --out folders


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report",
        help="Markdown + PNG report of a trained model (the paper's Figs. 2, 3, 4, 6, 9)",
        description="Run the golden model of MODEL on a dataset split and write a Markdown report with PNG "
        "figures: output firing times ordered by class (Fig. 2a) and their class means (Fig. 2b/9a), spikes "
        "per layer per class up to the decision (Fig. 3/9c), output counters of one image (Fig. 4), the "
        "confusion matrix (Fig. 9b), real vs binary hidden weights (Fig. 6, checkpoints only) and the "
        "fraction of positive weights per layer.",
    )
    argtypes.add_model_argument(report)
    _data_options(report)
    argtypes.add_output_argument(report, "DIR", "report folder (default: report-<model name>)")
    report.add_argument(
        "--image", type=argtypes.non_negative_int, default=0, help="test image traced in Fig. 4 (default: 0)"
    )
    report.add_argument(
        "--steps",
        type=int,
        nargs="+",
        metavar="T",
        help="Fig. 4: show the inputs that have spiked by these steps (default: 1/4, 1/2, 3/4 and all of the "
        "decision time)",
    )
    report.add_argument(
        "--hidden", type=argtypes.positive_int, default=8, metavar="K", help="Fig. 6: hidden neurons shown (default: 8)"
    )
    report.set_defaults(handler=_report)

    experiment = subparsers.add_parser(
        "experiment",
        help="the paper's sweeps (noise, threshold, alpha, real weights) and the BNN baseline",
        description="Experiments of the BS4NN paper. Each writes <name>.json, <name>.md and <name>.png "
        "into --out (default: experiments-<model name>).",
    )
    actions = experiment.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, text in SWEEPS.items():
        sweep = actions.add_parser(name, help=text, description=(text[0].upper() + text[1:] + ".").replace("%%", "%"))
        argtypes.add_model_argument(sweep)
        _data_options(sweep)
        argtypes.add_output_argument(sweep, "DIR", "output folder (default: experiments-<model name>)")
        if name == "noise":
            sweep.add_argument(
                "--levels",
                type=float,
                nargs="+",
                metavar="P",
                help="noise levels in %% of Imax (default: 0 5 10 ... 100)",
            )
            sweep.add_argument("--seed", type=argtypes.non_negative_int, default=0, help="noise seed (default: 0)")
        if name == "threshold":
            sweep.add_argument(
                "--thetas",
                type=argtypes.non_negative_float,
                nargs="+",
                metavar="THETA",
                help="absolute thresholds, the same on every moved layer",
            )
            sweep.add_argument(
                "--scales",
                type=argtypes.non_negative_float,
                nargs="+",
                metavar="X",
                help="multiples of each layer's trained theta (default: 0 0.1 ... 2, i.e. the paper's 0..200 for "
                "theta 100; absolute 0 10 ... 200 when the model has no trained thetas)",
            )
            sweep.add_argument(
                "--layers", type=int, nargs="+", metavar="L", help="layers whose threshold moves (default: all)"
            )
        sweep.set_defaults(handler=_sweep)

    for net, defaults, help_text, description in BASELINES:
        _add_baseline_parser(actions, net, defaults, help_text, description)


BASELINES = (
    (
        bnn.BNN,
        {"epochs": 50, "lr_end": 1e-4},
        "train the paper's BNN baseline (binary weights and activations, same architecture)",
        "Train the non-spiking binarized network of the paper's comparison: binary weights, sign activations, "
        "batch norm, squared hinge loss, Adam, lr 1e-3 -> 1e-4, init U[-1/sqrt(n), 1/sqrt(n)]. The last 5,000 "
        "training images select the epoch; its test accuracy is reported (paper: 96.8 % MNIST, 86.4 % "
        "Fashion-MNIST).",
    ),
    (
        relu.Relu(),
        {"epochs": 60, "lr_end": 1e-5},
        "train the float ReLU reference of a B1 network (real weights and activations, same architecture)",
        "Train the float ReLU MLP that a B1 network is the integer form of: real weights, ReLU activations "
        "without the window's clip and floor, the B1 inputs (coded value / tmax), softmax cross-entropy, Adam, "
        "lr 1e-3 -> 1e-5, init U[-1/sqrt(n), 1/sqrt(n)]. The last 5,000 training images select the epoch; its "
        "test accuracy is reported. Also writes W0.npy b0.npy W1.npy b1.npy for 'bs4nn-export --from-relu'.",
    ),
)
"""Per non-spiking baseline: its net, its defaults beyond the shared ones, its help and description."""


def _add_baseline_parser(
    actions: argparse._SubParsersAction, net: Any, defaults: dict[str, Any], help_text: str, description: str
) -> None:
    baseline = actions.add_parser(net.name, help=help_text, description=description)
    baseline.add_argument("--dataset", default="mnist", choices=sorted(DATASETS), help="(default: mnist)")
    baseline.add_argument(
        "--hidden",
        type=argtypes.positive_int,
        nargs="+",
        metavar="N",
        help="hidden layer sizes (default: the paper's, 600 for MNIST, 1000 for Fashion-MNIST)",
    )
    epochs = defaults["epochs"]
    baseline.add_argument("--epochs", type=argtypes.positive_int, default=epochs, help=f"(default: {epochs})")
    baseline.add_argument("--batch-size", type=argtypes.positive_int, default=100, help="(default: 100)")
    baseline.add_argument("--lr-start", type=float, default=1e-3, help="(default: 1e-3)")
    lr_end = defaults["lr_end"]
    baseline.add_argument("--lr-end", type=float, default=lr_end, help=f"(default: {lr_end:g})")
    baseline.add_argument("--seed", type=int, default=0, help="(default: 0)")
    baseline.add_argument(
        "--train-images", type=argtypes.positive_int, metavar="N", help="only the first N training images (tests)"
    )
    baseline.add_argument(
        "--validation", type=argtypes.positive_int, default=baseline_loop.VALIDATION_IMAGES, help="(default: 5000)"
    )
    baseline.add_argument("--test-images", type=argtypes.positive_int, metavar="N", help="only the first N test images")
    baseline.add_argument("--gpu", action="store_true", help="run on CuPy (needs the [gpu] extra)")
    argtypes.add_output_argument(baseline, "DIR", f"output folder (default: {net.name}-<dataset>)")
    baseline.add_argument("--quiet", action="store_true", help="no progress bar")
    add_data_dir(baseline)
    baseline.set_defaults(handler=_baseline, net=net)


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=None, help="mnist or fashion-mnist (default: the model's)")
    parser.add_argument("--split", default="test", choices=["train", "test"], help="(default: test)")
    parser.add_argument(
        "--images", type=argtypes.positive_int, default=None, metavar="N", help="only the first N images"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_data_dir(parser)


def _load_data(args: argparse.Namespace, model: AnalysedModel) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    dataset = dataset_spec(args.dataset or model.dataset).name
    images, labels = load_split(dataset, args.split, args.data_dir)
    if args.images is not None:
        if args.images < 1:
            raise Bs4nnError(f"--images must be positive, got {args.images}")
        images, labels = images[: args.images], labels[: args.images]
    sizes = model.network.sizes
    if images[0].size != sizes[0]:
        raise Bs4nnError(f"the model takes {sizes[0]} inputs, {dataset} images have {images[0].size} pixels")
    meta = {"model": str(model.source), "dataset": dataset, "split": args.split, "images": len(labels)}
    return images, labels, meta


def _report_b1(args: argparse.Namespace, network, dataset: str) -> int:
    from bs4nn.train.experiments.b1_report import analyse_b1, write_b1_report

    dataset = dataset_spec(args.dataset or dataset).name
    images, labels = load_split(dataset, args.split, args.data_dir)
    if args.images is not None:
        images, labels = images[: args.images], labels[: args.images]
    from bs4nn.fileio import owned_entries
    from bs4nn.train.experiments.report import WRITER

    out = args.output or f"report-{resolve_model(args.model).stem}"
    owned_entries(out, WRITER)  # a folder the report may not replace is refused before the work
    meta = {"model": str(args.model), "dataset": dataset, "split": args.split, "images": len(labels)}
    data = analyse_b1(network, images, labels)
    path = write_b1_report(network, data, out, meta)
    spikes = ", ".join(f"{s:.3f}" for s in data.result.spikes_per_neuron())
    print(f"{dataset} {args.split}: {len(labels)} images, accuracy {100 * data.result.accuracy(labels):.2f} % (B1)")
    print(f"spikes per neuron per layer (input first): {spikes}")
    print(f"report written to {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from bs4nn.fileio import owned_entries
    from bs4nn.train.experiments.b1_report import load_b1
    from bs4nn.train.experiments.report import WRITER

    b1 = load_b1(model_path(args.model))
    if b1 is not None:
        return _report_b1(args, *b1)
    model = load_model(model_path(args.model))
    out = args.output or f"report-{model.name}"
    owned_entries(out, WRITER)  # a folder the report may not replace is refused before the work
    images, labels, meta = _load_data(args, model)
    data = analyse(model, images, labels, image_index=args.image, steps=args.steps, progress=not args.quiet)
    path = write_report(model, data, out, meta, hidden_shown=args.hidden)
    print(f"{meta['dataset']} {args.split}: {len(labels)} images, accuracy {100 * data.accuracy:.2f} %")
    print(decision_line(decision_statistics(data.result, model.network.tmax)))
    print(f"report written to {path}")
    return 0


def _legacy_results(folder: Path) -> list[str] | None:
    """An experiments folder written before ownership records: it holds a sweep's or the baseline's JSON."""
    return [] if any((folder / f"{name}.json").is_file() for name in (*SWEEPS, "bnn", "relu")) else None


def _claim_folder(out: Path, write: bool = False) -> Path:
    """The experiments' output folder: a folder of the user's is refused (before the work); with
    ``write``, claimed for writing (after the work, so that a failed command leaves nothing)."""
    from bs4nn.fileio import owned_entries, work_directory

    if write:
        return work_directory(out, EXPERIMENT_WRITER, _legacy_results)
    owned_entries(out, EXPERIMENT_WRITER, _legacy_results)
    return out


def _sweep(args: argparse.Namespace) -> int:
    model = load_model(model_path(args.model))
    out = _claim_folder(Path(args.output or f"experiments-{model.name}"))
    images, labels, meta = _load_data(args, model)
    progress = not args.quiet
    start = time.perf_counter()
    if args.experiment == "noise":
        levels = sweeps.NOISE_LEVELS if args.levels is None else [p / 100 for p in args.levels]
        rows = sweeps.noise_sweep(model, images, labels, levels, seed=args.seed, progress=progress)
        meta["seed"] = args.seed
    elif args.experiment == "threshold":
        rows = sweeps.threshold_sweep(
            model, images, labels, args.thetas, layers=args.layers, progress=progress, scales=args.scales
        )
        meta["layers"] = args.layers or "all"
        meta["theta_units"] = "counts (no alpha in the manifest)" if model.alphas_q is None else "alpha units"
    elif args.experiment == "alpha":
        rows = sweeps.alpha_rounding(model, images, labels)
    else:
        rows = sweeps.real_weights_experiment(model, images, labels)
    meta["seconds"] = time.perf_counter() - start
    written = sweeps.write_sweep(args.experiment, rows, _claim_folder(out, write=True), meta)
    print((out / f"{args.experiment}.md").read_text(), end="")
    print("written: " + ", ".join(str(path) for path in written))
    return 0


def _array_module(gpu: bool) -> ModuleType:
    if not gpu:
        return np
    try:
        import cupy
    except ImportError as error:
        raise Bs4nnError("--gpu needs CuPy: pip install 'bs4nn[gpu]'") from error
    return cupy


def _baseline(args: argparse.Namespace) -> int:
    net = args.net
    dataset = dataset_spec(args.dataset).name
    hidden = args.hidden or [baseline_loop.DEFAULT_HIDDEN[dataset]]
    out = _claim_folder(Path(args.output or f"{net.name}-{dataset}"))
    train_images, train_labels = load_split(dataset, "train", args.data_dir)
    test_images, test_labels = load_split(dataset, "test", args.data_dir)
    if args.train_images is not None:
        train_images, train_labels = train_images[: args.train_images], train_labels[: args.train_images]
    if args.test_images is not None:
        test_images, test_labels = test_images[: args.test_images], test_labels[: args.test_images]
    config = baseline_loop.BaselineConfig(
        sizes=[train_images[0].size, *hidden, baseline_loop.N_CLASSES],
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr_start=args.lr_start,
        lr_end=args.lr_end,
        seed=args.seed,
        validation=args.validation,
    )
    xp = _array_module(args.gpu)
    result = baseline_loop.train_baseline(
        net, config, train_images, train_labels, test_images, test_labels, xp, progress=not args.quiet, dataset=dataset
    )
    folder = _claim_folder(out, write=True)
    written = baseline_loop.write_baseline_result(net, result, folder)
    architecture = "-".join(str(n) for n in config.sizes)
    print(
        f"{net.title} {architecture} on {dataset}: best epoch {result.best_epoch}/{config.epochs}, validation "
        f"{100 * result.validation_accuracy:.2f} %, test {100 * result.test_accuracy:.2f} % ({result.seconds:.0f} s)"
    )
    print("written: " + ", ".join(str(path) for path in written))
    return 0


def model_path(text: str) -> Path:
    """The file or folder a model's name stands for (:func:`bs4nn.export.naming.resolve_model`), said on stderr."""
    name = resolve_model(text)
    if name.was_renamed:
        print(f"bs4nn: model: {name}", file=sys.stderr)
    return name.path

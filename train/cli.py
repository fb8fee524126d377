"""``bs4nn data ...`` (and, from the trainer, ``bs4nn train``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bs4nn import argtypes
from bs4nn.argtypes import add_data_dir
from bs4nn.errors import Bs4nnError
from bs4nn.train.checkpoint import check_run_folder
from bs4nn.train.datasets import DATASETS, check_dataset, data_root
from bs4nn.train.presets import BACKWARDS, PRESETS, TARGET_RULES, Preset, get_preset, parse_field, parse_settings
from bs4nn.train.run import RunOptions, default_out_dir


def preset_flag(field: str) -> Callable[[str], Any]:
    """The argparse type of the flag for preset field ``field``: the preset's own range check
    (``presets.FIELD_RULES``), the same that ``--set`` applies."""

    def parse(text: str) -> Any:
        try:
            return parse_field(field, text)
        except Bs4nnError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = field
    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="check the MNIST / Fashion-MNIST files", description="Dataset tools.")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = data_sub.add_parser(
        "check",
        help="verify sha256, shapes and label counts of every dataset file",
        description="Verify every IDX file of the datasets: sha256 of the gzip files, magic numbers, "
        "shapes and per-class label counts. Exit status 0 only if all are OK.",
    )
    add_data_dir(check)
    check.add_argument("--dataset", choices=sorted(DATASETS), action="append", help="check only this dataset")
    check.set_defaults(handler=_check)
    register_train(subparsers)


PRESETS_EPILOG = (
    "presets: "
    + "; ".join(f"{name} ({p.dataset}, {'-'.join(map(str, p.sizes))})" for name, p in PRESETS.items())
    + ". The -b1 presets train B1 networks (a time-to-first-spike network equivalent to a ReLU network, "
    "Stanojevic et al. 2024; train/B1.md) with Adam, softmax cross-entropy and an activity penalty."
)


def register_train(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a binarized spiking network (BS4NN) and checkpoint it every epoch",
        description="Train a BS4NN preset with binary weights: mnist and fashion (the shipped models) with the "
        "snapshot-ce rule (mnist on training images shifted by up to a pixel, fashion with hidden dropout), "
        "mnist-early as mnist trained to decide early by a first output spike (the deadline hinge: --set "
        "deadline_weight=W --set decision_deadline=D on any snapshot-ce preset), mnist-early-1200 as mnist-early with "
        "1,200 hidden neurons distilled from a float teacher (--set teacher=NAME --set distill_weight=W), "
        "mnist-temporal and mnist-paper with the paper's relative temporal targets and S4NN-style "
        "backward (Table 1); mnist-b1 and fashion-b1 train B1 networks (the b1 rule, train/B1.md) through the "
        "same loop, so --set, --plot, --resume and the metrics files work alike. "
        "Trains on the first 55,000 training images, selects the model on the last 5,000 "
        "(validation), and scores the selected model on the test split with the golden model (alphas rounded "
        "to two decimals, hardware tie rule). Writes OUTDIR/checkpoint.npz (latest, for --resume), "
        "OUTDIR/best.npz (best validation accuracy), OUTDIR/calibrated.npz (best.npz with each layer's threshold "
        "chosen on validation, for presets that calibrate), metrics.csv/.json and summary.json.",
        epilog=PRESETS_EPILOG,
    )
    train.add_argument("--preset", default="mnist", choices=sorted(PRESETS), help="the network")
    argtypes.add_output_argument(train, "OUTDIR", "output folder (default: runs/PRESET)")
    train.add_argument(
        "--epochs",
        type=preset_flag("epochs"),
        help="number of epochs (default: the preset's; the learning-rate decay factor per decay step stays "
        "the preset's)",
    )
    train.add_argument("--batch-size", type=preset_flag("batch_size"), help="mini-batch size (default: the preset's)")
    train.add_argument(
        "--seed", type=argtypes.non_negative_int, default=0, help="seed of the initial weights and sample order"
    )
    train.add_argument(
        "--train-images", type=preset_flag("train_images"), help="train on the first N images (at most 55,000)"
    )
    train.add_argument(
        "--eta", type=preset_flag("eta"), help="learning rate of the weights (Adam's for mnist, fashion)"
    )
    train.add_argument("--mu", type=preset_flag("mu"), help="learning rate of the alphas")
    train.add_argument(
        "--bucket-batches",
        type=preset_flag("bucket_batches"),
        metavar="N",
        help="sort samples by spike count in groups of N batches",
    )
    train.add_argument(
        "--decay-every",
        type=preset_flag("decay_every"),
        metavar="N",
        help="learning rates x the preset's decay factor every N epochs (0.7 for the paper's presets; "
        "mnist and fashion: x0.5 over their 50 epochs, every epoch)",
    )
    train.add_argument(
        "--target-rule",
        choices=TARGET_RULES,
        help="correct output's target: eq6 = tau - gamma (paper); hardware = tau, or tau - 1 when it loses a tie",
    )
    train.add_argument("--gamma", type=preset_flag("gamma"), help="target margin of the wrong outputs (eq. 6)")
    train.add_argument("--thetas", type=argtypes.positive_float, nargs="+", metavar="THETA", help="threshold per layer")
    train.add_argument(
        "--weight-clip",
        type=argtypes.positive_float_or_none,
        nargs="+",
        metavar="C",
        help="per layer: keep the proxy weights in [-C, C] (binary mode; 'none': unbounded)",
    )
    _add_rule_arguments(train)
    train.add_argument(
        "--calibrate-thresholds",
        action=argparse.BooleanOptionalAction,
        help="after training, choose each layer's integer threshold on the validation split and write "
        "OUTDIR/calibrated.npz (default: the preset's; --resume on a finished run only calibrates and tests)",
    )
    train.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change any other preset field, VALUE a Python literal or a bare word, e.g. --set "
        "decay_factor=0.98 --set 'snapshot_steps=(0, 8, 64, 255)' (repeatable; the fields are in "
        "train/presets.py; --epochs keeps the preset's per-epoch decay factor, set decay_factor with it)",
    )
    add_b1_arguments(train)
    train.add_argument("--real-weights", action="store_true", help="S4NN mode: real-valued weights, no binarisation")
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"], help="gpu needs CuPy (default auto)")
    train.add_argument(
        "--threads", type=int, choices=(1, 2), default=2, help="CPU threads per batch (1 or 2, default 2)"
    )
    train.add_argument("--resume", action="store_true", help="continue OUTDIR/checkpoint.npz exactly where it stopped")
    train.add_argument(
        "--init-from",
        metavar="MODEL",
        help="fine-tune: start from the weights, alphas (and the rule's learned extras) of MODEL -- a shipped "
        "name, a checkpoint .npz or a run folder of the same family and sizes -- instead of the preset's "
        "random draw; thresholds, optimiser and epochs are this run's (e.g. --init-from fashion with an "
        "early-decision objective; the preset field init_from)",
    )
    train.add_argument("--plot", action="store_true", help="write OUTDIR/learning_curves.png (matplotlib, Agg)")
    train.add_argument("--no-test", action="store_true", help="do not score the best model on the test split")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    add_data_dir(train)
    train.set_defaults(handler=_train)


def _add_rule_arguments(train: argparse.ArgumentParser) -> None:
    """The training rule and its knobs, the readout epochs, augmentation and dropout (``bs4nn train``)."""
    train.add_argument(
        "--backward",
        choices=BACKWARDS,
        help="temporal = the paper's S4NN backward on spike times; snapshot = hinge on the output counters "
        "at the decision step; snapshot-ce = cross-entropy on the output counters summed over the preset's "
        "snapshot steps (the -ce presets). Binary weights only for both snapshot rules; train/README.md",
    )
    train.add_argument(
        "--readout-epochs",
        type=preset_flag("readout_epochs"),
        metavar="N",
        help="after the training epochs, N epochs that train the output layer alone (snapshot hinge, Adam), "
        "from the output count chosen on validation (default: the preset's; mnist 4, fashion 0)",
    )
    train.add_argument(
        "--shift-pixels",
        type=preset_flag("shift_pixels"),
        metavar="N",
        help="augmentation: shift each training image by up to N pixels per axis, drawn anew every epoch "
        "(0: none; default: the preset's, 1 for mnist)",
    )
    train.add_argument(
        "--mirror-images",
        action=argparse.BooleanOptionalAction,
        help="augmentation: mirror each training image left-right with probability 1/2, every epoch "
        "(default: the preset's, off for all)",
    )
    train.add_argument(
        "--hidden",
        type=argtypes.positive_int,
        nargs="+",
        metavar="N",
        help="hidden layer sizes (B1 presets: any number of layers; BS4NN presets: as many as the preset has)",
    )
    train.add_argument(
        "--hidden-dropout",
        type=preset_flag("hidden_dropout"),
        metavar="P",
        help="snapshot-ce: silence each hidden neuron with probability P per training image and batch "
        "(inverted dropout; 0: none; default: the preset's)",
    )
    train.add_argument(
        "--count-margin",
        type=preset_flag("count_margin"),
        metavar="M",
        help="snapshot backward: counts by which the outputs must clear their threshold",
    )
    train.add_argument(
        "--surrogate-width",
        type=preset_flag("surrogate_width"),
        metavar="W",
        help="snapshot backward: half-width in counts of the hidden neurons' surrogate gradient",
    )


def add_b1_arguments(train: argparse.ArgumentParser) -> None:
    """The flags of the -b1 presets only."""
    b1 = train.add_argument_group("B1 presets (mnist-b1, fashion-b1)")
    b1.add_argument(
        "--weight-bits", type=preset_flag("weight_bits"), metavar="B", help="weight width 1..8 (1: +1/-1; default 1)"
    )
    b1.add_argument(
        "--windows", type=argtypes.positive_int, nargs="+", metavar="K", help="window in steps per hidden layer"
    )
    b1.add_argument(
        "--activity-penalty",
        type=argtypes.non_negative_float,
        metavar="LAMBDA",
        help="weight of the mean hidden value (in steps) in the loss: larger, fewer spikes (default: the preset's)",
    )


B1_ONLY = ("weight_bits", "windows", "activity_penalty")
BS4NN_ONLY = (
    "mu", "bucket_batches", "decay_every", "target_rule", "gamma", "thetas", "weight_clip", "backward",
    "count_margin", "surrogate_width", "readout_epochs", "calibrate_thresholds",
)  # fmt: skip


def architecture(args: argparse.Namespace, preset: Preset) -> Preset:
    """``preset`` with ``--hidden`` and the flags of the B1 presets applied (``--windows``,
    ``--weight-bits``, ``--activity-penalty``); the BS4NN presets refuse the B1 flags, and the B1
    presets the BS4NN knobs (a preset with hidden windows is a B1 network)."""
    if not preset.windows:
        given = [key for key in B1_ONLY if getattr(args, key) is not None]
        if given:
            raise Bs4nnError(f"--{given[0].replace('_', '-')} is an option of the B1 presets, not of {preset.name}")
        return bs4nn_hidden(args.hidden, preset)
    given = [key for key in BS4NN_ONLY if getattr(args, key) is not None] + ["real_weights"] * args.real_weights
    if given:
        raise Bs4nnError(f"--{given[0].replace('_', '-')} is a BS4NN option; preset {preset.name} is a B1 network")
    sizes = preset.sizes if args.hidden is None else (preset.sizes[0], *args.hidden, preset.sizes[-1])
    windows = args.windows or preset.windows
    if args.hidden is not None and args.windows is None:
        windows = (preset.windows[0],) * len(args.hidden)
    if len(windows) != len(sizes) - 2:
        raise Bs4nnError(f"--windows needs one window per hidden layer ({len(sizes) - 2})")
    weight_bits = preset.weight_bits if args.weight_bits is None else args.weight_bits
    clip = (1.0,) * (len(sizes) - 1) if weight_bits == 1 else None  # b-bit weights are quantised, not clipped
    changes = dict(sizes=tuple(sizes), windows=tuple(windows), weight_bits=weight_bits, weight_clip=clip)
    if args.activity_penalty is not None:
        changes["activity_penalty"] = args.activity_penalty
    return replace(preset, **changes)


def bs4nn_hidden(hidden: list[int] | None, preset: Preset) -> Preset:
    """A BS4NN preset with other hidden layer sizes (``--hidden``): as many hidden layers as the
    preset has, since its thresholds, scales and initial ranges are given per layer (a preset with
    ``calibrate_thresholds`` chooses the counts on validation after training, for the new fan-in
    too)."""
    if hidden is None:
        return preset
    if len(hidden) != len(preset.sizes) - 2:
        raise Bs4nnError(
            f"--hidden: preset {preset.name} has {len(preset.sizes) - 2} hidden layer(s): give one size each, "
            f"got {len(hidden)}"
        )
    return replace(preset, sizes=(preset.sizes[0], *hidden, preset.sizes[-1]))


def _train(args: argparse.Namespace) -> int:
    # here, not at the top: the trainer's imports add ~0.5 s to every `bs4nn` command (measured 0.22 -> 0.77 s)
    from bs4nn.train.trainer import train

    preset = architecture(args, get_preset(args.preset))
    if args.thetas is not None and len(args.thetas) != len(preset.thetas):
        raise Bs4nnError(f"--thetas needs {len(preset.thetas)} values for preset {preset.name}")
    if args.weight_clip is not None and len(args.weight_clip) != len(preset.thetas):
        raise Bs4nnError(f"--weight-clip needs {len(preset.thetas)} values for preset {preset.name}")
    flags = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        train_images=args.train_images,
        eta=args.eta,
        mu=args.mu,
        decay_every=args.decay_every,
        bucket_batches=args.bucket_batches,
        target_rule=args.target_rule,
        gamma=args.gamma,
        thetas=tuple(args.thetas) if args.thetas else None,
        weight_clip=tuple(args.weight_clip) if args.weight_clip else None,
        backward=args.backward,
        count_margin=args.count_margin,
        surrogate_width=args.surrogate_width,
        readout_epochs=args.readout_epochs,
        shift_pixels=args.shift_pixels,
        mirror_images=args.mirror_images,
        hidden_dropout=args.hidden_dropout,
        calibrate_thresholds=args.calibrate_thresholds,
        init_from=args.init_from,
    )
    settings = parse_settings(args.settings)
    twice = sorted(key for key, value in flags.items() if value is not None and key in settings)
    if twice:
        raise Bs4nnError(f"{', '.join(twice)}: given both as a flag and with --set; use one")
    preset = replace(preset, **settings).with_overrides(**flags)
    out_dir = Path(args.output) if args.output else default_out_dir(preset)
    check_run_folder(out_dir, args.resume)
    options = RunOptions(
        out_dir=out_dir,
        data_dir=args.data_dir,
        seed=args.seed,
        binary=not args.real_weights,
        device=args.device,
        resume=args.resume,
        plot=args.plot,
        progress=not args.quiet,
        test=not args.no_test,
        threads=args.threads,
    )
    train(preset, options)
    return 0


def _check(args: argparse.Namespace) -> int:
    print(f"data folder: {data_root(args.data_dir)}")
    for name in args.dataset or sorted(DATASETS):
        for line in check_dataset(name, args.data_dir):
            print(line)
    print("all dataset files OK")
    return 0

"""Argument types shared by every stage's command line: one message for one kind of bad value."""

from __future__ import annotations

import argparse
import math
import re

from bs4nn.lanes import MAX_LANES


def _number(text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from error


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a threshold of a sweep, which may start at 0)."""
    value = _number(text, float)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def probability_below_one(text: str) -> float:
    """A probability in [0, 1) (a dropout rate: 1 would drop everything)."""
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def finite_seconds(text: str) -> float:
    """A time limit in seconds: positive and finite (``nan`` or ``inf`` would wait forever)."""
    return positive_float(text)


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def verilog_identifier(text: str) -> str:
    """A plain Verilog identifier (a module name): letters, digits and ``_``, not starting with a digit.

    Anything else would be pasted into the generated Verilog (``x; endmodule module evil``).
    """
    if not IDENTIFIER.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"must be a Verilog identifier (letters, digits, _; not starting with a digit), got {text!r}"
        )
    return text


def positive_float_or_none(text: str) -> float | None:
    """A positive number, or ``none`` for "no bound"."""
    return None if text.lower() == "none" else positive_float(text)


def lanes(text: str) -> int:
    """A lane count the memory layout supports (``1..MAX_LANES``)."""
    value = _number(text, int)
    if not 1 <= value <= MAX_LANES:
        raise argparse.ArgumentTypeError(f"lanes must be 1..{MAX_LANES}, got {text}")
    return value


MAX_CORE_LANES = 65536
"""A sanity bound on a core's lanes; the real one (a wide core's lanes cover its widest layer) is
checked against the network where the core is built."""


def core_lanes(text: str) -> int:
    """Counters a core updates per cycle: ``1..MAX_LANES`` (block-RAM counters, the narrow core) or
    more (the wide core, counters in registers: at least the widest layer, checked with the network)."""
    value = _number(text, int)
    if not 1 <= value <= MAX_CORE_LANES:
        raise argparse.ArgumentTypeError(
            f"lanes must be 1..{MAX_LANES} (narrow core) or up to {MAX_CORE_LANES} (wide core), got {text}"
        )
    return value


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``, as every command that reads the datasets takes it."""
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder holding mnist/ and fashion-mnist/ IDX files (default: $BS4NN_DATA, else ~/.cache/bs4nn/data)",
    )


MODEL_HELP = (
    "the model: a shipped name (mnist, fashion, mnist-b1, fashion-b1), a checkpoint .npz, a training run folder "
    "or a bit-model folder; anything but a bit-model folder is exported for the run (the command says which it used)"
)


def add_model_argument(parser: argparse.ArgumentParser, required: bool = True, when_absent: str = "") -> None:
    """``--model MODEL``, the one flag every command names its model with (``--manifest`` is kept as an alias)."""
    help_text = f"{MODEL_HELP}; {when_absent}" if when_absent else MODEL_HELP
    parser.add_argument("--model", "--manifest", dest="model", metavar="MODEL", required=required, help=help_text)


def add_output_argument(parser: argparse.ArgumentParser, metavar: str, help_text: str, **kwargs) -> None:
    """``-o/--output``, the one flag every command names its output with (``--out`` is kept as an alias)."""
    parser.add_argument("-o", "--output", "--out", dest="output", metavar=metavar, help=help_text, **kwargs)


def add_place_and_route_arguments(parser: argparse.ArgumentParser) -> None:
    """``--target-mhz`` (the clock nextpnr works to) and ``--seed`` (its placer's), for every command
    that places and routes a board top."""
    parser.add_argument(
        "--target-mhz",
        type=positive_float,
        default=None,
        metavar="MHZ",
        help="ECP5: constrain the clock at MHZ for nextpnr's timing-driven placement and routing (it works only "
        "for the slack it is given); the measured Fmax is nextpnr's achieved one either way (default: the board clock)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="nextpnr's placer seed: the same netlist placed from another seed reaches another Fmax (a few ns "
        "apart on a full chip); each build is measured as placed, and report.json records the seed "
        "(default: nextpnr's own)",
    )

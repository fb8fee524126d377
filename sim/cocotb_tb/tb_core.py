"""cocotb testbench of ``bs4nn_core``: streams whole images, records everything the core reports.

Run through :func:`bs4nn.sim.regress.run_regression`, never by hand: the job file named by
``$BS4NN_TB_JOB`` holds every image's address events and the stream options; what the core
reported is written to ``$BS4NN_TB_RESULT`` and scored against the golden model outside the
simulator.  The top is the stream harness (:mod:`bs4nn.sim.cocotb_tb.harness`): the clock is
Verilog's, and a job without gaps, delays or resets is streamed by the harness's Verilog driver
while Python sleeps until it is done.  Otherwise :class:`Bench` drives the core from Python and
wakes only for handshakes: while the core back-pressures, the driver sleeps on ``events__ready``
rising instead of polling each cycle; the spike monitor sleeps on ``spikes__valid``.

Interface (``rtl/README.md``): ``events`` valid/ready ``(pixel, time)`` beats ending with one
``time >= tmax`` end beat; ``result`` valid/ready, one beat per image; ``spikes`` valid only.
Payloads are built and decoded with the RTL stage's own ``CoreParams``.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, Timer, with_timeout

from bs4nn.export.bitmodel import load_bit_model
from bs4nn.fileio import atomic_write_bytes
from bs4nn.rtl.family import core_params, worst_case_cycles_of
from bs4nn.rtl.params import CoreParams
from bs4nn.sim.cocotb_tb.harness import OBSERVED_FILE, read_observed, streams_in_verilog
from bs4nn.sim.cocotb_tb.job import (
    CLOCK_PERIOD_NS,
    JOB_ENV,
    NO_RESET,
    PROGRESS_ENV,
    PROGRESS_INTERVAL_S,
    RESULT_ENV,
)

RESET_CYCLES = 2
WATCHDOG_MARGIN = 4
"""Per image the core gets this many times its worst case (``bs4nn.rtl.cycles``) before it is declared hung."""


def _high(signal) -> bool:
    """1, as opposed to 0, X or Z (combinational outputs may read X before their first event)."""
    return str(signal.value) == "1"


class SpikeMonitor:
    """Collects every ``spikes`` beat, ``(layer, neuron, time)``; sleeps while ``valid`` is low."""

    def __init__(self, dut, params: CoreParams):
        self.dut, self.params = dut, params
        self.events: list[tuple[int, int, int]] = []

    async def run(self) -> None:
        clk, valid, payload = self.dut.clk, self.dut.spikes__valid, self.dut.spikes__payload
        while True:
            await RisingEdge(clk)  # values read here are those the edge samples
            if _high(valid):
                self.events.append(self.params.decode_spike(int(payload.value)))
                continue
            await ReadOnly()
            if not _high(valid):
                await RisingEdge(valid)


class Bench:
    """Drives one image at a time: events in, result out, with seeded handshake gaps."""

    def __init__(self, dut, params: CoreParams, job: dict[str, np.ndarray]):
        self.dut, self.params, self.job = dut, params, job
        # the core's clock: the harness's own while it streams, else cocotb's on ``clk``
        self.clock = dut.clock if streams_in_verilog(job) else dut.clk
        self.rng = np.random.default_rng(int(job["seed"]))
        self.monitor = SpikeMonitor(dut, params)

    async def wait_accepted(self, ready) -> None:
        """Return at the rising edge where the beat moved (valid and ready both 1)."""
        clk = self.clock
        while True:
            await RisingEdge(clk)
            if _high(ready):
                return
            await ReadOnly()
            if not _high(ready):
                await RisingEdge(ready)

    async def send(self, beats: list[int], *, whole_image: bool = True) -> None:
        """The beats, one after another; once the core says ``skip`` (it exited early and discards
        the rest), straight to the last beat (the end beat of a ``whole_image``), as the board's
        event source does."""
        dut = self.dut
        gap_probability = float(self.job["input_gap_probability"])
        max_gap = int(self.job["max_input_gap"])
        position = 0
        while position < len(beats):
            if gap_probability and self.rng.random() < gap_probability:
                dut.events__valid.value = 0
                await ClockCycles(self.clock, int(self.rng.integers(1, max_gap + 1)))
            dut.events__payload.value = beats[position]
            dut.events__valid.value = 1
            await self.wait_accepted(dut.events__ready)
            skip = whole_image and _high(dut.skip) and position < len(beats) - 1
            position = len(beats) - 1 if skip else position + 1
        dut.events__valid.value = 0

    async def take_result(self) -> int:
        dut = self.dut
        await ReadOnly()
        if not _high(dut.result__valid):
            await RisingEdge(dut.result__valid)
        await RisingEdge(self.clock)
        delay_probability = float(self.job["result_delay_probability"])
        if delay_probability and self.rng.random() < delay_probability:
            await ClockCycles(self.clock, int(self.rng.integers(1, int(self.job["max_result_delay"]) + 1)))
        dut.result__ready.value = 1
        await self.wait_accepted(dut.result__valid)
        value = dut.result__payload.value
        dut.result__ready.value = 0
        if not value.is_resolvable:
            raise AssertionError(f"result payload holds X/Z bits: {value}")
        return int(value)

    async def reset(self) -> None:
        self.dut.rst.value = 1
        await ClockCycles(self.clock, RESET_CYCLES)
        self.dut.rst.value = 0
        self.dut.events__valid.value = 0
        self.dut.result__ready.value = 0

    async def load_weights(self, writes: np.ndarray) -> None:
        """Write weight-memory words through the run-time port (one a cycle, only while idle)."""
        dut = self.dut
        await ReadOnly()
        if not _high(dut.idle):
            await RisingEdge(dut.idle)
        await RisingEdge(self.clock)
        for layer, address, word in writes.tolist():
            dut.weights__payload.value = self.params.encode_weight(int(layer), int(address), int(word))
            dut.weights__valid.value = 1
            await RisingEdge(self.clock)
        dut.weights__valid.value = 0

    def beats(self, events: np.ndarray) -> list[int]:
        params = self.params
        return [params.encode_event(int(p), int(t)) for p, t in events] + [params.encode_event(0, params.tmax)]

    def watchdog_cycles(self, n_events: int) -> int:
        """The RTL stage's worst-case cycle bound, plus every handshake gap and a reset, with margin."""
        gaps = (n_events + 1) * int(self.job["max_input_gap"]) + int(self.job["max_result_delay"])
        return WATCHDOG_MARGIN * (2 * worst_case_cycles_of(self.params) + gaps + RESET_CYCLES)

    async def run_image(self, events: np.ndarray, reset_after: int) -> tuple[int, int]:
        """Stream one image; returns ``(result payload, first spike index of this image)``."""
        beats = self.beats(events)
        if reset_after != NO_RESET:
            await self.send(beats[: min(reset_after, len(beats) - 1)], whole_image=False)
            await ClockCycles(self.clock, int(self.rng.integers(0, 4)))
            await self.reset()
        first_spike = len(self.monitor.events)
        sender = cocotb.start_soon(self.send(beats))
        payload = await self.take_result()
        await sender
        return payload, first_spike


class ProgressFile:
    """Finished images, for the host's progress bar: one number, rewritten at most every 0.25 s.

    The simulator runs in another process than ``bs4nn sim cocotb``; a file is the simplest
    channel (the host polls it, and a half-written number is just read again later).
    """

    def __init__(self, path: str | None) -> None:
        self.path, self.last = path, 0.0

    def report(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if self.path and (final or now - self.last >= PROGRESS_INTERVAL_S):
            with open(self.path, "w") as handle:
                handle.write(f"{done}\n")
            self.last = now


def _load_job() -> dict[str, np.ndarray]:
    with np.load(os.environ[JOB_ENV]) as data:
        return {name: data[name] for name in data.files}


@cocotb.test()
async def stream_images(dut) -> None:
    """Every image of the job through the core; records results, spikes and cycles per image."""
    job = _load_job()
    network = load_bit_model(str(job["manifest"])).network
    params = core_params(network, int(job["lanes"]))
    early_exit = bool(int(job["early_exit"]))
    bench = Bench(dut, params, job)
    # every input defined and reset held BEFORE the first clock edge: an edge that samples
    # undriven (X) inputs would put X into the counter memories, which no reset clears
    inputs = (dut.events__valid, dut.events__payload, dut.result__ready, dut.weights__valid, dut.weights__payload)
    for port in (*inputs, dut.stream_go):
        port.value = 0
    dut.early_exit.value = int(early_exit)
    dut.rst.value = 1
    if not streams_in_verilog(job):
        Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns", impl="gpi").start(start_high=False)
    await bench.reset()
    if len(job["weight_writes"]):
        await bench.load_weights(job["weight_writes"])
    if streams_in_verilog(job):
        await _stream_in_verilog(dut, bench, job, params)
        return
    cocotb.start_soon(bench.monitor.run())

    offsets, events = job["offsets"], job["events"]
    n_images = len(offsets) - 1
    results: list[dict] = []
    spike_slices: list[tuple[int, int]] = []
    cycles: list[int] = []
    timed_out = False
    progress = ProgressFile(os.environ.get(PROGRESS_ENV))
    for index in range(n_images):
        image_events = events[offsets[index] : offsets[index + 1]]
        reset_after = int(job["reset_after_events"][index])
        start = get_sim_time("ns")
        budget = bench.watchdog_cycles(len(image_events)) * CLOCK_PERIOD_NS
        try:
            payload, first_spike = await with_timeout(bench.run_image(image_events, reset_after), budget, "ns")
        except TimeoutError:
            dut._log.error("image %d: no result after %d cycles: the core hung", index, budget // CLOCK_PERIOD_NS)
            timed_out = True
            break
        cycles.append(round((get_sim_time("ns") - start) / CLOCK_PERIOD_NS))
        results.append(params.decode_result(payload))
        spike_slices.append((first_spike, len(bench.monitor.events)))
        progress.report(index + 1)
    progress.report(len(results), final=True)
    _write_observed(results, bench.monitor.events, spike_slices, cycles, params, timed_out)


CHECK_CYCLES = 200_000  # while the harness streams, Python looks in this often (progress, a hung core)


async def _stream_in_verilog(dut, bench: Bench, job: dict[str, np.ndarray], params: CoreParams) -> None:
    """The harness streams the whole job; Python wakes every :data:`CHECK_CYCLES` (or when it is
    done) to report progress and to stop a core that finished no image within the watchdog."""
    offsets = job["offsets"]
    n_images = len(offsets) - 1
    progress = ProgressFile(os.environ.get(PROGRESS_ENV))
    budget = bench.watchdog_cycles(int(np.diff(offsets).max(initial=0)))
    finished, quiet, timed_out = 0, 0, False
    dut.stream_go.value = int(n_images > 0)
    while n_images and not _high(dut.stream_done):
        await First(Timer(CHECK_CYCLES * CLOCK_PERIOD_NS, "ns"), RisingEdge(dut.stream_done))
        done = int(dut.stream_images.value)
        quiet = 0 if done > finished else quiet + CHECK_CYCLES
        finished = done
        progress.report(finished)
        if quiet > budget and not _high(dut.stream_done):
            dut._log.error("image %d: no result after %d cycles: the core hung", finished, quiet)
            timed_out = True
            break
    observed = os.path.join(os.path.dirname(os.environ[RESULT_ENV]), OBSERVED_FILE)
    payloads, cycles, spike_payloads, slices = read_observed(Path(observed)) if n_images else ([], [], [], [])
    progress.report(len(payloads), final=True)
    results = [params.decode_result(payload) for payload in payloads]
    spikes = [params.decode_spike(payload) for payload in spike_payloads]
    _write_observed(results, spikes, slices, cycles, params, timed_out)


def _write_observed(results, spikes, slices, cycles, params: CoreParams, timed_out: bool) -> None:
    n = len(results)
    ordered = [spikes[start:end] for start, end in slices]
    flat = np.asarray([event for image in ordered for event in image], np.int64).reshape(-1, 3)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        decision=np.asarray([r["decision"] for r in results], np.int64),
        decision_time=np.asarray([r["decision_time"] for r in results], np.int64),
        output_times=np.asarray([r["spike_times"] for r in results], np.int64).reshape(n, params.n_out),
        output_counts=np.asarray([r["counts"] for r in results], np.int64).reshape(n, params.n_out),
        spikes=flat,
        spike_offsets=np.cumsum([0] + [len(image) for image in ordered]).astype(np.int64),
        cycles=np.asarray(cycles, np.int64),
        timed_out=np.int64(timed_out),
    )
    atomic_write_bytes(os.environ[RESULT_ENV], buffer.getvalue())

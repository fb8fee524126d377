"""Run the core in Amaranth's own simulator: a cycle-accurate reference driver for tests.

The driver feeds each image as its address-event stream (``address_events`` order plus the
end-of-image beat), keeps ``result__ready`` high, and records every result beat, every debug
spike and the cycle counts.  It is slow (Python), so it is for small networks and few images;
cocotb with Verilator is the fast path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from bs4nn.export.layout import DEFAULT_LANES
from bs4nn.rtl.core import Bs4nnCore
from bs4nn.rtl.cycles import worst_case_cycles
from bs4nn.rtl.family import core_for
from bs4nn.rtl.params import CoreParams
from bs4nn.sim.golden import IntegerNetwork
from bs4nn.sim.semantics import address_events

CLOCK_PERIOD_S = 1e-8


@dataclass
class ImageRun:
    """What the core answered for one image, and how many cycles it took."""

    decision: int
    decision_time: int
    spike_times: list[int]
    counts: list[int]
    spikes: list[tuple[int, int, int]] = field(default_factory=list)  # (layer, neuron, time) in emission order
    cycles: int = 0  # first input beat accepted .. result beat accepted, both edges counted


def image_beats(params: CoreParams, input_times: np.ndarray) -> list[int]:
    """One image's ``events__payload`` beats: its spikes in time order, then the end beat."""
    beats = [params.encode_event(p, t) for p, t in address_events(input_times, params.tmax).tolist()]
    return [*beats, params.encode_event(0, params.tmax)]


def simulate_core(
    network: IntegerNetwork,
    input_times: np.ndarray,
    *,
    lanes: int = DEFAULT_LANES,
    early_exit: bool = False,
    weight_writes: list[tuple[int, int, int]] | None = None,
    core: Bs4nnCore | None = None,
    max_cycles: int | None = None,
) -> list[ImageRun]:
    """Simulate the core on a batch ``(batch, n_in)`` of input spike times.

    ``max_cycles`` (default: twice :func:`worst_case_cycles` per image) turns a hung core into
    an error instead of an endless simulation.  ``weight_writes`` are ``(layer, address, word)``
    writes issued through the write port before the first image (run-time model loading);
    ``core`` lets a test pass a core built from another network than the one it then loads.
    """
    core = core or core_for(network, lanes)
    params = core.params
    input_times = np.asarray(input_times)
    images = [image_beats(params, row) for row in input_times]
    runs: list[ImageRun] = []
    budget = max_cycles or 2 * worst_case_cycles(params) * max(1, len(images))

    async def bench(ctx) -> None:
        ctx.set(core.early_exit, int(early_exit))
        ctx.set(core.result.ready, 1)
        while not ctx.get(core.idle):
            await ctx.tick()
        for layer, address, word in weight_writes or ():
            ctx.set(core.weights.payload.as_value(), params.encode_weight(layer, address, word))
            ctx.set(core.weights.valid, 1)
            await ctx.tick()
        ctx.set(core.weights.valid, 0)
        cycle = 0
        for beats in images:
            position, first_cycle, spikes = 0, None, []
            while True:
                if position < len(beats):
                    ctx.set(core.events.valid, 1)
                    ctx.set(core.events.payload.as_value(), beats[position])
                else:
                    ctx.set(core.events.valid, 0)
                sampled = ctx.tick().sample(core.events.ready, core.result.valid, core.spikes.valid)
                sampled = sampled.sample(core.result.payload.as_value(), core.spikes.payload.as_value())
                _, _, ready, result_valid, spike_valid, result, spike = await sampled
                cycle += 1
                if cycle > budget:
                    raise RuntimeError(f"core did not answer within {budget} cycles")
                if ready and position < len(beats):
                    first_cycle = cycle if first_cycle is None else first_cycle
                    position += 1
                if spike_valid:
                    spikes.append(params.decode_spike(int(spike)))
                if result_valid:
                    fields = params.decode_result(int(result))
                    runs.append(ImageRun(**fields, spikes=spikes, cycles=cycle - first_cycle + 1))
                    break
            # early exit: the core drains the rest of the image before it clears
            while position < len(beats):
                ctx.set(core.events.valid, 1)
                ctx.set(core.events.payload.as_value(), beats[position])
                _, _, ready = await ctx.tick().sample(core.events.ready)
                position += int(ready)
            ctx.set(core.events.valid, 0)

    simulator = Simulator(core)
    simulator.add_clock(CLOCK_PERIOD_S)
    simulator.add_testbench(bench)
    simulator.run()
    return runs

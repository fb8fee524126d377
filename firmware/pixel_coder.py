"""The board's pixel coder: an ``IMAGE`` frame's pixel bytes in, the image's address events out.

Each pixel byte, as it arrives, goes through a 256-entry ROM holding the ``encode_images`` time
of every byte value (computed from :mod:`bs4nn.sim.semantics`, never re-derived) into a time
buffer (one word per pixel), and a histogram of spikes per step is counted.  Once the frame has
checked out, ``start`` sorts the spikes by time with a counting sort: prefix sums of the
histogram (2 cycles a step), then a scatter of the pixels into the event buffer (3 cycles a
spiking pixel, 2 a black one).  The events come out in :func:`~bs4nn.sim.semantics.address_events`
order: time, then lowest pixel first.
"""

import numpy as np
from amaranth import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from bs4nn.firmware.frames import LENGTH_BITS
from bs4nn.firmware.protocol import BYTE_BITS, BYTE_VALUES
from bs4nn.rtl.params import CoreParams
from bs4nn.sim.semantics import encode_images


def sort_cycles(input_times: np.ndarray, tmax: int) -> np.ndarray:
    """Cycles per image (``(batch,)`` int64) of the counting sort, ``start`` to ``done``: the
    prefix pass (2 a step) and the scatter (3 a spiking pixel, 2 a black one).  The board's
    coder runs this before the core sees an image's first event, so it bounds the board's rate
    apart from the core's (``bs4nn bench hw`` reports both); ``clear`` adds ``tmax`` more."""
    times = np.asarray(input_times).reshape(len(input_times), -1)
    spiking = (times < tmax).sum(axis=1)
    return (2 * tmax + 2 * times.shape[1] + spiking).astype(np.int64)


def pixel_time_table(tmax: int, imax: int) -> list[int]:
    """ROM contents: the spike time of every byte value; bit ``time_bits`` set = above imax (bad)."""
    values = np.arange(BYTE_VALUES)
    times = encode_images(np.minimum(values, imax)[None, :], tmax, imax)[0]
    bad = values > imax
    return [int(t) | (int(b) << tmax.bit_length()) for t, b in zip(times, bad, strict=True)]


class PixelCoder(wiring.Component):
    """Pixel bytes (``byte``, ``byte_valid``, ``byte_index``) in while idle; ``error`` is set by a
    pixel above ``imax`` (cleared by ``clear``).  ``start`` (one cycle, when idle) sorts: ``coding``
    is 1 meanwhile, ``done`` is 1 in its last cycle, ``count`` then holds the number of events
    written through ``write_*``.  ``clear`` (one cycle, when idle) also zeroes the histogram for
    the next frame, ``tmax`` cycles with ``clearing`` at 1."""

    def __init__(self, params: CoreParams, imax: int):
        self.params, self.imax = params, imax
        super().__init__(
            {
                "byte": In(BYTE_BITS),
                "byte_valid": In(1),
                "byte_index": In(LENGTH_BITS),
                "error": Out(1),
                "start": In(1),
                "coding": Out(1),
                "done": Out(1),
                "count": Out(range(params.n_in + 1)),
                "write_en": Out(1),
                "write_addr": Out(range(params.n_in)),
                "write_data": Out(params.event_layout),
                "clear": In(1),
                "clearing": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        tmax, time_bits = params.tmax, params.time_bits
        m.submodules.pixel_times = pixel_times = memory.Memory(shape=time_bits, depth=params.n_in, init=[])
        m.submodules.code_rom = code_rom = memory.Memory(
            shape=time_bits + 1, depth=BYTE_VALUES, init=pixel_time_table(tmax, self.imax)
        )
        # spikes per step while receiving; start index of each step after the prefix pass
        m.submodules.histogram = histogram = memory.Memory(shape=range(params.n_in + 1), depth=tmax, init=[])
        self.hist_write, self.hist_read = histogram.write_port(), histogram.read_port()
        self.times_write, self.times_read = pixel_times.write_port(), pixel_times.read_port()
        self.code_read = code_rom.read_port()
        self.step = Signal(time_bits)
        self.pixel = Signal(range(params.n_in + 1))
        self._receive(m)
        with m.FSM():
            with m.State("IDLE"):
                self._count(m)
            self._sort_states(m)
            with m.State("CLEAR"):
                m.d.comb += [self.clearing.eq(1), self.hist_write.en.eq(1), self.hist_write.addr.eq(self.step)]
                m.d.comb += self.hist_write.data.eq(0)
                m.d.sync += self.step.eq(self.step + 1)
                with m.If(self.step == tmax - 1):
                    m.next = "IDLE"
        return m

    def _receive(self, m: Module) -> None:
        """Each pixel byte's time (ROM, one cycle) into the time buffer; flag a pixel above imax."""
        tmax, time_bits = self.params.tmax, self.params.time_bits
        pending_pixel = Signal()  # the ROM is reading the time of the pixel received last cycle
        pending_index = Signal(LENGTH_BITS)
        self.pending_count = pending_count = Signal()  # the histogram is reading the count of `pending_time`
        self.pending_time = pending_time = Signal(time_bits)
        self.pixel_time = pixel_time = self.code_read.data[:time_bits]
        m.d.comb += self.code_read.addr.eq(self.byte)
        m.d.sync += [pending_pixel.eq(self.byte_valid), pending_count.eq(0), pending_time.eq(pixel_time)]
        with m.If(self.byte_valid):
            m.d.sync += pending_index.eq(self.byte_index)
        with m.If(pending_pixel):
            m.d.comb += [
                self.times_write.en.eq(1),
                self.times_write.addr.eq(pending_index),
                self.times_write.data.eq(pixel_time),
            ]
            with m.If(self.code_read.data[time_bits]):
                m.d.sync += self.error.eq(1)
            with m.Elif(pixel_time < tmax):
                m.d.sync += pending_count.eq(1)

    def _count(self, m: Module) -> None:
        """While idle: the histogram update of the pixel received two cycles ago (bytes are >= 40
        cycles apart); ``start`` sorts, ``clear`` zeroes the histogram."""
        m.d.comb += self.hist_read.addr.eq(self.pixel_time)
        with m.If(self.pending_count):
            m.d.comb += [
                self.hist_write.en.eq(1),
                self.hist_write.addr.eq(self.pending_time),
                self.hist_write.data.eq(self.hist_read.data + 1),
            ]
        with m.If(self.start):
            m.d.sync += [self.step.eq(0), self.pixel.eq(0), self.count.eq(0)]
            m.next = "PREFIX_READ"
        with m.Elif(self.clear):
            m.d.sync += [self.step.eq(0), self.error.eq(0)]
            m.next = "CLEAR"

    def _sort_states(self, m: Module) -> None:
        """The counting sort: start index of every step, then pixels scattered by time."""
        tmax, n_in = self.params.tmax, self.params.n_in
        hist_read, hist_write, times = self.hist_read, self.hist_write, self.times_read
        running = self.count  # prefix sum of the histogram: in the end, the number of events
        scatter_time = Signal.like(self.step)
        m.d.comb += times.addr.eq(self.pixel)

        def next_pixel() -> None:
            m.d.sync += self.pixel.eq(self.pixel + 1)
            with m.If(self.pixel == n_in - 1):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
            with m.Else():
                m.next = "SCATTER_READ"

        with m.State("PREFIX_READ"):  # the histogram reads `step`
            m.d.comb += [self.coding.eq(1), hist_read.addr.eq(self.step)]
            m.next = "PREFIX_ADD"
        with m.State("PREFIX_ADD"):
            m.d.comb += [self.coding.eq(1), hist_write.en.eq(1), hist_write.addr.eq(self.step)]
            m.d.comb += hist_write.data.eq(running)
            m.d.sync += [running.eq(running + hist_read.data), self.step.eq(self.step + 1)]
            with m.If(self.step == tmax - 1):
                m.next = "SCATTER_READ"
            with m.Else():
                m.next = "PREFIX_READ"
        with m.State("SCATTER_READ"):  # the time buffer reads `pixel`
            m.d.comb += self.coding.eq(1)
            m.next = "SCATTER_TIME"
        with m.State("SCATTER_TIME"):  # the histogram reads the next free slot of the pixel's step
            m.d.comb += [self.coding.eq(1), hist_read.addr.eq(times.data)]
            m.d.sync += scatter_time.eq(times.data)
            with m.If(times.data < tmax):
                m.next = "SCATTER_WRITE"
            with m.Else():  # a black pixel: no spike
                next_pixel()
        with m.State("SCATTER_WRITE"):
            slot = hist_read.data
            m.d.comb += [
                self.coding.eq(1),
                self.write_en.eq(1),
                self.write_addr.eq(slot),
                self.write_data.pixel.eq(self.pixel),
                self.write_data.time.eq(scatter_time),
                hist_write.en.eq(1),
                hist_write.addr.eq(scatter_time),
                hist_write.data.eq(slot + 1),
            ]
            next_pixel()

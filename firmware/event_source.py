"""The board's event buffer and the stream it feeds the core: an image's address events, written
by the pixel coder or the ``EVENTS`` decoder, then sent beat by beat with the end-of-image beat."""
# ruff: noqa: SIM117  # nested m.If / m.State blocks are the Amaranth idiom

from collections.abc import Sequence

from amaranth import Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from bs4nn.rtl.params import CoreParams


class EventSource(wiring.Component):
    """``write_*``: fill the buffer (one event a cycle, while idle).  ``start`` (one cycle) with
    ``count``: stream events ``0 .. count-1`` then the end beat (``time = tmax``) on ``events``
    (a core's input), one beat a cycle while ``events.ready`` holds; ``done`` is 1 in the cycle the
    end beat is accepted.  ``skip`` (the core's: it exited early and discards the rest of the image):
    the beat after the next accepted one is the end beat.

    Why one beat a cycle: the wide core takes an input event every cycle, so a source at one beat
    per two cycles (read, then send) would double the input phase.  The buffer is read one beat
    ahead: its address is the beat after the current one in the cycle the current one moves.

    ``block``: ``(pixel, time)`` events held after the ``n_in`` entries a frame writes, from the
    bitstream on (the on-chip benchmark's images, :mod:`bs4nn.firmware.onchip_bench`); ``start`` with
    ``base`` streams ``count`` events from entry ``base`` (0: the frame's image).  One buffer, one
    streaming engine for a frame's image and the baked ones."""

    def __init__(self, params: CoreParams, block: Sequence[tuple[int, int]] = ()):
        self.params = params
        self.block = [params.event_layout.const({"pixel": pixel, "time": time}) for pixel, time in block]
        self.depth = params.n_in + len(self.block)
        super().__init__(
            {
                "write_en": In(1),
                "write_addr": In(range(params.n_in)),
                "write_data": In(params.event_layout),
                "start": In(1),
                "base": In(range(self.depth)),
                "count": In(range(params.n_in + 1)),
                "skip": In(1),
                "events": Out(stream.Signature(params.event_layout)),
                "done": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        empty = params.event_layout.const({"pixel": 0, "time": 0})
        init = [empty] * params.n_in + self.block if self.block else []
        m.submodules.buffer = buffer = memory.Memory(shape=params.event_layout, depth=self.depth, init=init)
        write, read = buffer.write_port(), buffer.read_port()
        m.d.comb += [write.en.eq(self.write_en), write.addr.eq(self.write_addr), write.data.eq(self.write_data)]
        index = Signal(range(self.depth + 1))  # the beat on offer (``total``: the end beat)
        total = Signal(range(self.depth + 1))
        moved = self.events.valid & self.events.ready
        m.d.comb += read.addr.eq(index)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [index.eq(self.base), total.eq(self.base + self.count)]
                    m.next = "READ"
            with m.State("READ"):  # the buffer reads beat 0 (written up to the cycle before)
                m.next = "SEND"
            with m.State("SEND"):
                at_end = index == total
                m.d.comb += self.events.valid.eq(1)
                with m.If(at_end):
                    m.d.comb += self.events.payload.time.eq(params.tmax)
                with m.Else():
                    m.d.comb += self.events.payload.eq(read.data)
                with m.If(moved & at_end):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Elif(moved):
                    following = Mux(self.skip, total, index + 1)
                    m.d.comb += read.addr.eq(following)
                    m.d.sync += index.eq(following)
        return m


class StreamRegister(wiring.Component):
    """A stream cut by registers (a skid buffer): ``output``'s valid and payload and ``input``'s
    ready all come from flip-flops, one beat a cycle, one cycle later.  Why: the core's ``ready``
    depends on the beat it is offered (a later step closes the current one), so without the cut
    the event buffer's block-RAM read (5.8 ns on the ECP5), the core's step test and the source's
    control form one path, the longest of the 600-lane board top."""

    def __init__(self, layout):
        super().__init__({"input": In(stream.Signature(layout)), "output": Out(stream.Signature(layout))})

    def elaborate(self, platform) -> Module:
        m = Module()
        held = Signal()  # a beat taken while the output was stalled waits here
        held_payload = Signal.like(self.input.payload)
        m.d.comb += self.input.ready.eq(~held)
        with m.If(~self.output.valid | self.output.ready):
            with m.If(held):
                m.d.sync += [self.output.payload.eq(held_payload), held.eq(0)]
            with m.Else():
                m.d.sync += self.output.payload.eq(self.input.payload)
            m.d.sync += self.output.valid.eq(held | self.input.valid)
        with m.Elif(self.input.valid & ~held):
            m.d.sync += [held_payload.eq(self.input.payload), held.eq(1)]
        return m

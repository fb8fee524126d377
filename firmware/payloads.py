"""The board's payload engines: ``EVENTS`` and ``WEIGHT`` frame bytes in, core beats out; the
core's result out as ``RESULT`` frame bytes.  Every field size and order comes from
:mod:`bs4nn.firmware.protocol` (``EVENT_FIELDS``, ``weight_fields``, ``result_fields``) through
``data.Layout`` views, so the board and the host cannot drift apart.

Each decoder sees a frame's payload bytes as they arrive (``byte_valid``, ``byte_index``) and
acts only when the board's control decides so, once the whole frame's CRC checked out.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bs4nn.firmware.frames import LENGTH_BITS
from bs4nn.firmware.protocol import (
    BENCH_FIELDS,
    BYTE_BITS,
    EVENT_BYTES,
    EVENT_FIELDS,
    fields_layout,
    payload_bytes,
    result_fields,
    result_widths,
    weight_fields,
)
from bs4nn.rtl.params import CoreParams


class EventFrameDecoder(wiring.Component):
    """``EVENTS`` payload bytes -> event-buffer writes, one per ``EVENT_BYTES`` bytes.

    ``error`` is set by an event out of range (pixel ``>= n_in``, time ``>= tmax``) or out of time
    order; ``count`` is the number of whole events received, ``whole`` 0 while an event is
    incomplete.  ``clear`` (one cycle, after the frame) starts the next frame from scratch.
    """

    def __init__(self, params: CoreParams):
        self.params = params
        super().__init__(
            {
                "byte": In(BYTE_BITS),
                "byte_valid": In(1),
                "byte_index": In(LENGTH_BITS),
                "clear": In(1),
                "error": Out(1),
                "count": Out(range(params.n_in + 1)),
                "whole": Out(1, init=1),
                "write_en": Out(1),
                "write_addr": Out(range(params.n_in)),
                "write_data": Out(params.event_layout),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        shift = Signal(fields_layout(EVENT_FIELDS))  # the event being assembled, big-endian
        position = Signal(range(EVENT_BYTES))  # byte of the event the next payload byte is
        last_time = Signal(params.time_bits)  # time of the previous event of the frame (order check)
        first = self.byte_index == 0
        this_position = Mux(first, 0, position)
        this_count = Mux(first, 0, self.count)
        assembled = Signal.like(shift)
        m.d.comb += assembled.eq(Cat(self.byte, shift.as_value()[:-BYTE_BITS]))
        with m.If(self.byte_valid):
            m.d.sync += [shift.eq(assembled), position.eq(this_position + 1), self.whole.eq(0)]
            with m.If(first):
                m.d.sync += self.count.eq(0)
            with m.If(this_position == EVENT_BYTES - 1):
                m.d.comb += [
                    self.write_en.eq(1),
                    self.write_addr.eq(this_count),
                    self.write_data.pixel.eq(assembled.pixel),
                    self.write_data.time.eq(assembled.time),
                ]
                m.d.sync += [position.eq(0), self.whole.eq(1), self.count.eq(this_count + 1)]
                m.d.sync += last_time.eq(assembled.time)
                out_of_order = (assembled.time < last_time) & (this_count != 0)
                with m.If((assembled.pixel >= params.n_in) | (assembled.time >= params.tmax) | out_of_order):
                    m.d.sync += self.error.eq(1)
        with m.If(self.clear):
            m.d.sync += [self.error.eq(0), self.count.eq(0), self.whole.eq(1), position.eq(0), last_time.eq(0)]
        return m


class WeightFrameDecoder(wiring.Component):
    """``WEIGHT`` payload bytes -> one core weight write (``write``), with ``ok`` = 1 when the
    layer exists, the address is inside its weight memory and its weights are 1-bit (a frame's
    data is one word of ``weight_lanes`` sign bits; a b-bit B1 layer's weights are never written)."""

    def __init__(self, params: CoreParams):
        self.params = params
        super().__init__(
            {"byte": In(BYTE_BITS), "byte_valid": In(1), "write": Out(params.weight_write_layout), "ok": Out(1)}
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        fields = Signal(fields_layout(weight_fields(self.params.weight_lanes)))
        with m.If(self.byte_valid):
            m.d.sync += fields.eq(Cat(self.byte, fields.as_value()[:-BYTE_BITS]))
        ok = Const(0)
        for index, layer in enumerate(self.params.layers):
            if layer.weight_bits == 1:
                ok = ok | ((fields.layer == index) & (fields.address < layer.layout.depth))
        m.d.comb += [
            self.ok.eq(ok),
            self.write.layer.eq(fields.layer),
            self.write.address.eq(fields.address),
            self.write.data.eq(fields.data),
        ]
        return m


class BenchFrameDecoder(wiring.Component):
    """``BENCH`` payload bytes -> ``images``, with ``ok`` = 1 when ``1 <= images <= block_images``
    (the images baked into the bitstream, :mod:`bs4nn.firmware.onchip_bench`)."""

    def __init__(self, block_images: int):
        self.block_images = block_images
        super().__init__({"byte": In(BYTE_BITS), "byte_valid": In(1), "images": Out(16), "ok": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        fields = Signal(fields_layout(BENCH_FIELDS))
        with m.If(self.byte_valid):
            m.d.sync += fields.eq(Cat(self.byte, fields.as_value()[:-BYTE_BITS]))
        m.d.comb += [
            self.images.eq(fields.images),
            self.ok.eq((fields.images >= 1) & (fields.images <= self.block_images)),
        ]
        return m


class ResultSerialiser(wiring.Component):
    """The ``RESULT`` payload byte at ``index`` of ``result`` (the core's result layout): fields in
    :func:`~bs4nn.firmware.protocol.result_fields` order and widths (the core's), big-endian,
    counters sign-extended."""

    def __init__(self, params: CoreParams):
        self.params = params
        super().__init__({"result": In(params.result_layout), "index": In(LENGTH_BITS), "byte": Out(BYTE_BITS)})

    def elaborate(self, platform) -> Module:
        m = Module()
        result, n_out = self.result, self.params.n_out
        values = {"decision": result.decision.as_unsigned(), "decision_time": result.decision_time.as_unsigned()}
        values |= {f"spike_time{j}": result.spike_times[j].as_unsigned() for j in range(n_out)}
        values |= {f"count{j}": result.counts[j].as_signed() for j in range(n_out)}
        fields = result_fields(n_out, **result_widths(self.params))
        m.d.comb += self.byte.eq(payload_byte(m, fields, values, self.index))
        return m


def payload_byte(m: Module, fields, values, index) -> Value:
    """Byte ``index`` of the payload ``fields`` (:mod:`~bs4nn.firmware.protocol` field list) holding
    ``values`` (name -> Amaranth value, sign- or zero-extended to its field), big-endian, field after
    field: how the board serialises a reply for :class:`~bs4nn.firmware.frames.FrameSender`."""
    payload = []
    for name, size in fields:
        wide = Signal(size * BYTE_BITS, name=f"field_{name}")
        m.d.comb += wide.eq(values[name])
        payload += [wide[(size - 1 - k) * BYTE_BITS :][:BYTE_BITS] for k in range(size)]
    assert len(payload) == payload_bytes(fields)
    return Array(payload)[index[: max(1, (len(payload) - 1).bit_length())]]

"""The BS4NN inference core: time-multiplexed, event-driven, counters in block RAM.

Per time step ``t`` the core integrates every input event of step ``t`` into layer 0 (one
presynaptic row of sign bits per event, ``lanes`` counters per cycle), then scans each layer
that received events in this step for new threshold crossings, lowest neuron first.  A neuron
found firing is flagged (it fires once), reported on the debug spike port and integrated at
once into the next layer as an event of the same step, so the next layer's scan sees every
spike of step ``t``: exactly the golden model's rule (:mod:`bs4nn.sim.semantics`).  A layer that
received no event in a step keeps its counters, so its scan is skipped, and steps without
input events cost nothing.

Interface and cycle formula: ``rtl/README.md`` and :mod:`bs4nn.rtl.cycles`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Assert, Assume
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bs4nn.export.layout import DEFAULT_LANES, MemoryLayout, counter_bits, network_weight_words, time_bits
from bs4nn.sim.golden import IntegerNetwork


def _index_bits(count: int) -> int:
    """Unsigned width of an index ``0 .. count-1`` (at least 1 bit)."""
    return max(1, (count - 1).bit_length())


@dataclass(frozen=True)
class LayerParams:
    """Elaboration parameters of one layer of the core."""

    fan_in: int
    fan_out: int
    threshold_count: int
    lanes: int

    @property
    def layout(self) -> MemoryLayout:
        return MemoryLayout(self.fan_in, self.fan_out, self.lanes)

    @property
    def words(self) -> int:
        """Counter words of this layer (= weight words per presynaptic row)."""
        return self.layout.words_per_row

    @property
    def counter_bits(self) -> int:
        return counter_bits(self.fan_in, self.threshold_count)

    @property
    def state_layout(self) -> data.ArrayLayout:
        """One counter-memory word: ``lanes`` (signed counter, fired flag) pairs."""
        lane = data.StructLayout({"count": signed(self.counter_bits), "fired": unsigned(1)})
        return data.ArrayLayout(lane, self.lanes)


@dataclass(frozen=True)
class CoreParams:
    """Every width and layout of the core, derived from a network and a lane count.

    Testbenches use it to build input beats and decode output beats (``encode_event``,
    ``decode_result``...) instead of re-deriving bit positions.
    """

    layers: tuple[LayerParams, ...]
    tmax: int
    lanes: int

    @classmethod
    def from_network(cls, network: IntegerNetwork, lanes: int) -> CoreParams:
        layers = tuple(
            LayerParams(layer.fan_in, layer.fan_out, layer.threshold_count, lanes) for layer in network.layers
        )
        return cls(layers, network.tmax, lanes)

    @property
    def n_in(self) -> int:
        return self.layers[0].fan_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].fan_out

    @property
    def pixel_bits(self) -> int:
        return _index_bits(self.n_in)

    @property
    def time_bits(self) -> int:
        return time_bits(self.tmax)

    @property
    def class_bits(self) -> int:
        return _index_bits(self.n_out)

    @property
    def neuron_bits(self) -> int:
        return _index_bits(max(layer.fan_out for layer in self.layers))

    @property
    def layer_bits(self) -> int:
        return _index_bits(len(self.layers))

    @property
    def count_bits(self) -> int:
        """Width of the output counters reported in the result."""
        return self.layers[-1].counter_bits

    @property
    def address_bits(self) -> int:
        return max(layer.layout.address_bits for layer in self.layers)

    @property
    def event_layout(self) -> data.StructLayout:
        return data.StructLayout({"pixel": unsigned(self.pixel_bits), "time": unsigned(self.time_bits)})

    @property
    def result_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {
                "decision": unsigned(self.class_bits),
                "decision_time": unsigned(self.time_bits),
                "spike_times": data.ArrayLayout(unsigned(self.time_bits), self.n_out),
                "counts": data.ArrayLayout(signed(self.count_bits), self.n_out),
            }
        )

    @property
    def spike_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {"layer": unsigned(self.layer_bits), "neuron": unsigned(self.neuron_bits), "time": unsigned(self.time_bits)}
        )

    @property
    def weight_write_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {"layer": unsigned(self.layer_bits), "address": unsigned(self.address_bits), "data": unsigned(self.lanes)}
        )

    # --- payload integers for testbenches, through the layouts above (never hand-packed) ---

    def encode_event(self, pixel: int, time: int) -> int:
        """An ``events__payload`` beat; ``time >= tmax`` is the end-of-image beat."""
        return self.event_layout.const({"pixel": pixel, "time": min(time, self.tmax)}).as_bits()

    def encode_weight(self, layer: int, address: int, word: int) -> int:
        """A ``weights__payload`` beat writing one weight-memory word."""
        return self.weight_write_layout.const({"layer": layer, "address": address, "data": int(word)}).as_bits()

    def decode_spike(self, payload: int) -> tuple[int, int, int]:
        """``(layer, neuron, time)`` of a ``spikes__payload`` beat."""
        spike = self.spike_layout.from_bits(payload)
        return spike.layer, spike.neuron, spike.time

    def decode_result(self, payload: int) -> dict[str, object]:
        """``{decision, decision_time, spike_times (list), counts (list)}`` of a result beat."""
        result = self.result_layout.from_bits(payload)
        return {
            "decision": result.decision,
            "decision_time": result.decision_time,
            "spike_times": list(result.spike_times),
            "counts": list(result.counts),
        }


class LayerMemories(wiring.Component):
    """One layer's weight memory (sign rows, ``lanes`` bits a word) and counter memory.

    Weight memory: one read port (the integrating event's row) and one write port (run-time
    model loading, only between images) sharing one address, so it maps to single-port RAM.
    Counter memory: ``words`` words of ``lanes`` (counter, fired) pairs, one synchronous read
    port and one write port; the controller never reads a word in the cycle it writes it, so
    no transparency is needed.
    """

    def __init__(self, params: LayerParams, weight_words: Sequence[int]):
        self.params = params
        self._weight_words = [int(word) for word in weight_words]
        layout = params.layout
        state = params.state_layout
        address = unsigned(layout.address_bits)
        word_address = unsigned(_index_bits(params.words))
        super().__init__(
            {
                "weight_read_addr": In(address),
                "weight_read_data": Out(params.lanes),
                "weight_write_en": In(1),
                "weight_write_addr": In(address),
                "weight_write_data": In(params.lanes),
                "state_read_addr": In(word_address),
                "state_read_data": Out(state),
                "state_write_en": In(1),
                "state_write_addr": In(word_address),
                "state_write_data": In(state),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        m.submodules.weights = weights = Memory(
            shape=unsigned(params.lanes), depth=params.layout.depth, init=self._weight_words
        )
        weight_write = weights.write_port()
        weight_read = weights.read_port()
        # one shared address: a single-port RAM (iCE40 UltraPlus SPRAM) can hold the weights
        weight_addr = Signal.like(self.weight_read_addr)
        m.d.comb += [
            weight_addr.eq(Mux(self.weight_write_en, self.weight_write_addr, self.weight_read_addr)),
            weight_read.addr.eq(weight_addr),
            # a read port disabled while writing is what Yosys maps to single-port SPRAM
            weight_read.en.eq(~self.weight_write_en),
            self.weight_read_data.eq(weight_read.data),
            weight_write.en.eq(self.weight_write_en),
            weight_write.addr.eq(weight_addr),
            weight_write.data.eq(self.weight_write_data),
        ]
        m.submodules.state = state = Memory(shape=params.state_layout, depth=params.words, init=[])
        state_write = state.write_port()
        state_read = state.read_port()
        m.d.comb += [
            state_read.addr.eq(self.state_read_addr),
            self.state_read_data.eq(state_read.data),
            state_write.en.eq(self.state_write_en),
            state_write.addr.eq(self.state_write_addr),
            state_write.data.eq(self.state_write_data),
        ]
        return m


def _strobe(layout: data.Layout) -> wiring.Signature:
    """A valid-only stream (no backpressure): ``valid`` plus ``payload``, ports ``NAME__valid/payload``."""
    return wiring.Signature({"valid": Out(1), "payload": Out(layout)})


class Bs4nnCore(wiring.Component):
    """The inference core; ports as documented in ``rtl/README.md``."""

    def __init__(
        self,
        network: IntegerNetwork,
        lanes: int = DEFAULT_LANES,
        *,
        weight_init: bool = True,
        formal: bool = False,
        assume_valid_input: bool = True,
    ):
        """``weight_init=False``: empty weight memories, to be loaded through ``weights`` before
        the first image.  ``formal=True`` adds the assertions of :mod:`bs4nn.rtl.formal` (a
        neuron fires at most once per image, no counter wraps) and the input assumptions they
        need (each pixel at most once per image, pixel indices in range; ``assume_valid_input=False``
        drops them, to show the proof fails without them)."""
        self.network = network
        self.weight_init = weight_init
        self.formal = formal
        self.assume_valid_input = assume_valid_input
        self.params = params = CoreParams.from_network(network, lanes)
        super().__init__(
            {
                "events": In(stream.Signature(params.event_layout)),
                "result": Out(stream.Signature(params.result_layout)),
                "spikes": Out(_strobe(params.spike_layout)),
                "weights": In(_strobe(params.weight_write_layout)),
                "early_exit": In(1),
                "idle": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        layers = params.layers
        n_layers = len(layers)
        last = n_layers - 1
        tmax = params.tmax
        max_words = max(layer.words for layer in layers)
        mems = []
        images = network_weight_words(self.network, params.lanes) if self.weight_init else [[] for _ in layers]
        for index, (layer, words) in enumerate(zip(layers, images, strict=True)):
            mem = LayerMemories(layer, words)
            m.submodules[f"layer{index}"] = mem
            mems.append(mem)
            # run-time weight loading
            m.d.comb += [
                mem.weight_write_en.eq(self.weights.valid & (self.weights.payload.layer == index)),
                mem.weight_write_addr.eq(self.weights.payload.address),
                mem.weight_write_data.eq(self.weights.payload.data),
            ]

        step = Signal(params.time_bits)  # current time step t
        touched = Signal(n_layers)  # layer l received at least one event in step t
        started = Signal()  # the current image's first beat has been accepted
        decided = Signal()  # an output neuron has fired
        exited = Signal()  # stopped early: the rest of the image is still to be drained
        decision = Signal(params.class_bits)
        decision_time = Signal(params.time_bits, init=tmax)
        out_times = [Signal(params.time_bits, init=tmax, name=f"out_time{j}") for j in range(params.n_out)]
        out_counts = [Signal(signed(params.count_bits), name=f"out_count{j}") for j in range(params.n_out)]

        # integration of one presynaptic event into a layer: a pipelined read-modify-write sweep
        int_word = Signal(range(max_words + 1))
        int_row_base = Signal(params.address_bits)  # presynaptic index * words of the target layer
        writeback = Signal(n_layers)  # per layer: the word read last cycle is written back now
        writeback_word = Signal(range(max_words + 1))
        # threshold scan of a layer
        scan_word = Signal(range(max_words + 1))
        scan_neuron_base = Signal(params.neuron_bits + 1)  # scan_word * lanes
        pending = Signal(params.lanes)  # lanes of the scanned word that fired, not yet emitted
        lowest = Signal(range(params.lanes))
        for lane in reversed(range(params.lanes)):
            with m.If(pending[lane]):
                m.d.comb += lowest.eq(lane)
        emitted_neuron = Signal(params.neuron_bits + 1)
        m.d.comb += emitted_neuron.eq(scan_neuron_base + lowest)
        clear_word = Signal(range(max_words + 1))
        argmax_index = Signal(range(params.n_out + 1))
        argmax_best = Signal(signed(params.count_bits))
        argmax_class = Signal(params.class_bits)
        finish_word = Signal(range(max_words + 1))

        event = self.events.payload
        end_of_image = event.time >= tmax
        # formal: which neurons fired / pixels arrived in this image (cleared with the counters)
        fired_seen = [Signal(layer.fan_out, name=f"formal_fired{index}") for index, layer in enumerate(layers)]
        pixel_seen = Signal(params.n_in, name="formal_pixels")

        # integration writeback (outside the FSM: it follows the read by one cycle)
        for index, (layer, mem) in enumerate(zip(layers, mems, strict=True)):
            with m.If(writeback[index]):
                m.d.comb += [mem.state_write_en.eq(1), mem.state_write_addr.eq(writeback_word)]
                for lane in range(layer.lanes):
                    old = mem.state_read_data[lane]
                    sign = mem.weight_read_data[lane]
                    m.d.comb += [
                        mem.state_write_data[lane].count.eq(Mux(sign, old.count + 1, old.count - 1)),
                        mem.state_write_data[lane].fired.eq(old.fired),
                    ]
                    if self.formal:  # no counter wraps
                        largest, smallest = (1 << (layer.counter_bits - 1)) - 1, -(1 << (layer.counter_bits - 1))
                        m.d.comb += Assert(~(sign & (old.count == largest)) & ~(~sign & (old.count == smallest)))

        def start_integration(index: int, presynaptic) -> list:
            """Statements that launch the sweep of ``presynaptic``'s row into layer ``index``."""
            return [
                int_word.eq(0),
                int_row_base.eq(presynaptic * layers[index].words),
                touched[index].eq(1),
            ]

        def goto_scan(index: int) -> None:
            """Next state: scan layer ``index`` if it received events this step, else the next one."""
            if index == n_layers:
                m.d.sync += touched.eq(0)
                m.next = "WAIT"
                return
            with m.If(touched[index]):
                m.d.sync += [scan_word.eq(0), scan_neuron_base.eq(0)]
                m.next = f"SCAN_READ_{index}"
            with m.Else():
                goto_scan(index + 1)

        def next_scan_word(index: int) -> None:
            """After a scanned word is fully handled: the next word, or the next layer."""
            with m.If(scan_word == layers[index].words - 1):
                goto_scan(index + 1)
            with m.Else():
                m.d.sync += [scan_word.eq(scan_word + 1), scan_neuron_base.eq(scan_neuron_base + params.lanes)]
                m.next = f"SCAN_READ_{index}"

        m.d.comb += [
            self.spikes.payload.time.eq(step),
            self.spikes.payload.neuron.eq(emitted_neuron),
        ]

        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):
                # zero every counter and fired flag; reset the per-image registers
                for layer, mem in zip(layers, mems, strict=True):
                    with m.If(clear_word < layer.words):
                        m.d.comb += [mem.state_write_en.eq(1), mem.state_write_addr.eq(clear_word)]
                if self.formal:
                    m.d.sync += [pixel_seen.eq(0), *[seen.eq(0) for seen in fired_seen]]
                m.d.sync += [
                    step.eq(0),
                    touched.eq(0),
                    started.eq(0),
                    decided.eq(0),
                    exited.eq(0),
                    decision.eq(0),
                    decision_time.eq(tmax),
                    *[out_time.eq(tmax) for out_time in out_times],
                    clear_word.eq(clear_word + 1),
                ]
                with m.If(clear_word == max_words - 1):
                    m.d.sync += clear_word.eq(0)
                    m.next = "WAIT"

            with m.State("WAIT"):
                # accept the input events of step t; a later time (or the end beat) closes the step
                m.d.comb += self.idle.eq(~started)
                with m.If(self.events.valid):
                    with m.If(touched[0] & (end_of_image | (event.time != step))):
                        goto_scan(0)
                    with m.Elif(end_of_image):
                        m.d.comb += self.events.ready.eq(1)
                        m.d.sync += [finish_word.eq(0), started.eq(1)]
                        m.next = "FINISH_READ"
                    with m.Else():
                        m.d.comb += self.events.ready.eq(1)
                        m.d.sync += [step.eq(event.time), started.eq(1), *start_integration(0, event.pixel)]
                        if self.formal and self.assume_valid_input:  # a valid image: pixels in range, once
                            m.d.comb += Assume((event.pixel < params.n_in) & ~pixel_seen.bit_select(event.pixel, 1))
                            m.d.sync += pixel_seen.bit_select(event.pixel, 1).eq(1)
                        m.next = "INTEGRATE_0"

            for index, (layer, mem) in enumerate(zip(layers, mems, strict=True)):
                with m.State(f"INTEGRATE_{index}"):
                    m.d.comb += [
                        mem.weight_read_addr.eq(int_row_base + int_word),
                        mem.state_read_addr.eq(int_word),
                    ]
                    m.d.sync += [writeback[index].eq(1), writeback_word.eq(int_word), int_word.eq(int_word + 1)]
                    with m.If(int_word == layer.words - 1):
                        m.next = f"INTEGRATE_DRAIN_{index}"

                with m.State(f"INTEGRATE_DRAIN_{index}"):
                    m.d.sync += writeback[index].eq(0)
                    m.next = "WAIT" if index == 0 else f"SCAN_NEXT_{index - 1}"

                with m.State(f"SCAN_READ_{index}"):
                    m.d.comb += mem.state_read_addr.eq(scan_word)
                    m.next = f"SCAN_TEST_{index}"

                with m.State(f"SCAN_TEST_{index}"):
                    # threshold test of the word read last cycle; flag the new spikes
                    fires = Signal(layer.lanes, name=f"fires{index}")
                    last_word_lanes = layer.fan_out - (layer.words - 1) * layer.lanes
                    lane_mask = Mux(
                        scan_word == layer.words - 1,
                        Const((1 << last_word_lanes) - 1, layer.lanes),
                        Const((1 << layer.lanes) - 1, layer.lanes),
                    )
                    word = mem.state_read_data
                    crossed = Cat(
                        ~word[lane].fired & (word[lane].count >= layer.threshold_count) for lane in range(layer.lanes)
                    )
                    m.d.comb += fires.eq(crossed & lane_mask)
                    m.d.comb += [mem.state_write_en.eq(1), mem.state_write_addr.eq(scan_word)]
                    for lane in range(layer.lanes):
                        m.d.comb += [
                            mem.state_write_data[lane].count.eq(word[lane].count),
                            mem.state_write_data[lane].fired.eq(word[lane].fired | fires[lane]),
                        ]
                    m.d.sync += pending.eq(fires)
                    with m.If(fires.any()):
                        m.next = f"SCAN_EMIT_{index}"
                    with m.Else():
                        next_scan_word(index)

                with m.State(f"SCAN_EMIT_{index}"):
                    # one spike per cycle, lowest neuron first
                    m.d.comb += [self.spikes.valid.eq(1), self.spikes.payload.layer.eq(index)]
                    if self.formal:  # a neuron fires at most once per image
                        seen = fired_seen[index]
                        m.d.comb += Assert((emitted_neuron < layer.fan_out) & ~seen.bit_select(emitted_neuron, 1))
                        m.d.sync += seen.bit_select(emitted_neuron, 1).eq(1)
                    m.d.sync += pending.eq(pending & (pending - 1))
                    if index < last:
                        m.d.sync += start_integration(index + 1, emitted_neuron)
                        m.next = f"INTEGRATE_{index + 1}"
                    else:
                        for neuron, out_time in enumerate(out_times):
                            with m.If(emitted_neuron == neuron):
                                m.d.sync += out_time.eq(step)
                        with m.If(~decided):
                            m.d.sync += [decided.eq(1), decision.eq(emitted_neuron), decision_time.eq(step)]
                        with m.If(~decided & self.early_exit):
                            m.d.sync += [exited.eq(1), finish_word.eq(0)]
                            m.next = "FINISH_READ"
                        with m.Else():
                            m.next = f"SCAN_NEXT_{index}"

                with m.State(f"SCAN_NEXT_{index}"):
                    with m.If(pending.any()):
                        m.next = f"SCAN_EMIT_{index}"
                    with m.Else():
                        next_scan_word(index)

            out_layer, out_mem = layers[-1], mems[-1]
            with m.State("FINISH_READ"):
                m.d.comb += out_mem.state_read_addr.eq(finish_word)
                m.next = "FINISH_LATCH"

            with m.State("FINISH_LATCH"):
                # copy the output counters of the word read last cycle into the result registers
                for neuron, out_count in enumerate(out_counts):
                    with m.If(finish_word == neuron // out_layer.lanes):
                        m.d.sync += out_count.eq(out_mem.state_read_data[neuron % out_layer.lanes].count)
                m.d.sync += finish_word.eq(finish_word + 1)
                with m.If(finish_word == out_layer.words - 1):
                    lowest_count = -(1 << (params.count_bits - 1))
                    m.d.sync += [argmax_index.eq(0), argmax_class.eq(0), argmax_best.eq(lowest_count)]
                    m.next = "ARGMAX"
                with m.Else():
                    m.next = "FINISH_READ"

            with m.State("ARGMAX"):
                # no output fired: largest final counter, ties to the lowest index (strict >)
                candidate = Signal(signed(params.count_bits))
                for neuron, out_count in enumerate(out_counts):
                    with m.If(argmax_index == neuron):
                        m.d.comb += candidate.eq(out_count)
                with m.If(candidate > argmax_best):
                    m.d.sync += [argmax_best.eq(candidate), argmax_class.eq(argmax_index)]
                m.d.sync += argmax_index.eq(argmax_index + 1)
                with m.If(argmax_index == params.n_out - 1):
                    m.next = "DONE"

            with m.State("DONE"):
                m.d.comb += self.result.valid.eq(1)
                with m.If(self.result.ready):
                    with m.If(exited):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "CLEAR"

            with m.State("DRAIN"):
                # early exit: discard the rest of the image up to its end beat
                m.d.comb += self.events.ready.eq(1)
                with m.If(self.events.valid & end_of_image):
                    m.next = "CLEAR"

        m.d.comb += [
            self.result.payload.decision.eq(Mux(decided, decision, argmax_class)),
            self.result.payload.decision_time.eq(decision_time),
            *[self.result.payload.spike_times[j].eq(out_time) for j, out_time in enumerate(out_times)],
            *[self.result.payload.counts[j].eq(out_count) for j, out_count in enumerate(out_counts)],
        ]
        return m

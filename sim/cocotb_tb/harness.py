"""The Verilog top the cocotb testbench runs: the core, its clock, and a stream driver in Verilog.

Why: a 10,000-image regression is ~63 M clock cycles.  Clocked from cocotb (``Clock(impl="gpi")``)
every cycle costs a round trip through the simulator's callback interface, ~12 us on this machine
whatever the core does (500,000 idle cycles of the shipped core: 6.2 s), and the Python driver
wakes several times per input beat on top.  Here the clock is an ``always`` block, and the
driver that streams a job's images is Verilog too: it reads the beats from a text file
(``+bs4nn_beats=``), presents them back to back as the Python driver does, takes each result, and
writes every spike, result and cycle count to a file (``+bs4nn_observed=``), so Python sleeps
until the run is over.

Its ports are the only signals cocotb sees (``/*verilator public_flat_rw*/``; the build drops
Verilator's ``--public-flat-rw``, which made every signal of the core public and kept Verilator
from optimising them: :func:`bs4nn.sim.regress.build_core`).

The harness clocks the core itself only when it streams (its beats file exists); otherwise the
core's clock is the ``clk`` input, which cocotb drives: at a ``RisingEdge`` of a clock cocotb
writes, the Python driver reads the values the edge samples, which it relies on (at an edge
of a clock made in Verilog it would read the values after it).

Cycle for cycle it does what :class:`~bs4nn.sim.cocotb_tb.tb_core.Bench` does without gaps: an
image's first beat is offered in the cycle after the previous image ended (its end beat taken and
its result taken), a beat the core took is followed by the next one at once (after the core's
``skip``: the image's end beat), ``result.ready`` rises the cycle after ``result.valid`` did, and an
image's cycles run from the previous image's end to its own.  Jobs with gaps, delays or resets
keep the Python driver: ``stream_go`` low hands every core input to the top's ports.

Beats file: one line per beat, ``<last> <payload>`` in hex (``last`` = 1 on an image's end beat).
Observed file: ``S <spike payload>`` per spike, ``R <result payload>`` per result, ``C <cycles>``
when an image ends (its spikes and result come before).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bs4nn.rtl.params import CoreParams
from bs4nn.sim.cocotb_tb.job import CLOCK_PERIOD_NS, NO_RESET

HARNESS_TOP = "bs4nn_stream"
HARNESS_FILE = "stream.v"
BEATS_PLUSARG = "bs4nn_beats"
OBSERVED_PLUSARG = "bs4nn_observed"
BEATS_FILE = "stream_beats.txt"  # beside the job file
OBSERVED_FILE = "stream_observed.txt"
PATH_CHARS = 1024  # longest file path the plusargs carry


def harness_verilog(params: CoreParams, core: str) -> str:
    """Verilog of :data:`HARNESS_TOP` around the core module ``core`` (the generator's Verilog),
    its port widths from the core's ``params``."""
    widths = {
        "EB": params.event_layout.size,
        "RB": params.result_layout.size,
        "SB": params.spike_layout.size,
        "WB": params.weight_write_layout.size,
    }
    text = HARNESS_TEMPLATE
    for name, value in widths.items():
        text = text.replace(f"@{name}@", str(value))
    return text.replace("@CORE@", core).replace("@TOP@", HARNESS_TOP).replace("@HALF@", str(CLOCK_PERIOD_NS // 2))


def beats_lines(params: CoreParams, events: np.ndarray, offsets: np.ndarray) -> str:
    """The beats file of a job: every image's events (``(pixel, time)`` rows, image ``k`` at
    ``offsets[k]:offsets[k+1]``) then its end beat, one ``last payload`` line each, payloads packed
    by the event layout's own field offsets (what ``CoreParams.encode_event`` does, for all at once)."""
    layout = params.event_layout
    events = np.asarray(events, np.int64).reshape(-1, 2)
    payload = (events[:, 0] << layout["pixel"].offset) | (events[:, 1] << layout["time"].offset)
    end_beat = params.tmax << layout["time"].offset
    counts = np.diff(offsets)
    image = np.repeat(np.arange(len(counts)), counts)
    where = np.arange(len(events)) + image  # each image's beats shift by the end beats before it
    beats = np.full(len(events) + len(counts), end_beat, np.int64)
    beats[where] = payload
    last = np.zeros(len(beats), np.int64)
    last[np.asarray(offsets[1:]) + np.arange(len(counts))] = 1
    return "".join(f"{flag} {beat:x}\n" for flag, beat in zip(last.tolist(), beats.tolist(), strict=True))


def streams_in_verilog(job: dict) -> bool:
    """Whether the harness streams a job (no gaps, delays or resets: the Python driver does those)."""
    plain = not float(job["input_gap_probability"]) and not float(job["result_delay_probability"])
    return plain and bool((np.asarray(job["reset_after_events"]) == NO_RESET).all())


def read_observed(path: Path) -> tuple[list[int], list[int], list[int], list[tuple[int, int]]]:
    """``(results, cycles, spikes, slices)`` of the images the harness finished: result payloads,
    cycles per image, every spike payload, and each image's ``(first, end)`` spike indices."""
    results, cycles, spikes, slices = [], [], [], []
    first = 0
    pending: int | None = None
    for line in path.read_text().splitlines():
        kind, _, value = line.partition(" ")
        if kind == "S":
            spikes.append(int(value, 16))
        elif kind == "R":
            pending = int(value, 16)
        elif kind == "C" and pending is not None:
            results.append(pending)
            cycles.append(int(value))
            slices.append((first, len(spikes)))
            first, pending = len(spikes), None
    return results, cycles, spikes, slices


HARNESS_TEMPLATE = (
    """\
module @TOP@ (
  input clk /*verilator public_flat_rw*/,
  output clock /*verilator public_flat_rw*/,
  input rst /*verilator public_flat_rw*/,
  input early_exit /*verilator public_flat_rw*/,
  input events__valid /*verilator public_flat_rw*/,
  input [@EB@-1:0] events__payload /*verilator public_flat_rw*/,
  output events__ready /*verilator public_flat_rw*/,
  input result__ready /*verilator public_flat_rw*/,
  output result__valid /*verilator public_flat_rw*/,
  output [@RB@-1:0] result__payload /*verilator public_flat_rw*/,
  input weights__valid /*verilator public_flat_rw*/,
  input [@WB@-1:0] weights__payload /*verilator public_flat_rw*/,
  output spikes__valid /*verilator public_flat_rw*/,
  output [@SB@-1:0] spikes__payload /*verilator public_flat_rw*/,
  output idle /*verilator public_flat_rw*/,
  output skip /*verilator public_flat_rw*/,
  input stream_go /*verilator public_flat_rw*/,
  output reg stream_done /*verilator public_flat_rw*/,
  output reg [31:0] stream_images /*verilator public_flat_rw*/
);
  reg own_clock, own;  // own: the harness streams (a beats file), on its own clock
  assign clock = own ? own_clock : clk;

  reg [@EB@-1:0] beat;
  reg beat_last, have_beat, sending, ended, got_result, result_take;
  reg [31:0] cycles;
  wire core_events_valid = stream_go ? (sending & have_beat) : events__valid;
  wire [@EB@-1:0] core_events_payload = stream_go ? beat : events__payload;
  wire core_result_ready = stream_go ? result_take : result__ready;

  @CORE@ core (
    .clk(clock), .rst(rst), .early_exit(early_exit),
    .events__valid(core_events_valid), .events__payload(core_events_payload), .events__ready(events__ready),
    .result__valid(result__valid), .result__ready(core_result_ready), .result__payload(result__payload),
    .weights__valid(weights__valid), .weights__payload(weights__payload),
    .spikes__valid(spikes__valid), .spikes__payload(spikes__payload), .idle(idle), .skip(skip)
  );

  reg [8*@PATH@-1:0] beats_path, observed_path;
  integer beats_fd, observed_fd, scanned;
  reg [@EB@-1:0] next_beat;
  reg next_last;

  task read_beat;  // the next line of the beats file into next_beat / next_last; have_beat: one was there
    begin
      next_last = 1'b0;
      next_beat = 0;
      scanned = beats_fd ? $fscanf(beats_fd, "%h %h\\n", next_last, next_beat) : 0;
    end
  endtask

  initial begin
    beats_fd = 0;
    observed_fd = 0;
    stream_done = 1'b0;
    stream_images = 0;
    sending = 1'b1;
    ended = 1'b0;
    got_result = 1'b0;
    result_take = 1'b0;
    cycles = 0;
    if ($value$plusargs("@BEATS@=%s", beats_path)) beats_fd = $fopen(beats_path, "r");
    own = beats_fd != 0;
    if (own && $value$plusargs("@OBSERVED@=%s", observed_path)) observed_fd = $fopen(observed_path, "w");
    read_beat;
    beat = next_beat;
    beat_last = next_last;
    have_beat = scanned == 2;
    own_clock = 1'b0;
    if (own) forever #@HALF@ own_clock = ~own_clock;
  end

  reg end_now, image_over;
  always @(posedge clock) begin
    if (stream_go && !stream_done) begin
      end_now = sending & have_beat & events__ready & beat_last;
      image_over = (ended | end_now) & (got_result | (result_take & result__valid));
      if (spikes__valid) $fwrite(observed_fd, "S %h\\n", spikes__payload);
      if (result_take & result__valid) $fwrite(observed_fd, "R %h\\n", result__payload);
      result_take <= (result_take & result__valid) ? 1'b0 : (result__valid ? 1'b1 : result_take);
      if (image_over) begin
        $fwrite(observed_fd, "C %0d\\n", cycles + 1);
        $fflush(observed_fd);
        cycles <= 0;
        ended <= 1'b0;
        got_result <= 1'b0;
        stream_images <= stream_images + 1;
        read_beat;
        beat <= next_beat;
        beat_last <= next_last;
        have_beat <= scanned == 2;
        sending <= 1'b1;
        if (scanned != 2) stream_done <= 1'b1;
      end else begin
        cycles <= cycles + 1;
        if (result_take & result__valid) got_result <= 1'b1;
        if (end_now) begin
          ended <= 1'b1;
          sending <= 1'b0;
        end else if (sending & have_beat & events__ready) begin
          read_beat;
          while (skip && !next_last && scanned == 2) read_beat;  // after an early exit: the end beat next
          beat <= next_beat;
          beat_last <= next_last;
          have_beat <= scanned == 2;
        end
      end
    end
  end
endmodule
""".replace("@PATH@", str(PATH_CHARS))
    .replace("@BEATS@", BEATS_PLUSARG)
    .replace("@OBSERVED@", OBSERVED_PLUSARG)
)

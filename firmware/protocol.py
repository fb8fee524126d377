"""The framed UART protocol between a host and a bs4nn board (host side, and the reference).

Every frame, both directions::

    0xA5 | type (1 byte) | length (2 bytes, big-endian) | payload (length bytes) | CRC (2 bytes, big-endian)

The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, no reflection, no final xor)
over ``type``, ``length`` and ``payload``; appended big-endian, so the CRC of the whole
``type .. crc`` codeword is 0 (what the board's checker tests).  All multi-byte fields are
big-endian.  The board answers every frame with exactly one frame: a result or an error.

Frame types (host -> board):

* ``IMAGE`` (0x01): ``n_in`` pixel bytes in ``0..imax``; the board codes them with the
  ``encode_images`` rule and runs the network.
* ``EVENTS`` (0x02): the image's input spikes, already coded, as 2-byte-pixel + 2-byte-time
  pairs in non-decreasing time order (times ``< tmax``).
* ``WEIGHT`` (0x03): ``layer`` (1 byte), ``address`` (2 bytes), ``data`` (``ceil(lanes/8)``
  bytes, big-endian): one weight-memory word, applied only once the whole frame checked out.
* ``BENCH`` (0x04): ``images`` (2 bytes): run the first ``images`` images of the block of address
  events baked into the bitstream (``bs4nn build --bench-images``) back to back through the core
  (:data:`BENCH_FIELDS`); only a board built with such a block knows the type.

Frame types (board -> host):

* ``RESULT`` (0x81): ``decision`` (1 byte), ``decision_time``, ``n_out`` output spike times
  (``tmax`` = never), ``n_out`` final output counters (two's complement).  Each time and counter
  field is 2 bytes, or as many more as the core's width needs (:func:`result_fields`, sized from
  the core's params: a B1 core's scores are its signed output potentials, its times the decision
  latency), so the board and the host read the widths from the same network.
* ``ACK`` (0x83): empty: a ``WEIGHT`` frame was applied.
* ``BENCH_RESULT`` (0x84): the on-chip benchmark's counts (:data:`BENCH_RESULT_FIELDS`): images
  run, clock cycles from the start to the last result taken, the cycles a result waited on the
  checksum, the CRC-16 of every image's ``RESULT`` payload in order, the block's size, and the
  fingerprint of the images run (:func:`bench_events_crc`, from a table fixed at build time).
* ``ERROR`` (0xEE): one byte, an :class:`ErrorCode`.  The rejected frame had no effect at all.
"""

from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass

import numpy as np
from amaranth import unsigned
from amaranth.lib import data
from amaranth.lib.crc import catalog

from bs4nn.errors import Bs4nnError
from bs4nn.sim.semantics import address_events

START = 0xA5
LENGTH_BYTES = 2
CRC_BYTES = 2
HEADER_BYTES = 1 + 1 + LENGTH_BYTES  # start, type, length
CRC_ALGORITHM = catalog.CRC16_CCITT_FALSE
BYTE_BITS = 8
BYTE_VALUES = 1 << BYTE_BITS
FIELD_BYTES = 2  # every multi-byte number in a payload (result fields: at least this)
FIELD_BITS = FIELD_BYTES * BYTE_BITS
DEFAULT_BAUD = 115_200
"""UART baud rate of the link: what a board is built for and what the host opens, unless told."""

Fields = tuple[tuple[str, int], ...]
"""A payload's fields in wire order: ``(name, bytes)``, each big-endian."""
EVENT_FIELDS: Fields = (("pixel", FIELD_BYTES), ("time", FIELD_BYTES))
EVENT_BYTES = sum(size for _, size in EVENT_FIELDS)
MAX_INPUTS = ((1 << (BYTE_BITS * FIELD_BYTES)) - 1) // EVENT_BYTES
"""Most inputs a network may have: a whole ``EVENTS`` frame's length must fit a field."""
MAX_CLASSES = BYTE_VALUES
"""Most outputs: the decision is one byte."""


BENCH_FIELDS: Fields = (("images", FIELD_BYTES),)
"""The ``BENCH`` frame's payload: how many images of the baked block to run (1 .. the block's)."""
CYCLE_BYTES = 4  # 2**32 cycles: 358 s at the iCEBreaker's 12 MHz
BENCH_RESULT_FIELDS: Fields = (
    ("images", FIELD_BYTES),
    ("cycles", CYCLE_BYTES),
    ("stall_cycles", CYCLE_BYTES),
    ("results_crc", FIELD_BYTES),
    ("checked_bytes", FIELD_BYTES),
    ("block_images", FIELD_BYTES),
    ("events_crc", FIELD_BYTES),
)
"""The ``BENCH_RESULT`` payload: ``images`` run; ``cycles`` from the run's start to the last
result taken; ``stall_cycles`` of them in which a result waited for the previous one's checksum;
``results_crc``: CRC-16 of the concatenated ``RESULT`` payloads of the images, in order, each cut
to its first ``checked_bytes`` (what :func:`bench_results_crc` computes from the golden model):
the whole payload, or on an early-exit board the decision and decision time (the other fields are
not the golden model's after an early exit); ``block_images``: how many images the
bitstream holds; ``events_crc``: :func:`bench_events_crc` of the ``images`` run (the build computed
it for every prefix of the block), so the host knows the board ran the images it checks against."""


def weight_fields(lanes: int) -> Fields:
    """The ``WEIGHT`` frame's payload: layer, word address, the word (``ceil(lanes / 8)`` bytes)."""
    return (("layer", 1), ("address", FIELD_BYTES), ("data", -(-lanes // BYTE_BITS)))


def payload_bytes(fields: Fields) -> int:
    return sum(size for _, size in fields)


def pack_fields(fields: Fields, values: dict[str, int]) -> bytes:
    """``values`` as the payload ``fields`` describe (big-endian, wire order; negative values in
    two's complement)."""
    return b"".join((int(values[name]) % (1 << (size * BYTE_BITS))).to_bytes(size, "big") for name, size in fields)


def unpack_fields(fields: Fields, payload: bytes) -> dict[str, int]:
    """Inverse of :func:`pack_fields` (unsigned values)."""
    values, offset = {}, 0
    for name, size in fields:
        values[name] = int.from_bytes(payload[offset : offset + size], "big")
        offset += size
    return values


def fields_layout(fields: Fields) -> data.StructLayout:
    """The payload as one big-endian number (first byte in the most significant bits), field by
    field: how a board's byte shift register sees it, so the board never slices bits by hand."""
    return data.StructLayout({name: unsigned(size * BYTE_BITS) for name, size in reversed(fields)})


class FrameType(enum.IntEnum):
    IMAGE = 0x01
    EVENTS = 0x02
    WEIGHT = 0x03
    BENCH = 0x04
    RESULT = 0x81
    ACK = 0x83
    BENCH_RESULT = 0x84
    ERROR = 0xEE


class ErrorCode(enum.IntEnum):
    BAD_CRC = 1  # checksum mismatch
    BAD_TYPE = 2  # unknown frame type
    BAD_LENGTH = 3  # length wrong for the type
    BAD_VALUE = 4  # a pixel above imax, an event out of order or out of range, a bad weight address
    TIMEOUT = 5  # the frame stopped arriving mid-way


CRC_INIT = 0xFFFF


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data``; ``crc``: the CRC of what came before, to go on from it.
    ``binascii.crc_hqx`` is this CRC (poly 0x1021, MSB first, no final xor) started at ``crc``, in C:
    the bench fingerprints run over megabytes (the board's is ``CRC_ALGORITHM``, tested equal)."""
    return binascii.crc_hqx(data, crc)


def encode_frame(frame_type: int, payload: bytes) -> bytes:
    """One complete frame, start byte to CRC."""
    if not 0 <= len(payload) < 1 << (BYTE_BITS * LENGTH_BYTES):
        raise ValueError(f"payload of {len(payload)} bytes does not fit the length field")
    body = bytes([frame_type]) + len(payload).to_bytes(LENGTH_BYTES, "big") + payload
    return bytes([START]) + body + crc16(body).to_bytes(CRC_BYTES, "big")


@dataclass(frozen=True)
class Frame:
    frame_type: int
    payload: bytes


class FrameDecoder:
    """Incremental frame reader: feed bytes as they come, collect whole, checked frames.

    Bytes before a start byte are skipped; a frame whose CRC fails raises :class:`Bs4nnError`
    (after which the decoder resynchronises on the next start byte).
    """

    def __init__(self, max_payload: int = 1 << 16) -> None:
        self.buffer = bytearray()
        self.max_payload = max_payload

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames = []
        while True:
            start = self.buffer.find(bytes([START]))
            if start < 0:
                self.buffer.clear()
                return frames
            del self.buffer[:start]
            if len(self.buffer) < HEADER_BYTES:
                return frames
            length = int.from_bytes(self.buffer[2:HEADER_BYTES], "big")
            if length > self.max_payload:
                del self.buffer[:1]
                raise Bs4nnError(f"received a frame header announcing {length} bytes: link out of sync")
            end = HEADER_BYTES + length + CRC_BYTES
            if len(self.buffer) < end:
                return frames
            body = bytes(self.buffer[1 : end - CRC_BYTES])
            received_crc = int.from_bytes(self.buffer[end - CRC_BYTES : end], "big")
            del self.buffer[:end]
            if crc16(body) != received_crc:
                raise Bs4nnError("received a frame with a bad CRC (noisy link or wrong baud rate)")
            frames.append(Frame(body[0], body[HEADER_BYTES - 1 :]))


def image_frame(pixels: np.ndarray, imax: int) -> bytes:
    """An ``IMAGE`` frame of one image's pixels (any shape, flattened row-major)."""
    pixels = np.asarray(pixels).reshape(-1)
    if pixels.dtype.kind not in "iu" or (pixels.size and (pixels.min() < 0 or pixels.max() > imax)):
        raise Bs4nnError(f"pixels must be integers in 0..{imax}")
    return encode_frame(FrameType.IMAGE, pixels.astype(np.uint8).tobytes())


def events_frame(input_times: np.ndarray, tmax: int) -> bytes:
    """An ``EVENTS`` frame: one image's :func:`~bs4nn.sim.semantics.address_events`."""
    return encode_frame(FrameType.EVENTS, events_payload(input_times, tmax))


def weight_frame(layer: int, address: int, word: int, lanes: int) -> bytes:
    """A ``WEIGHT`` frame writing one weight-memory word."""
    return encode_frame(
        FrameType.WEIGHT, pack_fields(weight_fields(lanes), {"layer": layer, "address": address, "data": word})
    )


@dataclass(frozen=True)
class BoardResult:
    """A decoded ``RESULT`` frame."""

    decision: int
    decision_time: int
    spike_times: tuple[int, ...]
    counts: tuple[int, ...]


def field_bytes(bits: int) -> int:
    """Bytes of a time or counter field holding a ``bits``-bit value: 2, or more for a wider core."""
    return max(FIELD_BYTES, -(-bits // BYTE_BITS))


def result_fields(n_out: int, *, count_bits: int = FIELD_BITS, time_bits: int = FIELD_BITS) -> Fields:
    """The ``RESULT`` frame's payload: decision, decision time, ``n_out`` spike times, ``n_out``
    final counters (two's complement).  ``count_bits`` and ``time_bits`` are the core's widths
    (:class:`~bs4nn.rtl.params.CoreParams` ``count_bits`` / ``time_bits``; the defaults give the
    2-byte fields of every BS4NN core so far); each field is :func:`field_bytes` of them."""
    time_size, count_size = field_bytes(time_bits), field_bytes(count_bits)
    times = tuple((f"spike_time{j}", time_size) for j in range(n_out))
    counts = tuple((f"count{j}", count_size) for j in range(n_out))
    return (("decision", 1), ("decision_time", time_size), *times, *counts)


def result_widths(params) -> dict[str, int]:
    """The :func:`result_fields` widths of a core, from its params (either family's
    :class:`~bs4nn.rtl.params.CoreParams`): the one place the board and the host take them."""
    return {"count_bits": params.count_bits, "time_bits": params.time_bits}


def result_payload_bytes(n_out: int, **widths: int) -> int:
    """Payload bytes of a ``RESULT`` frame (``widths``: as :func:`result_fields`)."""
    return payload_bytes(result_fields(n_out, **widths))


def decode_result(payload: bytes, n_out: int, **widths: int) -> BoardResult:
    """A ``RESULT`` payload read back (``widths``: the core's, as :func:`result_fields`)."""
    fields = result_fields(n_out, **widths)
    if len(payload) != payload_bytes(fields):
        raise Bs4nnError(f"result frame of {len(payload)} bytes, expected {payload_bytes(fields)} for {n_out}")
    values = unpack_fields(fields, payload)
    sizes = dict(fields)
    counts = []
    for j in range(n_out):  # two's complement
        raw, bits = values[f"count{j}"], sizes[f"count{j}"] * BYTE_BITS
        counts.append(raw - (1 << bits) if raw >> (bits - 1) else raw)
    times = tuple(values[f"spike_time{j}"] for j in range(n_out))
    return BoardResult(values["decision"], values["decision_time"], times, tuple(counts))


def encode_result(result: BoardResult, **widths: int) -> bytes:
    """The ``RESULT`` frame a board sends (used by tests and the reference)."""
    fields = result_fields(len(result.counts), **widths)
    return encode_frame(FrameType.RESULT, pack_fields(fields, result_values(result)))


def bench_frame(images: int) -> bytes:
    """A ``BENCH`` frame: run the first ``images`` images of the board's baked block."""
    return encode_frame(FrameType.BENCH, pack_fields(BENCH_FIELDS, {"images": images}))


def events_payload(input_times: np.ndarray, tmax: int) -> bytes:
    """One image's :func:`~bs4nn.sim.semantics.address_events` as ``EVENT_FIELDS`` bytes: the
    ``EVENTS`` payload, and the bytes a bench block's fingerprint is taken over."""
    events = address_events(input_times, tmax).tolist()
    return b"".join(pack_fields(EVENT_FIELDS, {"pixel": pixel, "time": time}) for pixel, time in events)


def bench_events_crc(input_times: np.ndarray, tmax: int) -> list[int]:
    """Fingerprints of a bench block (``(images, n_in)`` spike times), one per prefix: entry ``k``
    is the CRC-16 of the ``EVENTS`` payloads of images ``0..k`` in order.  The board reports the
    entry of the images it ran; the host compares it with the images it checks against."""
    fingerprints, crc = [], CRC_INIT
    for times in np.asarray(input_times):
        crc = crc16(events_payload(times, tmax), crc)
        fingerprints.append(crc)
    return fingerprints


def bench_results_crc(results: list[BoardResult], checked_bytes: int, **widths: int) -> int:
    """The ``results_crc`` a board running ``results``' images must report: CRC-16 over the first
    ``checked_bytes`` of each one's ``RESULT`` payload, in order (``widths``: the core's, as
    :func:`result_fields`)."""
    payloads = [pack_fields(result_fields(len(r.counts), **widths), result_values(r)) for r in results]
    return crc16(b"".join(payload[:checked_bytes] for payload in payloads))


def decision_bytes(**widths: int) -> int:
    """Bytes of a ``RESULT`` payload up to the decision time: all an early-exit board's bench checks."""
    return payload_bytes(result_fields(0, **widths)[:2])


def result_values(result: BoardResult) -> dict[str, int]:
    """A result's :func:`result_fields` values by name."""
    values = {"decision": result.decision, "decision_time": result.decision_time}
    values |= {f"spike_time{j}": time for j, time in enumerate(result.spike_times)}
    values |= {f"count{j}": count for j, count in enumerate(result.counts)}
    return values

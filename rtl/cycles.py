"""The core's cycle count per image, predicted from the golden model's spike times.

With the input stream always valid and the result always accepted, the core spends, from the
cycle that accepts an image's first beat to the cycle its result beat is accepted (both
counted), with ``W_l = ceil(fan_out_l / lanes)`` counter words in layer ``l`` (``L`` layers):

* ``W_0 + 2`` per input event (accept, ``W_0`` read-modify-write cycles, drain); a paired input
  layer (:data:`bs4nn.rtl.params.PAIRED_MIN_WORDS`) takes the events of a step two at a time,
  ``W_0`` per pair (and per odd last event of a step), the next pair accepted during the last two
  words of a sweep, and ``3`` per step with events (accept, pair, drain); ``W_0 + 3`` per pair
  when ``W_0 = 1``;
* ``1`` per distinct input time step (the beat of a later step closes the step);
* ``3`` per *candidate* word of layer ``l`` and step (read, threshold test, decide): a word where, after
  some event of the step, a neuron not fired before reached the threshold
  (:class:`bs4nn.rtl.core._Bs4nnController`; a step without candidates costs no scan);
* ``W_{l+1} + 3`` per spike of a hidden layer ``l`` (emit, integrate into ``l+1``, drain, next)
  and ``2`` per output spike (emit, next);
* ``1`` for the end-of-image beat, ``2 W_L`` to read the output counters, ``n_out`` for the
  argmax, ``1`` for the result beat.

Early exit stops at the first output spike (time ``td``, neuron ``j`` in word ``w_j``): only
events and spikes at ``t <= td`` count, the output layer's scan at ``td`` reads its candidate
words up to ``w_j`` and emits one spike, and there is no end beat.  Between images the core clears its counters in
``max_l W_l`` cycles (and, after an early exit, discards the rest of the image, one beat a cycle).

The wide core (:mod:`bs4nn.rtl.wide`, lanes beyond 64) streams rows instead of sweeping words:

* ``1`` per input event, and ``1`` for the beat that closes the last step with input events (the
  beat that closes an earlier step is the next step's first event, accepted in the same cycle);
* ``1`` per step in which layer ``l`` received events (its threshold test);
* ``1`` per spike and ``1`` per distinct spike step of every layer (emit; the last row lands);
* less ``1`` per event accepted while the step before is tested and emitted
  (:func:`overlapped_events`: a step's events after its first stream into layer 0 during those
  cycles, as many as there are);
* ``1`` for the end beat and ``1`` for the result beat, with ``n_out`` argmax cycles between them
  only when no output neuron fired (the counters are registers, copied in the end beat's cycle).

Early exit: as above up to ``td``; at ``td`` the output layer's test and one emit (the decision),
then the result beat.  Between images: no cycle (the clear is folded into the result beat, or
after an early exit into the end beat's discard).
"""

from __future__ import annotations

import numpy as np

from bs4nn.rtl.params import CoreParams
from bs4nn.sim.b1 import B1Result
from bs4nn.sim.golden import GoldenResult, IntegerNetwork
from bs4nn.sim.semantics import sorted_spikes

CANDIDATE_CHUNK = 32  # images per (images, events, neurons) counter array of candidate_words


def _distinct_steps(times: np.ndarray, tmax: int, until: np.ndarray) -> np.ndarray:
    """Per row, how many distinct time steps ``t <= until`` (and ``< tmax``) hold a spike."""
    batch = times.shape[0]
    present = np.zeros((batch, tmax + 1), dtype=bool)
    rows = np.broadcast_to(np.arange(batch)[:, None], times.shape)
    present[rows, np.minimum(times, tmax)] = True
    steps = np.arange(tmax + 1)
    return (present & (steps[None, :] <= np.minimum(until, tmax - 1)[:, None])).sum(axis=1)


def _integration_cycles(input_times: np.ndarray, until: np.ndarray, tmax: int, words: int, paired: bool) -> np.ndarray:
    """Cycles integrating the input events of steps ``t <= until`` into layer 0 (``words`` words):
    ``words + 2`` an event, or paired ``words`` per pair of events of one step (an odd one alone)
    and ``3`` per step (accept, pair, drain); a one-word layer ``words + 3`` per pair."""
    live = input_times <= np.minimum(until, tmax - 1)[:, None]
    if not paired:
        return live.sum(axis=1).astype(np.int64) * (words + 2)
    per_step = _per_step(input_times, tmax, until)
    pairs = (per_step + 1) // 2
    if words < 2:
        return pairs.sum(axis=1) * (words + 3)
    return pairs.sum(axis=1) * words + 3 * (per_step > 0).sum(axis=1)


def candidate_words(
    presynaptic: np.ndarray,
    weights: np.ndarray,
    threshold: int,
    spike_times: np.ndarray,
    lanes: int,
    until: np.ndarray,
    last_word: np.ndarray,
    tmax: int,
) -> np.ndarray:
    """Per image, the (step, counter word) pairs a narrow BS4NN core scans in one layer: steps
    ``t <= until`` and words where, after some presynaptic spike of step ``t`` (in the core's
    order: time, then lowest index), a neuron not fired before ``t`` has a counter at or above
    ``threshold``.  At ``t == until`` only words up to ``last_word`` count (the early exit's
    output scan stops at the decision's word).  ``presynaptic`` ``(batch, fan_in)`` spike times,
    ``weights`` ``(fan_out, fan_in)`` +-1, ``spike_times`` ``(batch, fan_out)`` this layer's."""
    batch, fan_out = spike_times.shape
    words = -(-fan_out // lanes)
    found = np.zeros(batch, dtype=np.int64)
    columns = np.asarray(weights, dtype=np.int16).T
    for start in range(0, batch, CANDIDATE_CHUNK):
        rows = slice(start, start + CANDIDATE_CHUNK)
        order, times, valid = sorted_spikes(presynaptic[rows], tmax)
        live = valid & (times <= until[rows, None])
        counts = np.cumsum(columns[order] * live[:, :, None], axis=1, dtype=np.int16)  # after each spike
        reached = (counts >= threshold) & (spike_times[rows][:, None, :] >= times[:, :, None]) & live[:, :, None]
        padded = np.zeros((*reached.shape[:2], words * lanes), dtype=bool)
        padded[:, :, :fan_out] = reached
        per_word = padded.reshape(*reached.shape[:2], words, lanes).any(axis=3)  # (chunk, events, words)
        beyond = np.arange(words)[None, None, :] > last_word[rows, None, None]
        per_word &= ~((times == until[rows, None])[:, :, None] & beyond)
        image, event, word = np.nonzero(per_word)
        pairs = np.zeros((per_word.shape[0], tmax, words), dtype=bool)
        pairs[image, times[image, event], word] = True
        found[rows] = pairs.sum(axis=(1, 2))
    return found


def predicted_cycles(
    params: CoreParams, golden: GoldenResult, early_exit: bool = False, network: IntegerNetwork | None = None
) -> np.ndarray:
    """Cycles per image (``(batch,)`` int64) of the core (narrow or wide) on the golden model's inputs.
    ``network`` (the one ``golden`` ran): the narrow core's scans depend on its counters within a step."""
    if params.wide:
        return _predicted_wide_cycles(params, golden, early_exit)
    if network is None:
        raise ValueError("the narrow core's cycles need the network (its scans follow the counters)")
    tmax = params.tmax
    words = [layer.words for layer in params.layers]
    input_times = np.asarray(golden.input_times)
    batch = input_times.shape[0]
    fired_output = golden.decision_time < tmax
    exits = early_exit & fired_output
    until = np.where(exits, golden.decision_time, tmax - 1)
    layer_inputs = [input_times, *golden.spike_times[:-1]]

    cycles = _integration_cycles(input_times, until, tmax, words[0], params.layers[0].paired)
    cycles += _distinct_steps(input_times, tmax, until)  # step-closing beats
    decision_word = golden.decision // params.layers[-1].lanes
    for index, presynaptic in enumerate(layer_inputs):
        layer, output = network.layers[index], index == len(words) - 1
        last_word = np.where(exits, decision_word, words[index]) if output else np.full(batch, words[index])
        scanned = candidate_words(
            presynaptic,
            layer.weights(),
            layer.threshold_count,
            golden.spike_times[index],
            params.layers[index].lanes,
            until,
            last_word,
            tmax,
        )
        cycles += 3 * scanned
    for index, spike_times in enumerate(golden.spike_times[:-1]):
        spikes = (spike_times <= until[:, None]).sum(axis=1)
        cycles += spikes * (words[index + 1] + 3)
    out_spikes = (golden.spike_times[-1] <= until[:, None]).sum(axis=1)
    cycles += np.where(exits, 1, 2 * out_spikes + 1)  # output spikes, end beat; early exit: the decision's emit
    cycles += 2 * words[-1] + params.n_out + 1  # output counters, argmax, result beat
    return cycles


def _predicted_wide_cycles(params: CoreParams, golden: GoldenResult, early_exit: bool) -> np.ndarray:
    """:func:`predicted_cycles` of the wide core (module doc)."""
    tmax = params.tmax
    input_times = np.asarray(golden.input_times)
    decided = golden.decision_time < tmax
    exits = early_exit & decided
    until = np.where(exits, golden.decision_time, tmax - 1)
    cycles = (input_times <= until[:, None]).sum(axis=1).astype(np.int64)  # accept each event
    input_steps = _distinct_steps(input_times, tmax, until)
    cycles += input_steps > 0  # the last step's close (the others close on the next step's first event)
    for presynaptic in [input_times, *golden.spike_times[:-1]]:
        cycles += _distinct_steps(presynaptic, tmax, until)  # threshold tests
    for spike_times in golden.spike_times[:-1]:
        cycles += (spike_times <= until[:, None]).sum(axis=1) + _distinct_steps(spike_times, tmax, until)
    cycles -= overlapped_events(params, golden, until)[0]
    outputs = golden.spike_times[-1]
    full_outputs = (outputs < tmax).sum(axis=1) + _distinct_steps(outputs, tmax, until) + 1  # and the end beat
    full_outputs += np.where(decided, 0, params.n_out)  # the argmax, when no output fired
    cycles += np.where(exits, 1, full_outputs)  # early exit: the decision's emit only
    return cycles + 1  # the result beat


def _per_step(times: np.ndarray, tmax: int, until: np.ndarray) -> np.ndarray:
    """``(batch, tmax)`` spike counts per time step, steps ``t <= until`` only."""
    counts = np.zeros((times.shape[0], tmax + 1), dtype=np.int64)
    rows = np.broadcast_to(np.arange(times.shape[0])[:, None], times.shape)
    np.add.at(counts, (rows, np.minimum(times, tmax)), 1)
    return counts[:, :tmax] * (np.arange(tmax)[None, :] <= until[:, None])


def overlapped_events(params: CoreParams, golden: GoldenResult, until: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The wide core's input events accepted while an earlier step is tested and emitted, per
    image: ``(between, after)``.  ``between``: events of steps ``<= until`` (each a cycle saved:
    the next step's events after its first, the one taken by the close, stream into layer 0 during
    the previous step's ``busy`` cycles, ``TEST_0``, each layer's emits and the cycle its last row
    lands, the next layer's test).  ``after``: events beyond ``until`` taken while the last step
    counted was busy (an early exit's discarded beats, up to the decision's emit)."""
    tmax, last = params.tmax, len(golden.spike_times) - 1
    inputs = np.asarray(golden.input_times)
    events = _per_step(inputs, tmax, np.full(inputs.shape[0], tmax - 1))
    busy = np.ones_like(events)  # TEST_0
    for index, spike_times in enumerate(golden.spike_times):
        spikes = _per_step(np.asarray(spike_times), tmax, until)
        busy += np.where(spikes > 0, spikes + 1 + (index < last), 0)
    exit_busy = busy - spikes  # at the decision's step: up to its emit, the output layer's first
    following = _next_event_step(events)  # (batch, tmax): the next step with events, tmax if none
    pair = (events > 0) & (following < tmax)  # a step with events and a later one
    waiting = np.take_along_axis(events, np.minimum(following, tmax - 1), axis=1) - 1  # its events after the first
    until = until[:, None]
    steps = np.arange(tmax)[None, :]
    between = np.where(pair & (following <= until), np.minimum(busy, waiting), 0).sum(axis=1)
    straddle = pair & (steps <= until) & (following > until)  # the last counted step and the next
    after = np.where(straddle, np.minimum(exit_busy, waiting), 0).sum(axis=1)
    return between, after


def _next_event_step(events: np.ndarray) -> np.ndarray:
    """``(batch, tmax)``: for each step, the next later step with events (``tmax`` if none)."""
    tmax = events.shape[1]
    own = np.where(events > 0, np.arange(tmax)[None, :], tmax)
    from_here = np.minimum.accumulate(own[:, ::-1], axis=1)[:, ::-1]  # this step or a later one
    return np.concatenate([from_here[:, 1:], np.full((events.shape[0], 1), tmax)], axis=1)


def clear_cycles(params: CoreParams) -> int:
    """Cycles between a result beat and the core's readiness for the next image (full mode)."""
    if params.wide:
        return 0
    return max(layer.words for layer in params.layers)


def worst_case_cycles(params: CoreParams) -> int:
    """An upper bound of :func:`predicted_cycles` for any image: every input spikes, at distinct
    steps as far as ``tmax`` allows, every word of every layer a candidate at every step (3 cycles
    each), every neuron fires."""
    layers = params.layers
    words = [layer.words for layer in layers]
    steps = min(params.tmax, params.n_in)
    cycles = params.n_in * (words[0] + 2 + layers[0].paired) + steps
    cycles += sum(3 * w * params.tmax for w in words)
    cycles += sum(layer.fan_out * (w_next + 3) for layer, w_next in zip(layers[:-1], words[1:], strict=True))
    cycles += 2 * params.n_out + 1 + 2 * words[-1] + params.n_out + 1
    return cycles + clear_cycles(params)


def predicted_b1_cycles(params: CoreParams, golden: B1Result) -> np.ndarray:
    """Cycles per image (``(batch,)`` int64) of the B1 core (:mod:`bs4nn.rtl.b1core`), counted as
    :func:`predicted_cycles` counts them, with ``E`` input events and ``N_l`` spikes of hidden layer ``l``:

        E (W_0 + 2) + 1 + sum_{l < L-1} (2 W_l + N_l (W_{l+1} + 3)) + 2 W_{L-1} + n_out + 1

    (integrate each event; the end beat; read and fire each hidden word, each spike emitted,
    integrated into the next layer, drained; output scores read out, argmax, result beat)."""
    words = [layer.words for layer in params.layers]
    events = (golden.values[0] > 0).sum(axis=1).astype(np.int64)
    cycles = events * (words[0] + 2) + 1
    for index, values in enumerate(golden.values[1:]):
        cycles += 2 * words[index] + (values > 0).sum(axis=1) * (words[index + 1] + 3)
    return cycles + 2 * words[-1] + params.n_out + 1


def worst_case_b1_cycles(params: CoreParams) -> int:
    """An upper bound of :func:`predicted_b1_cycles` for any image: every input spikes, every
    hidden neuron fires; plus the clear."""
    layers = params.layers
    words = [layer.words for layer in layers]
    cycles = params.n_in * (words[0] + 2) + 1
    cycles += sum(
        2 * w + layer.fan_out * (w_next + 3) for layer, w, w_next in zip(layers, words, words[1:], strict=False)
    )
    return cycles + 2 * words[-1] + params.n_out + 1 + clear_cycles(params)

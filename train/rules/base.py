"""The training-rule interface: what a rule gets from the loop and what it hands back.

A training rule turns one mini-batch into gradients; the loop (``train/trainer.py``) does the
rest -- batches, augmentation, dropout masks, the optimiser step, weight clips, alphas,
checkpoints, ``--resume``, progress bars, metrics, plots, validation selection, calibration and
the test score.  So a new rule is one module in ``train/rules/`` holding an options type and a
rule object, plus one line in ``train/rules/__init__.py``'s ``RULES``; a preset names it with
``backward="NAME"``.  Why a protocol and not a string switch: the loop then never needs to know
one rule's knobs (``batch_gradients`` used to take every rule's options at once).

A rule object is stateless (its state, if any, is a learned parameter the loop keeps, see
``extra_parameters``); every function is vectorised over the batch and runs on NumPy or CuPy
(``xp``).  Samples must be independent until the update: the loop may split a batch in two
halves (two threads) and sums the two results field by field (:meth:`BatchResult.plus`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar, Protocol

from bs4nn.sim.semantics import Array


@dataclass(frozen=True)
class Batch:
    """One mini-batch as the rule sees it (already augmented by the loop)."""

    in_times: Array  # (batch, n_in) int32 input spike times; tmax = the pixel never spikes
    labels: Array  # (batch,) int64 class labels
    keep_masks: Sequence[Array] | None = None  # hidden dropout: per hidden layer a (batch, n_l) float32 mask

    def rows(self, rows: slice) -> Batch:
        """The samples ``rows`` of this batch, masks included (the loop's two halves)."""
        masks = None if self.keep_masks is None else [mask[rows] for mask in self.keep_masks]
        return Batch(self.in_times[rows], self.labels[rows], masks)

    @property
    def size(self) -> int:
        return int(self.in_times.shape[0])


@dataclass(frozen=True)
class Parameters:
    """What is being learned, at the current step (read only: the rule returns gradients)."""

    weights: Sequence[Array]  # per layer the real proxy weights, (n_out, n_in); the forward uses sign(W)
    alphas: Sequence[float]  # per layer scale of the binary weights (alpha * count >= theta)
    thetas: Sequence[float]  # per layer firing threshold
    binary: bool = True  # False: S4NN mode, real weights, threshold theta itself
    extras: Mapping[str, float] = field(default_factory=dict)  # the rule's ``extra_parameters``, by name
    biases: Sequence[Array] = ()  # per layer (n_out,) float32, for a rule with ``layer_biases``; else empty


@dataclass
class BatchResult:
    """One mini-batch's gradients and figures, summed over its samples."""

    weight_grads: list[Array]  # per layer dL/dW, (n_out, n_in)
    alpha_grads: list[float]  # per layer dL/dalpha (the update divides by the batch size); 0.0: alphas stay
    loss: float
    correct: int  # samples whose prediction (the rule's own readout) is their label
    output_time_sum: float  # sum of the first output spike times (tmax when silent); NaN: the rule has none
    trained: int  # samples that took part
    silent: int  # samples skipped (no gradient path, e.g. a hidden layer without any spike)
    extra_grads: dict[str, float] = field(default_factory=dict)  # dL/d(extra parameter), by name
    bias_grads: list[Array] = field(default_factory=list)  # per layer dL/d(bias) (``layer_biases`` rules)

    def plus(self, other: BatchResult) -> BatchResult:
        """The sums of two disjoint parts of a batch (the loop's two halves)."""
        return BatchResult(
            weight_grads=[a + b for a, b in zip(self.weight_grads, other.weight_grads, strict=True)],
            alpha_grads=[a + b for a, b in zip(self.alpha_grads, other.alpha_grads, strict=True)],
            loss=self.loss + other.loss,
            correct=self.correct + other.correct,
            output_time_sum=self.output_time_sum + other.output_time_sum,
            trained=self.trained + other.trained,
            silent=self.silent + other.silent,
            extra_grads={name: value + other.extra_grads[name] for name, value in self.extra_grads.items()},
            bias_grads=[a + b for a, b in zip(self.bias_grads, other.bias_grads, strict=True)],
        )


class TrainingRule(Protocol):
    """A training rule (``Preset.backward`` names it): one mini-batch in, gradients out.

    Class attributes, read by the loop and by ``train/presets.py``:

    * ``name``: the registry key, ``backward=NAME`` in a preset, ``--backward NAME`` on the CLI.
    * ``options_type``: a frozen dataclass of the rule's own options.  Its field names are
      ``Preset`` field names; the loop builds it from the preset (``rules.rule_options``), so
      ``--set`` and ``--resume`` keep working.  Its ``__post_init__`` refuses bad values with one
      ``Bs4nnError`` line (a preset is checked when it is made).  A rule that uses hidden dropout
      has a ``hidden_dropout`` field; the loop then draws the masks (``epochs.keep_masks``) and
      ``Batch.keep_masks`` carries them; every other rule refuses a preset with dropout.
    * ``binary_only``: the rule works on the binary weights' integer counters; real-weight (S4NN)
      runs are refused before any data are loaded.
    * ``extra_parameters``: names of learned scalars besides weights and alphas, each initialised
      from the preset field of that name, stepped by the preset's optimiser with the weights,
      kept in the checkpoint's state and written to the metrics (snapshot-ce: ``readout_scale``).
    * ``loss_title``: what the ``loss`` column measures (metrics plot title).
    * ``figures_from_forward``: ``output_time_sum``/``correct`` come from the exact forward pass
      (the race the hardware runs), not from a readout of the rule's own.
    * ``model``: the network family the rule trains, the checkpoint's ``model`` (``"bs4nn"``,
      ``"b1"``); what the loop does per family is read from the attributes below, never the name.
    * ``layer_biases``: the rule learns a bias per neuron (``Parameters.biases``,
      ``BatchResult.bias_grads``); the loop starts them at 0, steps them with the preset's
      optimiser and checkpoints them (``Checkpoint.biases``).
    * ``scales_by_optimiser``: the per-layer scales are ``alpha = exp(s)`` with the log-scale ``s``
      stepped by the preset's optimiser (``alpha_grads`` are then dL/ds); otherwise the loop steps
      the alphas themselves by SGD at rate ``mu`` (the paper's BS4NN update).
    * ``probes_silence``: the loop refuses, at the start, a network whose probe images reach no
      output spike (BS4NN's race has no gradient path then).
    """

    name: ClassVar[str]
    options_type: ClassVar[type]
    binary_only: ClassVar[bool]
    extra_parameters: ClassVar[tuple[str, ...]]
    loss_title: ClassVar[str]
    figures_from_forward: ClassVar[bool]
    model: ClassVar[str]
    layer_biases: ClassVar[bool]
    scales_by_optimiser: ClassVar[bool]
    probes_silence: ClassVar[bool]

    def batch_gradients(self, batch: Batch, params: Parameters, options: Any, xp: ModuleType) -> BatchResult:
        """Forward, loss and backward of one mini-batch (no update): gradients summed over it.

        ``options`` is an instance of ``options_type``.  Deterministic: the same inputs give the
        same bits (``--resume`` and the two-halves split rely on it); randomness belongs to the
        loop (``train/epochs.py``, drawn from ``(seed, epoch, ...)``).
        """
        ...


class Bs4nnFamily:
    """What every BS4NN rule declares alike (a base class of theirs): binary/real weights with an
    alpha per layer stepped by SGD, no biases, the silent-network probe at the start."""

    model: ClassVar[str] = "bs4nn"
    layer_biases: ClassVar[bool] = False
    scales_by_optimiser: ClassVar[bool] = False
    probes_silence: ClassVar[bool] = True

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

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.sim.golden import decision_line
from bs4nn.sim.semantics import Array
from bs4nn.train.losses import Distillation


@dataclass(frozen=True)
class Batch:
    """One mini-batch as the rule sees it (already augmented by the loop)."""

    in_times: Array  # (batch, n_in) int32 input spike times; tmax = the pixel never spikes
    labels: Array  # (batch,) int64 class labels
    keep_masks: Sequence[Array] | None = None  # hidden dropout: per hidden layer a (batch, n_l) float32 mask
    teacher_logits: Array | None = None  # distillation: the float teacher's (batch, n_out) logits

    def rows(self, rows: slice) -> Batch:
        """The samples ``rows`` of this batch, masks and teacher logits included (the loop's two halves)."""
        masks = None if self.keep_masks is None else [mask[rows] for mask in self.keep_masks]
        teacher = None if self.teacher_logits is None else self.teacher_logits[rows]
        return Batch(self.in_times[rows], self.labels[rows], masks, teacher)

    @property
    def size(self) -> int:
        return int(self.in_times.shape[0])

    def distillation(self, options: Any) -> Distillation | None:
        """The teacher's logits with the rule's ``distill_weight`` and ``distill_temperature``
        (one place for every rule that distils), or None for a batch without a teacher."""
        if self.teacher_logits is None:
            return None
        return Distillation(self.teacher_logits, options.distill_weight, options.distill_temperature)


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
    figures: dict[str, np.ndarray] = field(default_factory=dict)  # the rule's own sums, metrics ``train_NAME``

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
            figures={name: value + other.figures[name] for name, value in self.figures.items()},
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
    * ``mean_gradients``: the gradients are of the batch mean, not sums (B1): the loop then never
      splits the batch over two threads and scales no decay by the batch.
    * ``metric_fields``: the rule's own columns of ``metrics.csv`` (from ``BatchResult.figures``
      and ``validation_row``).

    Methods besides ``batch_gradients`` (the family's, ``Bs4nnFamily`` for the BS4NN rules):
    ``check_preset(preset)`` refuses what the rule cannot train; ``initial_parameters(preset,
    seed)`` gives the starting weights, alphas and thetas; ``evaluate(checkpoint, data)`` scores a
    model by its family's golden model (validation, test); ``validation_row(validation)`` and
    ``test_line(test)`` are its figures in the metrics and the log.
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
    mean_gradients: ClassVar[bool]
    metric_fields: ClassVar[tuple[str, ...]]

    def check_preset(self, preset: Any) -> None: ...

    def initial_parameters(self, preset: Any, seed: int) -> tuple[list[np.ndarray], list[float], list[float]]: ...

    def evaluate(self, checkpoint: Any, data: Any) -> dict[str, Any]: ...

    def validation_row(self, validation: dict[str, Any]) -> dict[str, Any]: ...

    def test_line(self, test: dict[str, Any]) -> str: ...

    def epoch_note(self, row: dict[str, Any]) -> str:
        """What an epoch's log line says of the validation run beside its accuracy (the family's figures)."""
        ...

    def batch_gradients(self, batch: Batch, params: Parameters, options: Any, xp: ModuleType) -> BatchResult:
        """Forward, loss and backward of one mini-batch (no update): gradients summed over it.

        ``options`` is an instance of ``options_type``.  Deterministic: the same inputs give the
        same bits (``--resume`` and the two-halves split rely on it); randomness belongs to the
        loop (``train/epochs.py``, drawn from ``(seed, epoch, ...)``).
        """
        ...


MAX_COUNT = 2**31
"""Threshold counts (theta / alpha) must fit the trainer's int32 counters."""


class Bs4nnFamily:
    """What every BS4NN rule declares and does alike (a base class of theirs): binary or real
    weights drawn from the preset's ``init_ranges``, an alpha per layer stepped by SGD, no biases,
    gradients summed over the batch, the silent-network probe at the start, validation and the
    test score by the BS4NN golden model."""

    model: ClassVar[str] = "bs4nn"
    layer_biases: ClassVar[bool] = False
    scales_by_optimiser: ClassVar[bool] = False
    probes_silence: ClassVar[bool] = True
    mean_gradients: ClassVar[bool] = False
    metric_fields: ClassVar[tuple[str, ...]] = ()

    def check_preset(self, preset: Any) -> None:
        """One init range, alpha and theta per layer, and counts that fit the counters."""
        n_layers = len(preset.sizes) - 1
        if not (len(preset.init_ranges) == len(preset.alphas) == len(preset.thetas) == n_layers):
            raise Bs4nnError(f"{n_layers} layers need as many init ranges, alphas and thetas")
        for index, (alpha, theta) in enumerate(zip(preset.alphas, preset.thetas, strict=True)):
            if theta / alpha >= MAX_COUNT:
                raise Bs4nnError(
                    f"layer {index} needs a count of theta / alpha = {theta / alpha:.3g}, "
                    f"beyond what a counter holds ({MAX_COUNT}): lower theta or raise alpha"
                )

    def initial_parameters(self, preset: Any, seed: int) -> tuple[list[np.ndarray], list[float], list[float]]:
        """Proxy weights drawn from the preset's ``init_ranges`` (a function of the seed alone), its alphas, thetas."""
        rng = np.random.default_rng([seed, 0xB54])
        weights = [
            rng.uniform(low, high, size=(n_out, n_in)).astype(np.float32)
            for (low, high), n_in, n_out in zip(preset.init_ranges, preset.sizes[:-1], preset.sizes[1:], strict=True)
        ]
        return weights, [float(a) for a in preset.alphas], [float(t) for t in preset.thetas]

    def evaluate(self, checkpoint: Any, data: Any) -> dict[str, Any]:
        """The BS4NN golden model on the exported integer network (real weights: the float forward)."""
        from bs4nn.train.metrics import evaluate  # here: the golden model's imports stay off `bs4nn --help`
        from bs4nn.train.network import ProxyNetwork

        c = checkpoint
        return evaluate(ProxyNetwork(c.weights, c.alphas, c.thetas, c.tmax, c.imax, c.binary), data)

    def validation_row(self, validation: dict[str, Any]) -> dict[str, Any]:
        return {
            "validation_mean_decision_time": validation["mean_decision_time"],
            "validation_spikes_until_decision": validation["mean_spikes_until_decision"],
            "validation_tie_rate": validation["tied_decisions"] / validation["images"],
            "validation_first_spike_decisions": validation["first_spike_decisions"],
            "validation_p95_decision_time": validation["p95_decision_time"],
        }

    def epoch_note(self, row: dict[str, Any]) -> str:
        return (
            f"{100 * row['validation_first_spike_decisions']:.1f} % by a first spike, mean decision step "
            f"{row['validation_mean_decision_time']:.1f}"
        )

    def test_line(self, test: dict[str, Any]) -> str:
        return (
            f"({test['scored_by']}); {decision_line(test)}; "
            f"{test['tied_decisions']} test images decided by the tie rule (scored as the hardware "
            f"breaks them; {100 * test['accuracy_ties_lenient']:.2f} % if such ties counted as correct, "
            "the authors' scoring)"
        )

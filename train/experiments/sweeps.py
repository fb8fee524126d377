"""Sweeps over one trained model: input noise (Fig. 5), threshold (Fig. 7), alpha rounding, real weights.

Each sweep returns plain rows (dicts) so that tests and ``train/EXPERIMENTS.md`` quote the same
numbers; :func:`write_sweep` writes them as JSON, a Markdown table and a PNG plot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import integer_network, quantize_alpha
from bs4nn.fileio import atomic_write_text
from bs4nn.sim.golden import GoldenResult, decision_statistics, run_golden, run_golden_images, run_network
from bs4nn.sim.semantics import encode_images, threshold_count
from bs4nn.train.experiments.models import AnalysedModel
from bs4nn.train.experiments.plots import markdown_table, new_figure, save_figure, write_json

NOISE_LEVELS = tuple(round(0.05 * k, 2) for k in range(21))  # 0 %, 5 %, ..., 100 % of imax
THRESHOLD_THETAS = tuple(range(0, 201, 10))  # the paper sweeps 0..200
THRESHOLD_SCALES = tuple(round(0.1 * k, 1) for k in range(21))  # x trained theta: 0..200 for theta 100
ALPHA_DECIMALS = (0, 1, 2, 3, 4)
DEFAULT_CHUNK = 16
"""Images per golden-model chunk: small chunks keep the (images, events, neurons) array in cache;
measured 2-3x faster than 256 on noisy MNIST images (tests/benchmarks/bench_experiments.py)."""


def summarize(result: GoldenResult, labels: np.ndarray, tmax: int) -> dict[str, float]:
    """Accuracy and speed of one golden run: what every sweep row quotes."""
    return {"accuracy": result.accuracy(labels), **decision_statistics(result, tmax)}


# --------------------------------------------------------------------------------------------
# Fig. 5: robustness to jitter noise on the pixel intensities


def jitter_images(images: np.ndarray, level: float, imax: int, rng: np.random.Generator) -> np.ndarray:
    """Every pixel plus uniform noise in ``[-level*imax, +level*imax]``, rounded, clipped to ``0..imax``.

    Applied to all pixels (black ones too), so strong noise also adds spurious early spikes.
    """
    if level < 0:
        raise Bs4nnError(f"noise level must be >= 0, got {level}")
    noise = rng.uniform(-level * imax, level * imax, size=images.shape)
    return np.clip(np.rint(images.astype(np.float64) + noise), 0, imax).astype(np.uint8)


def noise_sweep(
    model: AnalysedModel,
    images: np.ndarray,
    labels: np.ndarray,
    levels: Sequence[float] = NOISE_LEVELS,
    seed: int = 0,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Accuracy and mean response time at each noise level (fraction of imax); one draw per level."""
    network = model.network
    rows = []
    for index, level in enumerate(_bar(levels, progress, "noise")):
        rng = np.random.default_rng([seed, index])
        noisy = jitter_images(images, float(level), network.imax, rng)
        result = run_golden_images(network, noisy, chunk=DEFAULT_CHUNK)
        rows.append({"noise": float(level), **summarize(result, labels, network.tmax)})
    return rows


# --------------------------------------------------------------------------------------------
# Fig. 7: speed-accuracy trade-off under the threshold


def threshold_counts_for(model: AnalysedModel, thetas: Mapping[int, float]) -> list[int]:
    """Integer thresholds with ``thetas[layer]`` on those layers (others unchanged): ``ceil(theta/alpha_q)``, >= 1.

    Without known alphas (a bit model whose manifest lacks ``alpha_q``) theta is in counts.
    """
    counts = [layer.threshold_count for layer in model.network.layers]
    for index, theta in thetas.items():
        if theta <= 0:
            counts[index] = 1
        elif model.alphas_q is None:
            counts[index] = max(1, int(np.ceil(theta)))
        else:
            counts[index] = max(1, threshold_count(theta, model.alphas_q[index]))
    return counts


def threshold_sweep(
    model: AnalysedModel,
    images: np.ndarray,
    labels: np.ndarray,
    thetas: Sequence[float] | None = None,
    layers: Sequence[int] | None = None,
    progress: bool = False,
    scales: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Accuracy and mean response time with the threshold moved on ``layers`` (default: all).

    Either absolute ``thetas`` (the same theta on every moved layer), or ``scales`` of each
    layer's trained theta (needs the trained thetas).  Default: ``scales`` 0, 0.1, ..., 2 when
    the trained thetas are known (for the paper's theta 100 on all layers that is its 0..200
    sweep), else the absolute thetas 0, 10, ..., 200.  The signs stay as trained (Fig. 7).
    """
    n_layers = len(model.network.layers)
    layers = list(range(n_layers)) if layers is None else list(layers)
    for index in layers:
        if not 0 <= index < n_layers:
            raise Bs4nnError(f"layer {index} does not exist (the model has layers 0..{n_layers - 1})")
    if thetas is not None and scales is not None:
        raise Bs4nnError("give absolute thetas or scales of the trained thetas, not both")
    if thetas is None and scales is None:
        scales, thetas = (THRESHOLD_SCALES, None) if model.thetas is not None else (None, THRESHOLD_THETAS)
    if scales is not None and model.thetas is None:
        raise Bs4nnError("this model has no trained thetas (bit model without 'theta'): give absolute thetas")
    if scales is not None:
        points = [(float(scale), None, {i: float(scale) * model.thetas[i] for i in layers}) for scale in scales]
    else:
        points = [(None, float(theta), dict.fromkeys(layers, float(theta))) for theta in thetas]
    input_times = encode_images(images, model.network.tmax, model.network.imax)
    rows = []
    for scale, theta, moved in _bar(points, progress, "threshold"):
        counts = threshold_counts_for(model, moved)
        result = run_golden(model.with_thresholds(counts), input_times, chunk=DEFAULT_CHUNK)
        summary = summarize(result, labels, model.network.tmax)
        layer_thetas = [moved.get(i, model.thetas[i] if model.thetas else None) for i in range(n_layers)]
        rows.append({"scale": scale, "theta": theta, "thetas": layer_thetas, "threshold_counts": counts, **summary})
    return rows


# --------------------------------------------------------------------------------------------
# Alpha rounding and real-valued weights (need the checkpoint)


def alpha_rounding(
    model: AnalysedModel,
    images: np.ndarray,
    labels: np.ndarray,
    decimals: Sequence[int] = ALPHA_DECIMALS,
) -> list[dict[str, Any]]:
    """Accuracy with alpha rounded to each number of decimals, and unrounded (``decimals = None``).

    A rounding that makes an alpha 0 has no valid threshold: its row says so instead.
    """
    checkpoint = model.require_checkpoint("the alpha-rounding experiment")
    input_times = encode_images(images, checkpoint.tmax, checkpoint.imax)
    rows = []
    for places in [*decimals, None]:
        row: dict[str, Any] = {"decimals": places}
        try:
            if places is None:
                alphas = [Decimal(repr(float(alpha))) for alpha in checkpoint.alphas]
                counts = [threshold_count(t, a) for t, a in zip(checkpoint.thetas, alphas, strict=True)]
                network = model.with_thresholds(counts)
            else:
                alphas = [quantize_alpha(alpha, places) for alpha in checkpoint.alphas]
                network = integer_network(
                    checkpoint.weights, checkpoint.alphas, checkpoint.thetas, checkpoint.tmax, checkpoint.imax, places
                )
        except Bs4nnError as error:
            rows.append({**row, "error": str(error)})
            continue
        result = run_golden(network, input_times, chunk=DEFAULT_CHUNK)
        rows.append(
            {
                **row,
                "alphas": [str(a) for a in alphas],
                "threshold_counts": [layer.threshold_count for layer in network.layers],
                **summarize(result, labels, network.tmax),
            }
        )
    return rows


def real_weights_experiment(model: AnalysedModel, images: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    """Binary network (``alpha * B``, the golden model) against the real weights ``W`` it was trained with.

    The paper (MNIST) reports 89.1 % with the real weights against 97.0 % binary.
    """
    checkpoint = model.require_checkpoint("the real-weights experiment")
    input_times = encode_images(images, checkpoint.tmax, checkpoint.imax)
    binary = run_golden(model.network, input_times, chunk=DEFAULT_CHUNK)
    real_weights = [np.asarray(w, dtype=np.float64) for w in checkpoint.weights]
    real = run_network(input_times, real_weights, list(checkpoint.thetas), checkpoint.tmax, chunk=DEFAULT_CHUNK)
    labels = np.asarray(labels)
    return [
        {"weights": "binary alpha*B (golden)", **summarize(binary, labels, checkpoint.tmax)},
        {
            "weights": "real W",
            "accuracy": float(np.mean(real.decision == labels)),
            "mean_decision_time": float(real.decision_time.mean()),
            "no_output_spike": int((real.decision_time >= checkpoint.tmax).sum()),
        },
    ]


# --------------------------------------------------------------------------------------------
# Output files


def write_sweep(kind: str, rows: list[dict[str, Any]], out_dir: str | os.PathLike, meta: dict[str, Any]) -> list[Path]:
    """``<kind>.json`` (rows + meta), ``<kind>.md`` (table) and ``<kind>.png`` (plot) in ``out_dir``."""
    out_dir = Path(out_dir)
    written = [write_json(out_dir / f"{kind}.json", {"experiment": kind, **meta, "rows": rows})]
    header, table = _table(kind, rows)
    title = f"## {kind} ({meta.get('model', '')}, {meta.get('dataset', '')} {meta.get('split', '')}, "
    title += f"{meta.get('images', '?')} images)\n\n"
    written.append(atomic_write_text(out_dir / f"{kind}.md", title + markdown_table(header, table)))
    written.append(PLOTTERS[kind](rows, out_dir / f"{kind}.png"))
    return written


def _table(kind: str, rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    def pct(row: dict[str, Any]) -> str:
        return f"{100 * row['accuracy']:.2f}" if "accuracy" in row else "n/a"

    def steps(row: dict[str, Any]) -> str:
        return f"{row['mean_decision_time']:.1f}" if "mean_decision_time" in row else "n/a"

    if kind == "noise":
        return ["noise (% of imax)", "accuracy %", "mean response (steps)"], [
            [f"{100 * r['noise']:.0f}", pct(r), steps(r)] for r in rows
        ]
    if kind == "threshold":
        return [
            "x trained theta",
            "theta per layer",
            "threshold counts",
            "accuracy %",
            "mean response (steps)",
            "no output spike",
        ], [
            [
                "-" if r["scale"] is None else f"{r['scale']:g}",
                ", ".join("?" if t is None else f"{t:g}" for t in r["thetas"]),
                r["threshold_counts"],
                pct(r),
                steps(r),
                r["no_output_spike"],
            ]
            for r in rows
        ]
    if kind == "alpha":
        return ["alpha decimals", "alphas", "threshold counts", "accuracy %"], [
            [
                "unrounded" if r["decimals"] is None else r["decimals"],
                ", ".join(r.get("alphas", [])) or r.get("error", ""),
                r.get("threshold_counts", "-"),
                pct(r),
            ]
            for r in rows
        ]
    return ["weights", "accuracy %", "mean response (steps)"], [[r["weights"], pct(r), steps(r)] for r in rows]


def _plot_noise(rows: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = new_figure()
    ax.plot([100 * r["noise"] for r in rows], [100 * r["accuracy"] for r in rows], "o-")
    ax.set(xlabel="jitter noise (% of Imax)", ylabel="test accuracy (%)", title="Robustness to input noise (Fig. 5)")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _plot_threshold(rows: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = new_figure()
    relative = rows[0]["scale"] is not None
    thetas = [r["scale"] if relative else r["theta"] for r in rows]
    ax.plot(thetas, [100 * r["accuracy"] for r in rows], "o-", color="tab:blue")
    xlabel = "threshold / trained threshold (every moved layer)" if relative else "threshold theta"
    ax.set(xlabel=xlabel, ylabel="accuracy (%)", title="Speed-accuracy trade-off (Fig. 7)")
    ax.tick_params(axis="y", labelcolor="tab:blue")
    other = ax.twinx()
    other.plot(thetas, [r["mean_decision_time"] for r in rows], "s--", color="tab:red")
    other.set_ylabel("mean response time (steps)", color="tab:red")
    other.tick_params(axis="y", labelcolor="tab:red")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _plot_alpha(rows: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = new_figure()
    labels = ["none" if r["decimals"] is None else str(r["decimals"]) for r in rows]
    values = [100 * r.get("accuracy", 0.0) for r in rows]
    ax.bar(labels, values, color=["tab:gray" if "error" in r else "tab:blue" for r in rows])
    ax.set(xlabel="alpha decimals", ylabel="accuracy (%)", title="Alpha rounding")
    return save_figure(fig, path)


def _plot_real(rows: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = new_figure()
    ax.bar([r["weights"] for r in rows], [100 * r["accuracy"] for r in rows], color=["tab:blue", "tab:orange"])
    ax.set(ylabel="accuracy (%)", title="Binary alpha*B vs real W in the binary-trained net")
    return save_figure(fig, path)


PLOTTERS = {"noise": _plot_noise, "threshold": _plot_threshold, "alpha": _plot_alpha, "real-weights": _plot_real}


def _bar(items: Sequence[Any], enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="point")

"""Training presets: the paper's Table 1 settings plus a ``tiny`` network for tests.

Each preset fixes the architecture, the proxy-weight initialisation, the per-layer alphas and
thetas and the learning hyperparameters; the CLI may override the run-length knobs (epochs,
batch size, seed) but the architecture of a preset is what its name promises.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bs4nn.errors import Bs4nnError


@dataclass(frozen=True)
class Preset:
    """Everything a training run needs besides the data folder and the output folder."""

    name: str
    dataset: str
    sizes: tuple[int, ...]  # input first: (784, 600, 10)
    init_ranges: tuple[tuple[float, float], ...]  # U[low, high] per layer for the real proxy weights
    alphas: tuple[float, ...]  # initial per-layer scale of the binary weights
    thetas: tuple[float, ...]  # per-layer firing threshold (alpha * count >= theta)
    eta: float = 0.1  # learning rate of the proxy weights
    mu: float = 0.01  # learning rate of the alphas (eq. 16)
    gamma: float = 1.0  # target margin of the relative targets (eq. 6)
    weight_decay: float = 1e-6  # L2 lambda
    epochs: int = 30
    batch_size: int = 32
    decay_every: int = 10  # learning rates x decay_factor every decay_every epochs
    decay_factor: float = 0.7
    bucket_batches: int = 1  # >1: group samples of similar spike count into batches (faster, biased)
    tmax: int = 256
    imax: int = 255
    train_images: int = 55_000  # first N training images; the last 5,000 are the validation split
    validation_images: int = 5_000
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_layers = len(self.sizes) - 1
        if not (len(self.init_ranges) == len(self.alphas) == len(self.thetas) == n_layers):
            raise Bs4nnError(f"preset {self.name}: {n_layers} layers need as many init ranges, alphas and thetas")

    def with_overrides(self, **changes: Any) -> Preset:
        """A copy with the non-None values of ``changes`` applied."""
        return replace(self, **{key: value for key, value in changes.items() if value is not None})

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["sizes"] = list(self.sizes)
        values["init_ranges"] = [list(r) for r in self.init_ranges]
        values["alphas"] = list(self.alphas)
        values["thetas"] = list(self.thetas)
        return values


PRESETS: dict[str, Preset] = {
    # The shipped MNIST model. Table 1 except (each measured, see train/README.md):
    # * theta 300/500 instead of 100/100 and gamma 4 instead of 1: with the paper's thresholds nearly
    #   all hidden neurons fire at t <= 4 and the outputs cross in the same step, so the hardware tie
    #   rule (lowest index) decides half of the images (44 % validation after 4 epochs on 5,000 images;
    #   300/500 with gamma 4: 73-76 % after 2);
    # * hidden init U[0, 0.5] instead of U[0, 5]: a hidden sign flips after ~10x fewer updates (after
    #   9 epochs with U[0, 5] 93 % of the hidden weights were still +1);
    # * mu 0.001 instead of 0.01: the output alpha drifted up (5.0 -> 6.25 in 9 epochs: lower count
    #   threshold, more ties) and validation fell from 72.4 % (epoch 4) to 67.0 % (epoch 9).
    "mnist": Preset(
        name="mnist",
        dataset="mnist",
        sizes=(784, 600, 10),
        init_ranges=((0.0, 0.5), (0.0, 50.0)),
        alphas=(5.0, 5.0),
        thetas=(300.0, 500.0),
        gamma=4.0,
        mu=0.001,
        epochs=12,
        decay_every=1,
    ),
    # Table 1 verbatim, for comparison.
    "mnist-paper": Preset(
        name="mnist-paper",
        dataset="mnist",
        sizes=(784, 600, 10),
        init_ranges=((0.0, 5.0), (0.0, 50.0)),
        alphas=(5.0, 5.0),
        thetas=(100.0, 100.0),
    ),
    "fashion": Preset(
        name="fashion",
        dataset="fashion-mnist",
        sizes=(784, 1000, 10),
        init_ranges=((0.0, 1.0), (0.0, 1.0)),
        alphas=(5.0, 10.0),
        thetas=(700.0, 700.0),
    ),
    "fashion-2x600": Preset(
        name="fashion-2x600",
        dataset="fashion-mnist",
        sizes=(784, 600, 600, 10),
        init_ranges=((-10.0, 10.0), (-10.0, 10.0), (-10.0, 10.0)),
        alphas=(10.0, 10.0, 10.0),
        thetas=(500.0, 500.0, 500.0),
    ),
    # Small and fast: for tests and smoke runs (a 2-epoch run on 2,000 images takes seconds).
    "tiny": Preset(
        name="tiny",
        dataset="mnist",
        sizes=(784, 100, 10),
        init_ranges=((0.0, 5.0), (0.0, 50.0)),
        alphas=(5.0, 5.0),
        thetas=(300.0, 100.0),
        gamma=4.0,
        epochs=2,
        train_images=2_000,
        validation_images=500,
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise Bs4nnError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}") from None

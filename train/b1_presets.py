"""The B1 training presets: ``bs4nn train --preset mnist-b1`` / ``fashion-b1`` (and ``tiny-b1``
for tests).  Measured choices in train/README.md ("B1 networks")."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bs4nn.errors import Bs4nnError
from bs4nn.train.b1_model import B1Shape


@dataclass(frozen=True)
class B1Preset:
    """A B1 training run's settings (the ``bs4nn train`` presets ``mnist-b1``, ``fashion-b1``)."""

    name: str
    dataset: str
    sizes: tuple[int, ...]
    windows: tuple[int, ...]  # per hidden layer, steps
    weight_bits: int = 1
    tmax: int = 256
    imax: int = 255
    eta: float = 2e-3  # Adam learning rate at the start; cosine decay to 0 over `epochs`
    epochs: int = 60
    batch_size: int = 100
    activity_penalty: float = 0.0  # lambda of the mean hidden value (in steps)
    shift_pixels: int = 0
    hidden_dropout: float = 0.0  # fraction of hidden neurons silenced per training image and batch
    train_images: int = 55_000
    validation_images: int = 5_000

    def __post_init__(self) -> None:
        try:
            self.shape  # noqa: B018 (validates the sizes, windows and weight width)
        except ValueError as error:
            raise Bs4nnError(f"preset {self.name}: {error}") from error
        if any(window < 1 for window in self.windows):
            raise Bs4nnError(f"preset {self.name}: windows must be >= 1 step, got {self.windows}")
        if not 0 <= self.hidden_dropout < 1:
            raise Bs4nnError(f"preset {self.name}: hidden_dropout must be in [0, 1), not {self.hidden_dropout}")
        if not (self.eta > 0 and self.epochs >= 1 and self.batch_size >= 1 and self.activity_penalty >= 0):
            raise Bs4nnError(f"preset {self.name}: eta > 0, epochs >= 1, batch_size >= 1, activity_penalty >= 0 needed")

    @property
    def shape(self) -> B1Shape:
        return B1Shape(tuple(self.sizes), self.tmax, tuple(self.windows), self.weight_bits)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


B1_PRESETS = {
    preset.name: preset
    for preset in (
        B1Preset("mnist-b1", "mnist", (784, 600, 10), (16,), epochs=60, activity_penalty=0.05, shift_pixels=1),
        B1Preset("fashion-b1", "fashion-mnist", (784, 1000, 10), (16,), epochs=60, activity_penalty=0.02),
        B1Preset("tiny-b1", "mnist", (784, 64, 10), (8,), epochs=2, train_images=2_000, validation_images=1_000),
    )
}

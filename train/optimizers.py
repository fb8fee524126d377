"""The trainer's optimisers: plain SGD (the paper's update) and Adam (the snapshot-ce mode's).

Both return the updated arrays (the caller stores them; NumPy's type promotion is left as it is)
and keep their state as arrays, so a checkpoint holds
it (``state_arrays``) and ``--resume`` continues bitwise.  One source for NumPy and CuPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.sim.semantics import Array, to_numpy

OPTIMIZERS = ("sgd", "adam")
"""``sgd``: ``W -= lr * g`` (paper); ``adam``: Kingma & Ba with the usual constants below."""

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class Sgd:
    """``param -= lr * grad``, cast back to the parameter's dtype (float32 proxies stay float32)."""

    def __init__(self, params: Sequence[Array], xp: ModuleType = np) -> None:
        self.xp = xp

    def step(self, params: Sequence[Array], grads: Sequence[Array], lr: float) -> list[Array]:
        return [param - (lr * grad).astype(param.dtype) for param, grad in zip(params, grads, strict=True)]

    def state_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray], prefix: str) -> None:
        pass


class Adam:
    """Adam over a list of arrays; the bias corrections are folded into the step size."""

    def __init__(self, params: Sequence[Array], xp: ModuleType = np) -> None:
        self.xp = xp
        self.step_count = 0
        self.first = [xp.zeros_like(param) for param in params]
        self.second = [xp.zeros_like(param) for param in params]

    def step(self, params: Sequence[Array], grads: Sequence[Array], lr: float) -> list[Array]:
        self.step_count += 1
        beta1, beta2 = ADAM_BETAS
        correction = np.sqrt(1 - beta2**self.step_count) / (1 - beta1**self.step_count)
        updated = []
        for index, (param, grad) in enumerate(zip(params, grads, strict=True)):
            self.first[index] = beta1 * self.first[index] + (1 - beta1) * grad
            self.second[index] = beta2 * self.second[index] + (1 - beta2) * grad**2
            updated.append(param - lr * correction * self.first[index] / (self.xp.sqrt(self.second[index]) + ADAM_EPS))
        return updated

    def state_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Moments and step count as NumPy arrays named ``{prefix}_...`` (for the checkpoint)."""
        arrays = {f"{prefix}_step": np.array(self.step_count)}
        for index, (first, second) in enumerate(zip(self.first, self.second, strict=True)):
            arrays[f"{prefix}_first_{index}"] = to_numpy(first)
            arrays[f"{prefix}_second_{index}"] = to_numpy(second)
        return arrays

    def load_state(self, state: dict[str, np.ndarray], prefix: str) -> None:
        """Restore what :meth:`state_arrays` wrote; a missing or misshapen array is an error."""
        try:
            self.step_count = int(state[f"{prefix}_step"])
            first = [state[f"{prefix}_first_{index}"] for index in range(len(self.first))]
            second = [state[f"{prefix}_second_{index}"] for index in range(len(self.second))]
        except KeyError as error:
            raise Bs4nnError(f"checkpoint lacks the optimiser state {error}; it cannot be resumed exactly") from None
        for index, (old, new_first, new_second) in enumerate(zip(self.first, first, second, strict=True)):
            if new_first.shape != old.shape or new_second.shape != old.shape:
                raise Bs4nnError(f"checkpoint optimiser state {prefix} {index} has shape {new_first.shape}")
            self.first[index] = self.xp.asarray(new_first, dtype=old.dtype)
            self.second[index] = self.xp.asarray(new_second, dtype=old.dtype)


def make_optimizer(name: str, params: Sequence[Array], xp: ModuleType = np) -> Sgd | Adam:
    if name == "sgd":
        return Sgd(params, xp)
    if name == "adam":
        return Adam(params, xp)
    raise Bs4nnError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")

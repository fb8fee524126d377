"""Weights and biases in ``.npy`` files: the one reader for every place that takes them.

``bs4nn-export`` reads a BS4NN network's weights from them (``--from-npy``) and a float ReLU MLP
from ``W0.npy b0.npy W1.npy b1.npy ...`` (``--from-relu``); the B1 trainer reads the same files as
its distillation teacher (``teacher``).  Every check answers in one line (``Bs4nnError``): a user's
file is input, not trusted.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bs4nn.errors import Bs4nnError


def _load_array(path: str | os.PathLike) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError as error:
        raise Bs4nnError(f"{path}: no such file") from error
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise Bs4nnError(f"{path}: not a readable .npy array ({error})") from error
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        raise Bs4nnError(f"{path}: expected a numeric .npy array")
    return array


def load_npy_weights(path: str | os.PathLike) -> np.ndarray:
    """One weight matrix ``(out, in)`` or ``(out, in, 1)`` from a ``.npy`` file, as float64."""
    array = _load_array(path)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2 or array.size == 0:
        raise Bs4nnError(f"{path}: weights must be (out, in) or (out, in, 1), got {array.shape}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise Bs4nnError(f"{path}: weights hold NaN or inf")
    return array


def load_npy_bias(path: str | os.PathLike) -> np.ndarray:
    """One bias vector ``(out,)`` from a ``.npy`` file, as float64."""
    array = _load_array(path)
    if array.ndim != 1:
        raise Bs4nnError(f"{path}: a bias must be a 1-D numeric .npy array")
    if not np.isfinite(array).all():
        raise Bs4nnError(f"{path}: bias holds NaN or inf")
    return array.astype(np.float64)


def load_relu_mlp(paths: Sequence[str | os.PathLike], what: str = "--from-relu") -> tuple[list, list]:
    """``(weights, biases)`` of a float ReLU MLP from ``W0.npy b0.npy W1.npy b1.npy ...``, the layers
    checked to chain (``what`` names the option in the error lines)."""
    if len(paths) < 2 or len(paths) % 2:
        raise Bs4nnError(f"{what} needs pairs W.npy b.npy per layer, got {len(paths)} files")
    weights = [load_npy_weights(path) for path in paths[0::2]]
    biases = [load_npy_bias(path) for path in paths[1::2]]
    for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        if bias.shape != (weight.shape[0],) or (index and weight.shape[1] != weights[index - 1].shape[0]):
            shapes = f"({weight.shape}, {bias.shape})"
            raise Bs4nnError(f"{paths[2 * index + 1]}: layer {index} shapes do not chain {shapes}")
    return weights, biases


def relu_mlp_files(folder: str | os.PathLike) -> list[Path]:
    """``W0.npy b0.npy W1.npy b1.npy ...`` in ``folder`` (what ``bs4nn experiment relu`` writes), in order."""
    folder = Path(folder)
    expected = "expected W0.npy b0.npy W1.npy b1.npy ... from bs4nn experiment relu"
    if not folder.is_dir():
        raise Bs4nnError(f"{folder}: no such folder ({expected})")
    paths: list[Path] = []
    while (folder / f"W{len(paths) // 2}.npy").exists():
        paths += [folder / f"W{len(paths) // 2}.npy", folder / f"b{len(paths) // 2}.npy"]
    if not paths:
        raise Bs4nnError(f"{folder}: no W0.npy ({expected})")
    return paths

"""Models by name for the stages after the exporter: any name becomes a bit-model folder.

The stages that run a model (golden model, RTL, testbench, board, the Python API) take every form of a
model's name (:mod:`bs4nn.export.naming`); a name that is not a bit-model folder is exported here, by
its family's exporter, into a cache folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from bs4nn.export.b1export import export_b1_model
from bs4nn.export.bitmodel import BitModel, load_bit_model
from bs4nn.export.exporter import ExportResult, ModelSource, export_model, resolve_source
from bs4nn.export.naming import ModelName, resolve_model


def export_source(source: ModelSource, out_dir: str | os.PathLike, **kwargs) -> ExportResult:
    """The bit-model folder of a source of either family (``kwargs`` as :func:`export_model`)."""
    return (export_b1_model if source.model == "b1" else export_model)(source, out_dir, **kwargs)


def model_cache_root() -> Path:
    """Where models named by something other than a bit-model folder are exported for the stages that need one."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bs4nn" / "models"


def named_bit_model(text: str, cache_root: str | os.PathLike | None = None) -> tuple[BitModel, ModelName]:
    """The bit-model folder of any model name: the folder itself, or a fresh export of the checkpoint.

    The export goes to ``cache_root/<stem>-<sha256 of the checkpoint>`` and is written anew each time
    (deterministic, well under a second without the accuracy run), so a newly shipped model is what runs.
    """
    name = resolve_model(text)
    if name.is_bit_model:
        return load_bit_model(name.path), name
    source = resolve_source(text)
    folder = Path(cache_root or model_cache_root()) / f"{name.stem}-{source.origin['sha256'][:16]}"
    export_source(source, folder, evaluate_accuracy=False)
    return load_bit_model(folder), name


def named_model(text: str, prog: str, say: Callable[[str], None] | None = None) -> BitModel:
    """:func:`named_bit_model`, saying on stderr what a name stood for (``PROG: model: ...``).

    A path given as the model itself (a bit-model folder, a checkpoint file) needs no such line.
    """
    model, name = named_bit_model(text)
    if name.was_renamed or not name.is_bit_model:
        where = "" if name.is_bit_model else f", exported to {model.path}"
        (say or _stderr)(f"{prog}: model: {name}{where}")
    return model


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)

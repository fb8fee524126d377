"""Matplotlib (Agg, no display) figures written atomically, and result files beside them."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bs4nn.fileio import atomic_write_bytes, atomic_write_text

DPI = 110


def new_figure(width: float = 6.4, height: float = 4.0, **kwargs: Any) -> tuple[plt.Figure, Any]:
    """A figure and its axes; always closed by :func:`save_figure`."""
    return plt.subplots(figsize=(width, height), **kwargs)


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Render to PNG in memory, write it atomically, free the figure."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=2, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    """JSON for numpy scalars/arrays and Decimals."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"

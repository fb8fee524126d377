"""Build and drive the portable C inference routine (``firmware/c``) from Python.

The C code is what runs on a microcontroller; on a PC it is wrapped in ``bs4nn_cli`` (see
``c/host_main.c``) so tests and benchmarks can compare it, bit for bit, with the golden model of
either family (BS4NN: :mod:`bs4nn.sim.golden`; B1: :mod:`bs4nn.sim.b1`, ``bs4nn_cli --b1``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.b1bits import pack_weight_rows
from bs4nn.export.bitmodel import pack_rows
from bs4nn.export.cheader import check_c_potentials
from bs4nn.sim.b1 import B1Network
from bs4nn.sim.golden import IntegerNetwork

C_PROGRAM = "bs4nn_cli"
C_EXAMPLE = "bs4nn_example"
RECORD_DTYPE = "<i4"
HEADER_VALUES = 2  # decision, decision_time


def c_source_dir() -> Path:
    """The folder holding bs4nn.c, bs4nn.h, host_main.c and the Makefile."""
    return Path(str(resources.files("bs4nn.firmware") / "c"))


def build_c_runtime(build_dir: str | os.PathLike, cc: str | None = None) -> Path:
    """Compile ``bs4nn_cli`` with ``make`` (warnings are errors) and return its path."""
    _make([], build_dir, cc)
    return Path(build_dir).resolve() / C_PROGRAM


def _make(targets: list[str], build_dir: str | os.PathLike, cc: str | None) -> None:
    build_dir = Path(build_dir).resolve()
    make = shutil.which("make")
    compiler = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if make is None or compiler is None:
        raise Bs4nnError("building the C runtime needs make and a C compiler (cc/gcc) on PATH")
    command = [make, "-s", "-C", str(c_source_dir()), f"BUILD_DIR={build_dir}", f"CC={compiler}", *targets]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Bs4nnError(f"C runtime build failed: {done.stderr.strip() or done.stdout.strip()}")


def build_c_example(model_dir: str | os.PathLike, build_dir: str | os.PathLike, cc: str | None = None) -> Path:
    """Compile ``bs4nn_example`` (model compiled in from ``model_dir/bs4nn_model.h``)."""
    model_dir = Path(model_dir).resolve()
    if not (model_dir / "bs4nn_model.h").is_file():
        raise Bs4nnError(f"{model_dir}: no bs4nn_model.h here (bs4nn-export writes it into the bit-model folder)")
    _make(["example", f"MODEL_DIR={model_dir}"], build_dir, cc)
    return Path(build_dir).resolve() / C_EXAMPLE


@dataclass
class CResult:
    """What the C routine answered for a batch (same fields as the golden model's)."""

    decision: np.ndarray  # (batch,) int32
    decision_time: np.ndarray  # (batch,) int32
    spike_times: list[np.ndarray]  # per layer (batch, n) int32, tmax = never fired (B1: the latency)
    counts: list[np.ndarray]  # per layer (batch, n) int32 final counters (B1: potentials, scores)


def model_arguments(network: IntegerNetwork | B1Network, folder: Path) -> list[str]:
    """``bs4nn_cli``'s model arguments (after the options), its weight and bias files written to
    ``folder``: the bit-model folder's own encodings (``layer{L}.bin``; B1 biases as int32)."""
    b1 = isinstance(network, B1Network)
    if b1:
        check_c_potentials(network)
    files = []
    for index, layer in enumerate(network.layers):
        path = folder / f"layer{index}.bin"
        path.write_bytes(pack_weight_rows(layer.weights, layer.weight_bits) if b1 else pack_rows(layer.signs))
        files.append(str(path))
    numbers = [network.tmax, network.imax, len(network.layers), *network.sizes]
    if not b1:
        return [*map(str, numbers + [layer.threshold_count for layer in network.layers]), *files]
    hidden = network.layers[:-1]
    for index, layer in enumerate(network.layers):
        path = folder / f"bias{index}.bin"
        path.write_bytes(np.asarray(layer.bias, dtype="<i4").tobytes())
        files.append(str(path))
    numbers += [layer.weight_bits for layer in network.layers]
    numbers += [layer.ramp for layer in hidden] + [layer.window for layer in hidden]
    return [*map(str, numbers), *files]


def run_c_inference(
    program: str | os.PathLike,
    network: IntegerNetwork | B1Network,
    *,
    pixels: np.ndarray | None = None,
    input_times: np.ndarray | None = None,
    early_exit: bool = False,
) -> CResult:
    """Run the C routine on a batch: 8-bit ``pixels`` (coded in C) or spike ``input_times``
    (``early_exit`` is BS4NN's; a B1 network ignores it)."""
    if (pixels is None) == (input_times is None):
        raise ValueError("give exactly one of pixels or input_times")
    sizes = network.sizes
    if pixels is not None:
        payload = np.ascontiguousarray(np.asarray(pixels, dtype=np.uint8).reshape(-1, sizes[0])).tobytes()
        batch = len(payload) // sizes[0]
    else:
        times = np.minimum(np.asarray(input_times).reshape(-1, sizes[0]), network.tmax).astype("<u2")
        payload, batch = times.tobytes(), times.shape[0]
    with tempfile.TemporaryDirectory(prefix="bs4nn_c_") as tmp:
        flags = (["--times"] if input_times is not None else []) + (["--early-exit"] if early_exit else [])
        flags += ["--b1"] if isinstance(network, B1Network) else []
        command = [str(program), *flags, *model_arguments(network, Path(tmp))]
        done = subprocess.run(command, input=payload, capture_output=True, check=False)
    if done.returncode != 0:
        raise Bs4nnError(f"C runtime failed: {done.stderr.decode(errors='replace').strip()}")
    total = sum(sizes[1:])
    records = np.frombuffer(done.stdout, dtype=RECORD_DTYPE).reshape(batch, HEADER_VALUES + 2 * total)
    bounds = np.cumsum([0, *sizes[1:]])
    times_block = records[:, HEADER_VALUES : HEADER_VALUES + total]
    counts_block = records[:, HEADER_VALUES + total :]
    return CResult(
        decision=records[:, 0].astype(np.int32),
        decision_time=records[:, 1].astype(np.int32),
        spike_times=[times_block[:, a:b].astype(np.int32) for a, b in itertools.pairwise(bounds)],
        counts=[counts_block[:, a:b].astype(np.int32) for a, b in itertools.pairwise(bounds)],
    )

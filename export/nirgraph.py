"""NIR graphs of BS4NN networks, both ways: how our models leave for other SNN tools and come back.

NIR (the Neuromorphic Intermediate Representation, package ``nir``) describes a network as
continuous-time nodes.  A BS4NN network is, per layer, ``Linear`` (weights ``alpha_q * B``, ``B`` the
+1/-1 signs) followed by ``IF`` (``dv/dt = r * I``, a spike when ``v > v_threshold``, then
``v <- v_reset``), between an ``Input`` of the pixels and an ``Output`` of the last layer's spikes.

Our neuron fires when its integer counter reaches ``threshold_count`` and never again.  Each input
spike moves the potential by exactly ``+-alpha_q``, so ``v = alpha_q * count`` and the strict NIR test
``v > alpha_q * (threshold_count - 1/2)`` is exactly ``count >= threshold_count``, with half a step of
float slack on either side.  Fire-once is a reset far below any reachable potential: after the spike
the counter can climb at most ``fan_in`` steps, so ``v_reset = -alpha_q * (fan_in + threshold_count)``
never reaches the threshold again.  What NIR has no field for (the input coding, ``tmax``/``imax``,
the decision and tie rules, the no-spike fallback) is written under the graph's ``metadata["bs4nn"]``.

Reading a graph takes chains of ``Linear``/``Affine`` (zero bias) + ``IF`` nodes only: the signs of
``r * W``, one alpha per layer (the mean magnitude, rounded to two decimals as every export is), and
the integer threshold that NIR's strict test means on that grid, ``floor(v_threshold / alpha_q) + 1``.
Anything else is refused with one line that names the node.  The imported network runs under the
BS4NN contract (:mod:`bs4nn.sim.semantics`): each neuron's first spike is all that counts.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import nir
import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import load_bit_model, quantize_alpha
from bs4nn.export.exporter import ModelSource, build_network, canonical_dataset, resolve_source
from bs4nn.export.naming import resolve_model
from bs4nn.fileio import sha256_path
from bs4nn.sim.golden import IntegerNetwork
from bs4nn.sim.semantics import CODING_RULE, IMAX, TMAX, exact_decimal

METADATA_KEY = "bs4nn"
INPUT_NODE = "input"
OUTPUT_NODE = "output"
DECISION_RULE = (
    "the output neuron with the earliest spike, ties to the lowest index; if no output spikes by step "
    "tmax-1, the output with the largest final potential, ties to the lowest index"
)
STEP_RULE = (
    "integer steps t = 0..tmax-1; at each step every spike of that step is integrated layer by layer "
    "with no synaptic delay, then the threshold is tested; only a neuron's first spike counts"
)
DEFAULT_DATASET = "mnist"
RUNNABLE_NODES = (nir.Input, nir.Output, nir.Linear, nir.Affine, nir.IF)


def nir_threshold(alpha_q: Decimal, threshold_count: int) -> float:
    """``v_threshold`` of a layer: half a step below the integer threshold on the ``alpha_q`` grid."""
    return float(alpha_q * (Decimal(threshold_count) - Decimal("0.5")))


def threshold_from_nir(v_threshold: float, alpha_q: Decimal) -> int:
    """The integer threshold NIR's ``v > v_threshold`` means when each spike moves ``v`` by ``alpha_q``."""
    return math.floor(exact_decimal(v_threshold) / alpha_q) + 1


def network_graph(network: IntegerNetwork, alphas_q: Sequence[Decimal], dataset: str) -> nir.NIRGraph:
    """The NIR graph of a deployed network (signs, integer thresholds) and its layers' ``alpha_q``."""
    if len(alphas_q) != len(network.layers):
        raise Bs4nnError(f"{len(alphas_q)} alphas for {len(network.layers)} layers")
    nodes: dict[str, nir.NIRNode] = {INPUT_NODE: nir.Input(np.array([network.layers[0].fan_in]))}
    edges, previous = [], INPUT_NODE
    for index, (layer, alpha_q) in enumerate(zip(network.layers, alphas_q, strict=True)):
        ones = np.ones(layer.fan_out)
        nodes[f"linear{index}"] = nir.Linear(weight=layer.weights().astype(np.float64) * float(alpha_q))
        nodes[f"if{index}"] = nir.IF(
            r=ones,
            v_threshold=ones * nir_threshold(alpha_q, layer.threshold_count),
            v_reset=ones * -float(alpha_q * (layer.fan_in + layer.threshold_count)),
        )
        edges += [(previous, f"linear{index}"), (f"linear{index}", f"if{index}")]
        previous = f"if{index}"
    nodes[OUTPUT_NODE] = nir.Output(np.array([network.layers[-1].fan_out]))
    edges.append((previous, OUTPUT_NODE))
    metadata = {
        METADATA_KEY: {
            "model": "bs4nn",
            "dataset": dataset,
            "tmax": network.tmax,
            "imax": network.imax,
            "coding": CODING_RULE,
            "steps": STEP_RULE,
            "decision": DECISION_RULE,
            "threshold_counts": [layer.threshold_count for layer in network.layers],
            "alphas_q": [str(alpha) for alpha in alphas_q],
        }
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def write_graph(graph: nir.NIRGraph, path: str | os.PathLike) -> Path:
    """Write ``graph`` to a new file ``path`` atomically; an existing file is never replaced."""
    path = Path(path)
    if path.exists():
        raise Bs4nnError(f"{path}: exists; choose a new file name (bs4nn never replaces a file it did not write)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.chmod(tmp, 0o666 & ~_umask())
        os.link(tmp, path)  # fails if path appeared meanwhile: never replaces
    except FileExistsError as error:
        raise Bs4nnError(f"{path}: exists; choose a new file name") from error
    except OSError as error:
        raise Bs4nnError(f"{path}: cannot write ({error.strerror or error})") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_graph(path: str | os.PathLike) -> nir.NIRGraph:
    """A NIR file as a graph; a missing, unreadable or malformed file is one :class:`Bs4nnError`."""
    path = Path(path)
    if not path.is_file():
        raise Bs4nnError(f"{path}: no such NIR file")
    try:
        graph = nir.read(path)
    except Exception as error:  # h5py and nir raise many types for a bad file; each is the user's file
        raise Bs4nnError(f"{path}: not a readable NIR file ({type(error).__name__}: {error})") from error
    if not isinstance(graph, nir.NIRGraph):
        raise Bs4nnError(f"{path}: holds a single {type(graph).__name__} node, not a graph")
    return graph


def layer_chain(graph: nir.NIRGraph) -> list[tuple[str, str]]:
    """``[(linear_name, if_name), ...]`` from the input to the output; refuses any other shape."""
    for name, node in graph.nodes.items():
        if not isinstance(node, RUNNABLE_NODES):
            raise Bs4nnError(
                f"node {name!r} is {type(node).__name__}: bs4nn runs only Input -> (Linear|Affine -> IF)... -> Output"
            )
    successors: dict[str, list[str]] = {}
    for source, target in graph.edges:
        successors.setdefault(source, []).append(target)
    inputs = [name for name, node in graph.nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise Bs4nnError(f"the graph has {len(inputs)} Input nodes; bs4nn needs exactly one")
    chain, seen, current = [], {inputs[0]}, inputs[0]
    while not isinstance(graph.nodes[current], nir.Output):
        following = successors.get(current, [])
        if len(following) != 1:
            raise Bs4nnError(f"node {current!r} feeds {len(following)} nodes; bs4nn runs a chain of layers")
        nxt = following[0]
        if nxt in seen:
            raise Bs4nnError(f"node {nxt!r} closes a loop: recurrent graphs are not BS4NN networks")
        seen.add(nxt)
        chain.append(nxt)
        current = nxt
    if seen != set(graph.nodes):
        stray = sorted(set(graph.nodes) - seen)[0]
        raise Bs4nnError(f"node {stray!r} is not on the input -> output chain")
    pairs = list(zip(chain[:-1:2], chain[1:-1:2], strict=True)) if len(chain) % 2 == 1 else None
    if not pairs:
        raise Bs4nnError("the chain must alternate Linear|Affine and IF nodes between Input and Output")
    for synapse, neuron in pairs:
        if not isinstance(graph.nodes[synapse], nir.Linear | nir.Affine):
            raise Bs4nnError(f"node {synapse!r} is {type(graph.nodes[synapse]).__name__}, expected Linear or Affine")
        if not isinstance(graph.nodes[neuron], nir.IF):
            raise Bs4nnError(f"node {neuron!r} is {type(graph.nodes[neuron]).__name__}, expected IF")
    return pairs


def _uniform(values: np.ndarray, what: str, node: str) -> float:
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or not np.isfinite(values).all() or (values != values[0]).any():
        raise Bs4nnError(f"node {node!r}: {what} must be one finite value for the whole layer")
    return float(values[0])


def graph_layers(graph: nir.NIRGraph) -> list[dict[str, Any]]:
    """Per layer: effective weights ``r * W``, ``alpha_q``, integer threshold, and the node names."""
    layers = []
    for synapse, neuron in layer_chain(graph):
        linear, cell = graph.nodes[synapse], graph.nodes[neuron]
        weight = np.asarray(linear.weight, dtype=np.float64)
        if weight.ndim != 2:
            raise Bs4nnError(f"node {synapse!r}: weight must be 2-D (out, in), got shape {weight.shape}")
        if isinstance(linear, nir.Affine) and np.any(np.asarray(linear.bias) != 0):
            raise Bs4nnError(f"node {synapse!r}: Affine with a non-zero bias; BS4NN neurons have no bias")
        r = _uniform(cell.r, "r", neuron)
        threshold = _uniform(cell.v_threshold, "v_threshold", neuron)
        if r <= 0 or threshold <= 0:
            raise Bs4nnError(f"node {neuron!r}: r and v_threshold must be positive, got {r} and {threshold}")
        if np.asarray(cell.r).size != weight.shape[0]:
            raise Bs4nnError(f"node {neuron!r}: {np.asarray(cell.r).size} neurons after {weight.shape[0]} outputs")
        effective = weight * r
        if not np.isfinite(effective).all() or not np.any(effective):
            raise Bs4nnError(f"node {synapse!r}: weights must be finite and not all zero")
        alpha_q = quantize_alpha(float(np.mean(np.abs(effective))))
        layers.append(
            {
                "weights": effective,
                "alpha_q": alpha_q,
                "threshold_count": threshold_from_nir(threshold, alpha_q),
                "nodes": [synapse, neuron],
                "v_threshold": threshold,
            }
        )
    for index in range(1, len(layers)):
        if layers[index]["weights"].shape[1] != layers[index - 1]["weights"].shape[0]:
            raise Bs4nnError(f"node {layers[index]['nodes'][0]!r}: fan-in does not match the layer before it")
    return layers


def graph_metadata(graph: nir.NIRGraph) -> Mapping[str, Any]:
    """Our own metadata of a graph written by bs4nn (empty for a foreign graph)."""
    meta = (graph.metadata or {}).get(METADATA_KEY, {})
    return meta if isinstance(meta, Mapping) else {}


def graph_time_coding(graph: nir.NIRGraph) -> tuple[int, int]:
    """``(tmax, imax)`` from the metadata, else the contract's defaults."""
    meta = graph_metadata(graph)
    try:
        tmax, imax = int(meta.get("tmax", TMAX)), int(meta.get("imax", IMAX))
    except (TypeError, ValueError) as error:
        raise Bs4nnError(f"metadata {METADATA_KEY}: tmax/imax must be integers ({error})") from error
    if tmax < 1 or imax < 1:
        raise Bs4nnError(f"metadata {METADATA_KEY}: tmax and imax must be positive, got {tmax} and {imax}")
    return tmax, imax


def graph_origin(path: str | os.PathLike, layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The manifest's ``source`` for an imported graph: the file, its hash, the nodes of each layer."""
    return {
        "kind": "nir",
        "path": str(path),
        "sha256": sha256_path(path),
        "layers": [{"nodes": layer["nodes"], "v_threshold": layer["v_threshold"]} for layer in layers],
    }


def source_from_nir(path: str | os.PathLike, dataset: str | None = None) -> ModelSource:
    """A NIR file as an export source: signs, ``alpha_q`` and the integer thresholds NIR's test means.

    ``theta`` is written half a step below the integer threshold on the ``alpha_q`` grid, so the one
    conversion (:func:`~bs4nn.export.bitmodel.integer_network`, ``ceil(theta / alpha_q)``) gives back
    exactly :func:`threshold_from_nir`'s count whatever float rounding does.
    """
    graph = read_graph(path)
    layers = graph_layers(graph)
    tmax, imax = graph_time_coding(graph)
    meta = graph_metadata(graph)
    return ModelSource(
        weights=[layer["weights"] for layer in layers],
        alphas=[float(layer["alpha_q"]) for layer in layers],
        thetas=[nir_threshold(layer["alpha_q"], layer["threshold_count"]) for layer in layers],
        tmax=tmax,
        imax=imax,
        dataset=dataset or str(meta.get("dataset", DEFAULT_DATASET)),
        origin=graph_origin(path, layers),
    )


def deployed_model(source: str, pretrained_root: str | os.PathLike | None = None) -> tuple[IntegerNetwork, list, str]:
    """``(network, alphas_q, dataset)`` of a model named on the command line, bit-model folders too.

    A bit-model folder gives exactly what it deploys; a checkpoint, run folder or shipped name goes
    through the one conversion of the exporter.
    """
    name = resolve_model(source, pretrained_root)
    if name.is_bit_model:
        folder = name.path
        model = load_bit_model(folder)
        family = model.manifest.get("model", "bs4nn")
        if family != "bs4nn":
            raise Bs4nnError(f"{folder}: a {family!r} model; NIR has no neuron for it (see README, NIR)")
        try:
            alphas_q = [Decimal(str(entry["alpha_q"])) for entry in model.manifest["layers"]]
        except (KeyError, TypeError, ArithmeticError) as error:
            raise Bs4nnError(f"{folder}: the manifest has no alpha_q per layer ({error})") from error
        return model.network, alphas_q, str(model.manifest.get("dataset", DEFAULT_DATASET))
    model_source = resolve_source(source, pretrained_root)
    network = build_network(model_source)
    return network, [quantize_alpha(alpha) for alpha in model_source.alphas], canonical_dataset(model_source.dataset)

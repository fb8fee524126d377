"""NIR export and import: shipped models round-trip exactly, and a graph means what NIR says it means.

The scoreboard here is independent of our code: a literal discrete-time run of the NIR graph itself
(``Linear`` then ``IF`` with ``dv/dt = r * I``, a spike when ``v > v_threshold``, reset to ``v_reset``,
spikes of a step passed on within the step), against the golden model of the imported network.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import nir
import numpy as np
import pytest

from bs4nn.export import cli
from bs4nn.export.exporter import build_network
from bs4nn.export.nirgraph import deployed_model, graph_layers, network_graph, read_graph, source_from_nir, write_graph
from bs4nn.sim.golden import run_golden
from bs4nn.sim.semantics import encode_images


def simulate_nir(graph: nir.NIRGraph, input_times: np.ndarray, tmax: int) -> list[np.ndarray]:
    """Every spike of every IF node, step by step, as NIR's equations say: ``(steps, batch, n)`` bools."""
    pairs = []
    name = next(n for n, node in graph.nodes.items() if isinstance(node, nir.Input))
    successors = dict(graph.edges)
    while not isinstance(graph.nodes[successors[name]], nir.Output):
        pairs.append((graph.nodes[successors[name]], graph.nodes[successors[successors[name]]]))
        name = successors[successors[name]]
    potentials = [np.zeros((len(input_times), cell.r.size)) for _, cell in pairs]
    spikes = [np.zeros((tmax, len(input_times), cell.r.size), bool) for _, cell in pairs]
    for step in range(tmax):
        incoming = (input_times == step).astype(np.float64)
        for index, (linear, cell) in enumerate(pairs):
            current = incoming @ np.asarray(linear.weight).T + getattr(linear, "bias", 0)
            potentials[index] += cell.r * current
            fired = potentials[index] > cell.v_threshold
            potentials[index][fired] = np.broadcast_to(cell.v_reset, potentials[index].shape)[fired]
            spikes[index][step] = fired
            incoming = fired.astype(np.float64)
    return spikes


def assert_nir_equals_golden(graph: nir.NIRGraph, network, input_times: np.ndarray) -> None:
    """Each IF neuron spikes at most once under NIR's reset, at the golden model's spike step."""
    spikes = simulate_nir(graph, input_times, network.tmax)
    golden = run_golden(network, input_times, workers=1)
    for layer, (fired, times) in enumerate(zip(spikes, golden.spike_times, strict=True)):
        assert fired.sum(axis=0).max() <= 1, f"layer {layer}: a neuron fired twice"
        first = np.where(fired.any(axis=0), fired.argmax(axis=0), network.tmax)
        np.testing.assert_array_equal(first, times, err_msg=f"layer {layer}")


SHIPPED = [("mnist", "mnist"), ("fashion", "fashion-mnist")]


def round_trip(tmp_path, name: str, dataset: str):
    """The shipped model, its graph on disk, and the network imported back from that file."""
    network, alphas_q, graph_dataset = deployed_model(name)
    assert graph_dataset == dataset
    path = write_graph(network_graph(network, alphas_q, dataset), tmp_path / f"{name}.nir")
    source = source_from_nir(path)
    back = build_network(source)
    assert source.dataset == dataset and (back.tmax, back.imax) == (network.tmax, network.imax)
    for before, after in zip(network.layers, back.layers, strict=True):
        np.testing.assert_array_equal(before.signs, after.signs)
        assert before.threshold_count == after.threshold_count
    return network, path, back


@pytest.mark.parametrize(("name", "dataset"), SHIPPED)
def test_shipped_models_round_trip_through_nir(tmp_path, name, dataset, data_dir):
    """Same sign bits and thresholds; the graph, run as NIR says, spikes as the golden model does."""
    from bs4nn.train.datasets import load_split

    _, path, back = round_trip(tmp_path, name, dataset)
    images, _ = load_split(dataset, "test", data_dir)
    assert_nir_equals_golden(read_graph(path), back, encode_images(images[:16]))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "dataset"), SHIPPED)
def test_shipped_models_decide_alike_on_every_test_image(tmp_path, name, dataset, data_dir):
    """The same decisions on all 10,000 test images, before and after the round trip."""
    from bs4nn.train.datasets import load_split

    network, _, back = round_trip(tmp_path, name, dataset)
    times = encode_images(load_split(dataset, "test", data_dir)[0])
    np.testing.assert_array_equal(run_golden(network, times).decision, run_golden(back, times).decision)


def test_hand_built_graph_imports_and_runs_as_nir_says(tmp_path):
    """A graph made with the nir API (Affine with zero bias, r = 2, thresholds on the grid) imports exactly."""
    rng = np.random.default_rng(7)
    signs0 = rng.choice([-1.0, 1.0], size=(40, 64))
    signs1 = rng.choice([-1.0, 1.0], size=(5, 40))
    graph = nir.NIRGraph(
        nodes={
            "pixels": nir.Input(np.array([64])),
            "fc1": nir.Affine(weight=0.25 * signs0, bias=np.zeros(40)),
            "lif_free": nir.IF(r=np.full(40, 2.0), v_threshold=np.full(40, 1.5), v_reset=np.full(40, -1e6)),
            "fc2": nir.Linear(weight=0.5 * signs1),
            "out_if": nir.IF(r=np.ones(5), v_threshold=np.full(5, 1.0), v_reset=np.full(5, -1e6)),
            "scores": nir.Output(np.array([5])),
        },
        edges=[("pixels", "fc1"), ("fc1", "lif_free"), ("lif_free", "fc2"), ("fc2", "out_if"), ("out_if", "scores")],
    )
    path = tmp_path / "hand.nir"
    nir.write(path, graph)
    layers = graph_layers(read_graph(path))
    # v = 0.5 per input spike vs 1.5 strictly: 4 counts; v = 0.5 per spike vs 1.0 strictly: 3 counts
    assert [layer["threshold_count"] for layer in layers] == [4, 3]
    network = build_network(source_from_nir(path))
    times = rng.integers(0, 40, size=(30, 64)).astype(np.int32)
    times[rng.random(times.shape) < 0.3] = network.tmax
    assert_nir_equals_golden(read_graph(path), network, times)


def test_cli_round_trip_reports_the_same_accuracy(tmp_path, capsys):
    assert cli.main(["--to-nir", "mnist", "-o", str(tmp_path / "m.nir")]) == 0
    assert "784-600-10" in capsys.readouterr().out
    assert cli.main(["--from-nir", str(tmp_path / "m.nir"), "-o", str(tmp_path / "bits"), "--quiet"]) == 0
    assert "test accuracy (golden model, mnist test, 10000 images): 97.17 %" in capsys.readouterr().out
    assert cli.main(["--to-nir", str(tmp_path / "bits"), "-o", str(tmp_path / "again.nir")]) == 0
    first, again = (graph_layers(read_graph(tmp_path / n)) for n in ("m.nir", "again.nir"))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["weights"], b["weights"])
        assert a["threshold_count"] == b["threshold_count"]


def chain(*middle: tuple[str, nir.NIRNode]) -> nir.NIRGraph:
    nodes = {"in": nir.Input(np.array([4])), **dict(middle), "out": nir.Output(np.array([2]))}
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(names)), type_check=False)


def if_node(n: int = 2, threshold=1.0) -> nir.IF:
    return nir.IF(r=np.ones(n), v_threshold=np.broadcast_to(threshold, (n,)).astype(float))


WEIGHTS = np.array([[1.0, -1.0, 1.0, 1.0], [-1.0, -1.0, 1.0, -1.0]])
REFUSED = {
    "LIF": (
        chain(("fc", nir.Linear(WEIGHTS)), ("lif", nir.LIF(np.ones(2), np.ones(2), np.zeros(2), np.ones(2)))),
        "node 'lif' is LIF",
    ),
    "bias": (chain(("fc", nir.Affine(WEIGHTS, np.array([0.0, 0.5]))), ("if", if_node())), "non-zero bias"),
    "thresholds": (chain(("fc", nir.Linear(WEIGHTS)), ("if", if_node(threshold=[1.0, 2.0]))), "v_threshold"),
    "no neuron": (chain(("fc", nir.Linear(WEIGHTS))), "alternate"),
    "delay": (chain(("fc", nir.Linear(WEIGHTS)), ("wait", nir.Delay(np.ones(2))), ("if", if_node())), "is Delay"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unrunnable_graphs_are_refused_naming_the_node(tmp_path, capsys, case):
    graph, message = REFUSED[case]
    nir.write(tmp_path / "g.nir", graph)
    code = cli.main(["--from-nir", str(tmp_path / "g.nir"), "-o", str(tmp_path / "bits"), "--no-eval"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "bits").exists()


def test_recurrent_graph_is_refused(tmp_path, capsys):
    nodes = {
        "in": nir.Input(np.array([2])),
        "fc": nir.Linear(np.ones((2, 2))),
        "if": if_node(),
        "out": nir.Output(np.array([2])),
    }
    graph = nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "if"), ("if", "out"), ("if", "fc")])
    nir.write(tmp_path / "r.nir", graph)
    assert cli.main(["--from-nir", str(tmp_path / "r.nir"), "-o", str(tmp_path / "bits"), "--no-eval"]) == 2
    assert "feeds 2 nodes" in capsys.readouterr().err


@pytest.mark.parametrize("payload", [b"", b"\x89HDF\r\n\x1a\n" + bytes(100), b"not a graph at all"])
def test_unreadable_files_are_one_line(tmp_path, capsys, payload):
    (tmp_path / "bad.nir").write_bytes(payload)
    assert cli.main(["--from-nir", str(tmp_path / "bad.nir"), "-o", str(tmp_path / "bits"), "--no-eval"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable NIR file" in err[0]


def test_to_nir_never_replaces_a_file(tmp_path, capsys):
    target = tmp_path / "notes.nir"
    target.write_text("mine")
    assert cli.main(["--to-nir", "mnist", "-o", str(target)]) == 2
    assert "exists" in capsys.readouterr().err and target.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.nir"]


def test_exported_graph_states_the_contract_in_metadata(tmp_path):
    network, alphas_q, dataset = deployed_model("mnist")
    graph = read_graph(write_graph(network_graph(network, alphas_q, dataset), Path(tmp_path) / "m.nir"))
    meta = graph.metadata["bs4nn"]
    assert int(meta["tmax"]) == 256 and int(meta["imax"]) == 255 and meta["model"] == "bs4nn"
    assert [int(c) for c in meta["threshold_counts"]] == [layer.threshold_count for layer in network.layers]
    assert "ties to the lowest index" in meta["decision"] and "floor" in meta["coding"]

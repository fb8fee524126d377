"""Distilling a B1 or BS4NN (snapshot-ce) network from a float ReLU teacher (preset fields ``teacher``,
``distill_weight``, ``distill_temperature``): the loss and its gradient, that the teacher is what the student learns,
resume, and the refusals."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bs4nn import cli as bs4nn_cli
from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import integer_network
from bs4nn.sim.b1 import run_b1
from bs4nn.sim.golden import run_golden
from bs4nn.sim.semantics import encode_images
from bs4nn.train.checkpoint import load_checkpoint
from bs4nn.train.datasets import load_split
from bs4nn.train.experiments import baseline, relu
from bs4nn.train.losses import distilled_cross_entropy, softmax_cross_entropy
from bs4nn.train.presets import PRESETS
from bs4nn.train.rules.b1 import b1_checkpoint_network
from bs4nn.train.run import RunOptions
from bs4nn.train.trainer import teacher_ensemble_logits, train

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = os.environ.get("BS4NN_DATA", str(REPO.parent / "shared" / "data"))
PERMUTATION = np.array([3, 7, 0, 9, 1, 8, 2, 6, 4, 5])
"""The class each of the permuted teacher's outputs stands for: output ``PERMUTATION[c]`` is class ``c``."""


@pytest.mark.parametrize(("weight", "temperature"), [(0.3, 3.0), (0.9, 1.5), (1.0, 6.0)])
def test_gradient_matches_finite_differences(weight, temperature):
    rng = np.random.default_rng(7)
    logits, teacher = rng.normal(0, 2, (5, 4)), rng.normal(0, 3, (5, 4))
    labels = rng.integers(0, 4, 5)
    _, grad = distilled_cross_entropy(logits, labels, teacher, weight, temperature, np)
    step = 1e-6
    for index in np.ndindex(logits.shape):
        logits[index] += step
        up = distilled_cross_entropy(logits, labels, teacher, weight, temperature, np)[0]
        logits[index] -= 2 * step
        down = distilled_cross_entropy(logits, labels, teacher, weight, temperature, np)[0]
        logits[index] += step
        assert grad[index] == pytest.approx((up - down) / (2 * step), rel=1e-5, abs=1e-8)


def test_no_weight_is_the_cross_entropy_and_a_matched_teacher_adds_nothing():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(0, 2, (6, 10)), rng.integers(0, 10, 6)
    plain_loss, plain_grad = softmax_cross_entropy(logits, labels, np)
    loss, grad = distilled_cross_entropy(logits, labels, rng.normal(0, 2, (6, 10)), 0.0, 4.0, np)
    assert loss == plain_loss and np.array_equal(grad, plain_grad)
    loss, grad = distilled_cross_entropy(logits, labels, logits.copy(), 0.4, 4.0, np)
    assert loss == pytest.approx(0.6 * plain_loss) and np.allclose(grad, 0.6 * plain_grad)


@pytest.fixture(scope="module")
def permuted_teacher(tmp_path_factory) -> Path:
    """A 784-64-10 float ReLU net trained on 3,500 MNIST images, its outputs then permuted
    (:data:`PERMUTATION`): a teacher whose answers no label agrees with."""
    images, labels = load_split("mnist", "train", DATA_DIR, download=False)
    config = baseline.BaselineConfig(sizes=[784, 64, 10], epochs=3, validation=500, seed=5, lr_start=5e-3)
    net = relu.Relu()
    result = baseline.train_baseline(net, config, images[:3500], labels[:3500], images[:10], labels[:10])
    out = tmp_path_factory.mktemp("teacher")
    output = result.layers[-1]
    inverse = np.argsort(PERMUTATION)  # row r of the permuted layer is the original's class inverse[r]
    result.layers[-1] = relu.ReluLayer(output.weights[inverse], output.bias[inverse])
    net.write_extra(result.layers, out)
    return out


def test_the_student_learns_the_teachers_answers_not_the_labels(permuted_teacher, tmp_path):
    """Pure distillation (weight 1) from the permuted teacher: the student's decisions on 1,000 test
    images follow the teacher's permutation of the classes, so its accuracy against the labels is
    near zero and against the permuted labels far above chance -- the teacher's logits, not the
    labels, moved it."""
    preset = replace(PRESETS["tiny-b1"], teacher=str(permuted_teacher), distill_weight=1.0, distill_temperature=2.0)
    train(preset, RunOptions(out_dir=tmp_path, progress=False, threads=1, test=False), log=lambda _: None)
    network = b1_checkpoint_network(load_checkpoint(tmp_path / "best.npz"))
    images, labels = load_split("mnist", "test", DATA_DIR, download=False)
    decisions = run_b1(network, encode_images(images[:1000])).decision
    assert (decisions == PERMUTATION[labels[:1000]]).mean() >= 0.6  # measured 0.73
    assert (decisions == labels[:1000]).mean() <= 0.15
    recorded = load_checkpoint(tmp_path / "best.npz").hyperparameters["run"]["preset"]
    assert recorded["teacher"] == str(permuted_teacher) and recorded["distill_weight"] == 1.0
    assert set(recorded["teacher_sha256"]) == {"W0.npy", "b0.npy", "W1.npy", "b1.npy"}


def test_a_bs4nn_snapshot_ce_student_learns_the_teachers_answers(permuted_teacher, tmp_path):
    """The same with the snapshot-ce rule (BS4NN): the first-spike decisions of the exported
    network, scored by the BS4NN golden model, follow the permuted teacher, not the labels.  The
    last epoch's network (``checkpoint.npz``): ``best.npz`` is chosen on the labels, which this
    student unlearns.  Without a teacher, the same run decides 54 % of the labels right."""
    preset = replace(
        PRESETS["tiny-ce"], readout_epochs=0, teacher=str(permuted_teacher), distill_weight=1.0, distill_temperature=2.0
    )
    train(preset, RunOptions(out_dir=tmp_path, progress=False, threads=1, test=False), log=lambda _: None)
    c = load_checkpoint(tmp_path / "checkpoint.npz")
    network = integer_network([np.asarray(w) for w in c.weights], c.alphas, c.thetas, c.tmax, c.imax)
    images, labels = load_split("mnist", "test", DATA_DIR, download=False)
    decisions = run_golden(network, encode_images(images[:1000])).decision
    assert (decisions == PERMUTATION[labels[:1000]]).mean() >= 0.4  # measured 0.537
    assert (decisions == labels[:1000]).mean() <= 0.1  # measured 0.032


class InterruptedRunError(Exception):
    pass


def stop_after_first_epoch(line: str) -> None:
    if line.startswith("epoch 1:"):
        raise InterruptedRunError


def test_resume_with_a_teacher_equals_uninterrupted_and_refuses_a_changed_one(permuted_teacher, tmp_path):
    teacher = Path(shutil.copytree(permuted_teacher, tmp_path / "teacher"))
    preset = replace(
        PRESETS["tiny-b1"], train_images=600, validation_images=200, teacher=str(teacher), distill_weight=0.5
    )
    train(preset, RunOptions(out_dir=tmp_path / "whole", progress=False, test=False), log=lambda _: None)
    with pytest.raises(InterruptedRunError):
        train(preset, RunOptions(out_dir=tmp_path / "parts", progress=False, test=False), log=stop_after_first_epoch)
    train(preset, RunOptions(out_dir=tmp_path / "parts", progress=False, test=False, resume=True), log=lambda _: None)
    first, second = (load_checkpoint(tmp_path / run / "checkpoint.npz") for run in ("whole", "parts"))
    for a, b in zip([*first.weights, *first.biases], [*second.weights, *second.biases], strict=True):
        assert np.array_equal(a, b)
    np.save(teacher / "b1.npy", np.load(teacher / "b1.npy") + 1)  # same folder, other network
    with pytest.raises(Bs4nnError, match="was made with other settings"):
        train(preset, RunOptions(out_dir=tmp_path / "parts", progress=False, test=False, resume=True), log=print)


def run_bs4nn(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = bs4nn_cli.main(list(argv))
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def test_refusals(permuted_teacher, tmp_path, capsys):
    """One line, exit 2, no run folder: a teacher without a weight (and the reverse), a teacher for
    a BS4NN preset, a folder without weights, a teacher with other outputs, an empty ensemble member."""
    teacher = f"teacher={permuted_teacher}"
    nine = Path(shutil.copytree(permuted_teacher, tmp_path / "nine"))  # 9 outputs: not a 10-class teacher
    np.save(nine / "W1.npy", np.load(nine / "W1.npy")[:9])
    np.save(nine / "b1.npy", np.load(nine / "b1.npy")[:9])
    cases = [
        (["--preset", "tiny-b1", "--set", teacher], "a teacher and a distill_weight > 0 go together"),
        (["--preset", "tiny-b1", "--set", "distill_weight=0.5"], "a teacher and a distill_weight > 0 go together"),
        (["--preset", "tiny", "--set", teacher, "--set", "distill_weight=0.5"], "b1 option, not temporal's"),
        (["--preset", "tiny-b1", "--set", f"teacher={tmp_path}", "--set", "distill_weight=0.5"], "no W0.npy"),
        (["--preset", "tiny-b1", "--set", "teacher=no-such", "--set", "distill_weight=0.5"], "nor a shipped teacher"),
        (["--preset", "mnist-b1", "--set", f"teacher={nine}", "--set", "distill_weight=0.5"], "to 9 classes"),
        (["--preset", "tiny-b1", "--set", f"{teacher},", "--set", "distill_weight=0.5"], "an empty name in the list"),
        (["--preset", "tiny-b1", "--set", teacher, "--set", "distill_weight=1.5"], "distill_weight must be in [0, 1]"),
    ]
    for flags, message in cases:
        code, err = run_bs4nn(capsys, "train", "--out", str(tmp_path / "run"), *flags)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (flags, err)
        assert not (tmp_path / "run").exists()


def test_an_ensemble_distils_from_the_mean_of_its_teachers_logits(permuted_teacher, tmp_path):
    """``teacher=A,B``: the batch's teacher logits are the mean of A's and B's; the signature holds
    every file of both; an ensemble of one teacher twice trains bitwise as that teacher alone."""
    other = Path(shutil.copytree(permuted_teacher, tmp_path / "other"))
    np.save(other / "b1.npy", np.load(other / "b1.npy") + np.arange(10, dtype=np.float32))
    teachers = [relu.load_relu_layers(str(path), np) for path in (permuted_teacher, other)]
    inputs = relu.Relu().inputs(load_split("mnist", "test", DATA_DIR, download=False)[0][:50], np)
    alone = [relu.forward(layers, inputs, np)[0] for layers in teachers]
    np.testing.assert_allclose(teacher_ensemble_logits(teachers, inputs, np), (alone[0] + alone[1]) / 2, rtol=1e-6)
    tiny = replace(PRESETS["tiny-b1"], train_images=600, validation_images=200, epochs=1)
    runs = {
        "one": str(permuted_teacher),
        "twice": f"{permuted_teacher},{permuted_teacher}",
        "pair": f"{permuted_teacher},{other}",
    }
    for name, teacher in runs.items():
        train(
            replace(tiny, teacher=teacher, distill_weight=0.5),
            RunOptions(out_dir=tmp_path / name, progress=False, test=False),
            log=lambda _: None,
        )
    one, twice, pair = (load_checkpoint(tmp_path / name / "checkpoint.npz") for name in runs)
    assert all(np.array_equal(a, b) for a, b in zip(one.weights, twice.weights, strict=True))
    assert not np.array_equal(one.weights[1], pair.weights[1])
    assert set(pair.hyperparameters["run"]["preset"]["teacher_sha256"]) == {
        f"{index}/{name}" for index in (0, 1) for name in ("W0.npy", "b0.npy", "W1.npy", "b1.npy")
    }


def test_a_shipped_teacher_is_found_by_name(permuted_teacher, tmp_path, monkeypatch):
    """A name that is not a path is looked up among the shipped teachers (``train/pretrained/teachers``)."""
    monkeypatch.setattr(relu, "SHIPPED_TEACHERS", tmp_path)
    shutil.copytree(permuted_teacher, tmp_path / "digits")
    assert relu.teacher_files("digits") == [
        tmp_path / "digits" / name for name in ("W0.npy", "b0.npy", "W1.npy", "b1.npy")
    ]
    layers = relu.load_relu_layers("digits", np)
    np.testing.assert_array_equal(layers[1].bias, np.load(permuted_teacher / "b1.npy"))


def test_the_shipped_fashion_teacher_scores_what_it_records():
    """``fashion-b1``'s teacher, found by name, is the 784-1000-10 float reference its ``relu.json``
    describes: its test accuracy on the 10,000 Fashion-MNIST test images is the recorded one."""
    assert PRESETS["fashion-b1"].teacher == "fashion-relu"
    layers = relu.load_relu_layers("fashion-relu", np)
    info = json.loads((relu.SHIPPED_TEACHERS / "fashion-relu" / "relu.json").read_text())
    assert info["dataset"] == "fashion-mnist" and info["config"]["validation"] == 5000
    images, labels = load_split("fashion-mnist", "test", DATA_DIR, download=False)
    net = relu.Relu()
    decisions = baseline.predict(net, layers, net.inputs(images, np))
    assert (decisions == labels).mean() == info["test_accuracy"]

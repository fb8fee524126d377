"""The reliability promise (README "Reliability promise"), one test per case of issue 23: bad input
is one line on stderr and exit status 2, never a traceback; the user's files stay as they were."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bs4nn.cli import main as bs4nn_main
from bs4nn.errors import Bs4nnError
from bs4nn.export.bitmodel import MANIFEST, SELF_DIGEST, manifest_digest, write_bit_model
from bs4nn.export.cli import main as export_main
from bs4nn.sim.golden import random_network
from bs4nn.train.checkpoint import Checkpoint, save_checkpoint
from bs4nn.train.datasets import IMAGE_MAGIC, read_idx


def cli(capsys, *argv: str, entry=bs4nn_main) -> tuple[int, str, str]:
    try:
        code = entry(list(argv))
    except SystemExit as stop:  # argparse's own exit
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(result: tuple[int, str, str], *fragments: str) -> None:
    """Exit 2, exactly one line on stderr, no traceback, and the line says what is wrong."""
    code, _, err = result
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tiny_checkpoint(**changes) -> Checkpoint:
    rng = np.random.default_rng(0)
    fields = dict(
        sizes=[784, 12, 10],
        weights=[rng.normal(size=(12, 784)).astype(np.float32), rng.normal(size=(10, 12)).astype(np.float32)],
        alphas=[1.0, 1.0],
        thetas=[3.0, 2.0],
    )
    return Checkpoint(**{**fields, **changes})


@pytest.fixture
def bits(tmp_path: Path) -> Path:
    return write_bit_model(random_network([784, 12, 10], [3, 2], seed=1, tmax=16), tmp_path / "bits")


# ------------------------------------------------------------------ data loss


def test_export_into_its_own_folder_keeps_the_users_other_files(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bits"
    assert cli(capsys, "--to-bits", "mnist", "-o", str(out), "--no-eval", entry=export_main)[0] == 0
    (out / "core.v").write_text("module mine; endmodule\n")
    (out / "README").write_text("my notes\n")
    assert cli(capsys, "--to-bits", "mnist", "-o", str(out), "--no-eval", "--lanes", "8", entry=export_main)[0] == 0
    assert (out / "core.v").read_text() == "module mine; endmodule\n" and (out / "README").read_text() == "my notes\n"
    assert json.loads((out / MANIFEST).read_text())["lanes"] == 8


def test_export_into_a_folder_written_before_ownership_records_keeps_the_users_files(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bits"
    assert cli(capsys, "--to-bits", "mnist", "-o", str(out), "--no-eval", entry=export_main)[0] == 0
    (out / ".bs4nn-output.json").unlink()  # as an older bs4nn-export left it
    (out / "core.v").write_text("mine")
    assert cli(capsys, "--to-bits", "mnist", "-o", str(out), "--no-eval", entry=export_main)[0] == 0
    assert (out / "core.v").read_text() == "mine"


@pytest.mark.parametrize("target", ["user folder", "file"])
def test_build_never_replaces_what_it_did_not_write(tmp_path: Path, capsys, bits: Path, target: str) -> None:
    out = tmp_path / "out"
    if target == "file":
        out.write_text("precious")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("my notes")
        (out / "old-run").mkdir()
        (out / "old-run" / "report.json").write_text("{}")
    before = out.read_bytes() if target == "file" else files_of(out)
    assert_refused(cli(capsys, "build", "--manifest", str(bits), "-o", str(out)), str(out), "refusing to replace")
    assert (out.read_bytes() if target == "file" else files_of(out)) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bits", "out"]  # no .out.old, no temporaries


def test_report_refuses_a_folder_it_did_not_write(tmp_path: Path, capsys, bits: Path) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.md").write_text("mine")
    result = cli(capsys, "report", "--model", str(bits), "--out", str(out), "--images", "10")
    assert_refused(result, "refusing to replace")
    assert files_of(out) == {"todo.md": b"mine"}


def test_train_refuses_to_start_over_a_finished_run(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    save_checkpoint(run / "best.npz", tiny_checkpoint())
    before = files_of(run)
    assert_refused(cli(capsys, "train", "--preset", "tiny", "--out", str(run)), "--resume", "fresh folder")
    assert files_of(run) == before
    (tmp_path / "file").write_text("x")
    assert_refused(cli(capsys, "train", "--preset", "tiny", "--out", str(tmp_path / "file")), "is a file")


def test_a_full_disk_is_one_line_and_the_old_output_stays(tmp_path: Path) -> None:
    """A real write failure: the child may write at most 64 KiB per file (RLIMIT_FSIZE -> EFBIG)."""
    out = tmp_path / "bits"
    export = [sys.executable, "-m", "bs4nn.export.cli", "--to-bits", "mnist", "-o", str(out), "--no-eval"]
    assert subprocess.run(export, capture_output=True, check=False).returncode == 0
    before = files_of(out)

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    done = subprocess.run(
        [*export, "--lanes", "8"], capture_output=True, text=True, preexec_fn=small_files, check=False
    )
    assert_refused((done.returncode, done.stdout, done.stderr), f"{out}: cannot write (File too large)")
    assert files_of(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bits"]


def test_a_terminated_export_leaves_no_litter(tmp_path: Path) -> None:
    """SIGTERM unwinds the atomic writes; and litter of a kill -9 goes on the next run."""
    dead = tmp_path / ".bits.999999999-0badc0de.tmp"  # PID that cannot exist
    dead.mkdir()
    (dead / "layer0.bin").write_bytes(b"")
    (tmp_path / ".bits.k2j4h1x0.tmp").write_bytes(b"")  # an older bs4nn's mkstemp litter
    out = tmp_path / "bits"
    export = [sys.executable, "-m", "bs4nn.export.cli", "--to-bits", "mnist", "-o", str(out), "--no-eval"]
    assert subprocess.run(export, capture_output=True, check=False).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bits"]


# ------------------------------------------------------------------ the manifest guards itself


def edit_manifest(bits: Path, change) -> None:
    manifest = json.loads((bits / MANIFEST).read_text())
    change(manifest)
    (bits / MANIFEST).write_text(json.dumps(manifest, indent=2))


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["layers"][0].update(threshold_count=1),
        lambda m: m.update(tmax=8),
        lambda m: m.update(lanes=8),
        lambda m: m["layers"][1].update(bias=[0] * 10),  # a field of a network family yet to come
        lambda m: m.update(model="b1"),
        lambda m: m.pop("imax"),
    ],
    ids=["threshold_count", "tmax", "lanes", "new layer field", "new top field", "removed field"],
)
def test_a_manifest_edited_by_hand_is_refused(capsys, bits: Path, change) -> None:
    edit_manifest(bits, change)
    for argv in (["--from-bits", str(bits)],):
        assert_refused(cli(capsys, *argv, entry=export_main), "do not match its manifest_sha256")
    assert_refused(cli(capsys, "sim", "golden", "--manifest", str(bits)), "manifest_sha256")


def test_a_resealed_threshold_edit_is_caught_by_its_derivation(tmp_path: Path, capsys) -> None:
    """Re-hashing the manifest does not help: the count must be ceil(theta / alpha_q)."""
    out = tmp_path / "bits"
    assert cli(capsys, "--to-bits", "mnist", "-o", str(out), "--no-eval", entry=export_main)[0] == 0

    def lower(manifest: dict) -> None:
        manifest["layers"][0]["threshold_count"] = 3
        manifest[SELF_DIGEST] = manifest_digest(manifest)

    edit_manifest(out, lower)
    assert_refused(cli(capsys, "--from-bits", str(out), entry=export_main), "is not ceil(theta / alpha_q)")


@pytest.mark.parametrize("name", ["/etc/hostname", "../outside.bin", "sub/layer0.bin", ".."])
def test_manifest_file_names_outside_the_folder_are_refused(tmp_path: Path, capsys, bits: Path, name: str) -> None:
    (tmp_path / "outside.bin").write_bytes((bits / "layer0.bin").read_bytes())

    def point_outside(manifest: dict) -> None:
        manifest["files"][name] = manifest["files"]["layer0.bin"]
        manifest["layers"][0]["weights"] = name
        manifest[SELF_DIGEST] = manifest_digest(manifest)

    edit_manifest(bits, point_outside)
    assert_refused(cli(capsys, "--from-bits", str(bits), entry=export_main), "not a plain name inside the folder")


@pytest.mark.parametrize(
    "text", ["[1, 2]", '{"format": "bs4nn-bit-model", "version": 1, "files": []}', "null", '"text"']
)
def test_a_manifest_of_the_wrong_shape_is_refused(capsys, bits: Path, text: str) -> None:
    manifest = json.loads(text)
    if isinstance(manifest, dict):
        manifest[SELF_DIGEST] = manifest_digest(manifest)
    (bits / MANIFEST).write_text(json.dumps(manifest))
    assert_refused(cli(capsys, "--from-bits", str(bits), entry=export_main), str(bits / MANIFEST))


# ------------------------------------------------------------------ data faults


@pytest.fixture(scope="module")
def damaged_data(tmp_path_factory, data_dir: Path) -> Path:
    """MNIST with one flipped byte in the compressed body of each image file."""
    root = tmp_path_factory.mktemp("damaged")
    shutil.copytree(data_dir / "mnist", root / "mnist")
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        payload = bytearray((root / "mnist" / name).read_bytes())
        payload[len(payload) // 2] ^= 0xFF
        (root / "mnist" / name).write_bytes(bytes(payload))
    return root


def test_a_flipped_byte_in_a_gz_is_one_line_everywhere(tmp_path: Path, capsys, damaged_data: Path, bits: Path) -> None:
    data = ["--data-dir", str(damaged_data)]
    train = ["train", "--preset", "tiny", "--out", str(tmp_path / "run"), "--quiet", *data]
    assert_refused(cli(capsys, *train), "cannot decompress", "corrupt")
    assert_refused(cli(capsys, "sim", "golden", "--manifest", str(bits), *data), "cannot decompress")
    export = ["--to-bits", "mnist", "-o", str(tmp_path / "b"), "--quiet", *data]
    assert_refused(cli(capsys, *export, entry=export_main), "cannot decompress")


def test_an_unreadable_data_file_is_not_called_corrupt(tmp_path: Path) -> None:
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    images.mkdir()  # a folder where the file should be: reading fails as for a file without permission
    with pytest.raises(Bs4nnError, match="cannot read") as caught:
        read_idx(images, IMAGE_MAGIC, (28, 28))
    assert "corrupt" not in str(caught.value)


def test_a_split_with_no_images_is_refused(tmp_path: Path, capsys, bits: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte").write_bytes(np.array([2051, 0, 28, 28], dtype=">u4").tobytes())
    (folder / "t10k-labels-idx1-ubyte").write_bytes(np.array([2049, 0], dtype=">u4").tobytes())
    result = cli(capsys, "sim", "golden", "--manifest", str(bits), "--data-dir", str(tmp_path))
    assert_refused(result, "holds no images")


# ------------------------------------------------------------------ checkpoints


def write_npz(path: Path, header, weights=None) -> Path:
    arrays = {"header": np.array(json.dumps(header))}
    arrays.update(weights or {})
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h.pop("sizes"), "header without sizes"),
        (lambda h: h.update(tmax="abc"), "tmax 'abc'"),
        (lambda h: h.update(alphas=[float("nan"), 1.0]), "alphas [nan, 1.0]"),
        (lambda h: h.update(thetas=[-3.0, 2.0]), "thetas [-3.0, 2.0]"),
        (lambda h: h.update(sizes=[784, "12", 10]), "sizes"),
    ],
    ids=["no sizes", "tmax text", "nan alpha", "negative theta", "size text"],
)
def test_a_bad_checkpoint_header_is_one_line(tmp_path: Path, capsys, change, message: str) -> None:
    good = tiny_checkpoint()
    header = good.header()
    change(header)
    weights = {f"weight_{i}": w for i, w in enumerate(good.weights)}
    path = write_npz(tmp_path / "bad.npz", header, weights)
    assert_refused(cli(capsys, "--to-bits", str(path), "-o", str(tmp_path / "b"), entry=export_main), message)


def test_a_checkpoint_header_that_is_a_list_is_one_line(tmp_path: Path, capsys) -> None:
    path = write_npz(tmp_path / "list.npz", [1, 2, 3])
    assert_refused(cli(capsys, "--to-bits", str(path), "-o", str(tmp_path / "b"), entry=export_main), "JSON object")


def test_resume_of_a_checkpoint_with_nan_alpha_is_refused(tmp_path: Path, capsys, data_dir: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    header = tiny_checkpoint().header()
    header["alphas"] = [float("nan"), 1.0]
    weights = {f"weight_{i}": w for i, w in enumerate(tiny_checkpoint().weights)}
    write_npz(run / "checkpoint.npz", header, weights)
    argv = ["train", "--preset", "tiny", "--out", str(run), "--resume", "--quiet", "--data-dir", str(data_dir)]
    assert_refused(cli(capsys, *argv), "alphas [nan, 1.0]")


# ------------------------------------------------------------------ values accepted that should not be


@pytest.mark.parametrize(
    "setting", ["eta=-1.0", "epochs=0", "decay_every=0", "batch_size=0", "train_images=0", "mu=-1", "gamma=inf"]
)
def test_set_applies_the_flags_range_checks(capsys, setting: str) -> None:
    key = setting.split("=")[0]
    assert_refused(cli(capsys, "train", "--preset", "tiny", "--set", setting), f"--set '{setting}': {key} must be")


@pytest.mark.parametrize(
    ("flag", "value"), [("--eta", "-1.0"), ("--epochs", "0"), ("--decay-every", "0"), ("--batch-size", "0")]
)
def test_named_flags_use_the_same_validator(capsys, flag: str, value: str) -> None:
    key = flag[2:].replace("-", "_")
    assert_refused(cli(capsys, "train", "--preset", "tiny", flag, value), f"argument {flag}: {key} must be")


def test_usage_errors_are_one_line(capsys) -> None:
    assert_refused(cli(capsys, "train", "--threads", "5"), "invalid choice: 5")
    assert_refused(cli(capsys, "sim", "golden"), "--manifest", "--help")
    assert_refused(cli(capsys, "nope"), "invalid choice")
    assert_refused(cli(capsys, "--lanes", "x", entry=export_main), "expected an integer")
    assert_refused(
        cli(capsys, "experiment", "threshold", "--model", "m", "--thetas", "-1"), "must be a finite number >= 0"
    )
    assert_refused(cli(capsys, "sim", "cocotb", "--seed", "-1"), "argument --seed: must be >= 0")
    assert_refused(cli(capsys, "train", "--seed", "-1"), "argument --seed: must be >= 0")


def test_writing_a_file_onto_a_folder_is_one_line(tmp_path: Path, capsys, bits: Path) -> None:
    folder = tmp_path / "decisions"
    folder.mkdir()
    result = cli(capsys, "sim", "golden", "--manifest", str(bits), "--images", "5", "--save-decisions", str(folder))
    assert_refused(result, "is a folder")
    assert_refused(cli(capsys, "rtl", "--manifest", str(bits), "-o", str(folder)), "is a folder")


def test_the_command_line_tools_run_as_installed(tmp_path: Path) -> None:
    """The console scripts print the same one line (no traceback) when run as programs."""
    done = subprocess.run(
        [sys.executable, "-m", "bs4nn.cli", "train", "--set", "epochs=0"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "epochs must be" in done.stderr


def test_values_the_hardware_cannot_take_are_refused_before_any_work(tmp_path: Path, capsys, bits: Path) -> None:
    out = str(tmp_path / "out")
    result = cli(capsys, "build", "--manifest", str(bits), "-o", out, "--baud", "100000000")
    assert_refused(result, "--baud 100000000 is too fast", "at most 3,000,000 baud")
    result = cli(capsys, "rtl", "--manifest", str(bits), "-o", f"{out}.v", "--name", "x; endmodule module evil")
    assert_refused(result, "must be a Verilog identifier")
    for timeout in ("nan", "inf", "0"):
        result = cli(capsys, "run", "--port", "/dev/null", "--manifest", str(bits), "--timeout", timeout)
        assert_refused(result, "argument --timeout")
    assert not Path(out).exists() and not Path(f"{out}.v").exists()


def test_invalid_inputs_are_refused_not_blamed_on_the_hardware(tmp_path: Path, capsys, bits: Path) -> None:
    times = tmp_path / "times.npy"
    np.save(times, np.full((2, 784), 3, dtype=np.int32) * np.array([1, -1])[:, None])
    result = cli(capsys, "sim", "cocotb", "--manifest", str(bits), "--inputs", str(times), "--work-dir", str(tmp_path))
    assert_refused(result, "spike times must lie in 0..16, got -3..3")
    pixels = tmp_path / "pixels.npy"
    np.save(pixels, np.full((1, 28, 28), 300, dtype=np.uint16))
    result = cli(capsys, "run", "--simulate", "--verify", "--manifest", str(bits), str(pixels))
    assert_refused(result, "pixels must lie in 0..255, got 300..300")


def test_a_manifest_of_another_input_size_is_refused_on_mnist(tmp_path: Path, capsys) -> None:
    small = write_bit_model(random_network([16, 4, 10], [2, 2], seed=0, tmax=16), tmp_path / "small")
    result = cli(capsys, "sim", "golden", "--manifest", str(small), "--images", "5")
    assert_refused(result, "items of shape (28, 28), but the network has 16 inputs")
    np.save(tmp_path / "img.npy", np.zeros((3, 28, 28), dtype=np.uint8))  # 784 = 49 x 16: no silent reshape
    assert_refused(cli(capsys, "run", "--simulate", "--manifest", str(small), str(tmp_path / "img.npy")), "16 inputs")


def test_more_images_than_the_split_holds_is_said(capsys, bits: Path) -> None:
    code, out, err = cli(capsys, "sim", "golden", "--manifest", str(bits), "--images", "10000000", "--json")
    assert code == 0 and "has 10000 images; using all of them" in err
    assert json.loads(out)["images"] == 10000


def test_sim_cocotb_refuses_a_work_folder_it_did_not_make(tmp_path: Path, capsys, bits: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "core.v").write_text("my core")
    times = tmp_path / "times.npy"
    np.save(times, np.zeros((1, 784), dtype=np.int32))
    result = cli(capsys, "sim", "cocotb", "--manifest", str(bits), "--inputs", str(times), "--work-dir", str(mine))
    assert_refused(result, str(mine), "refusing to replace")
    assert files_of(mine) == {"core.v": b"my core"}


def test_thresholds_beyond_a_counter_and_empty_inputs_are_refused(tmp_path: Path, capsys, bits: Path) -> None:
    result = cli(capsys, "train", "--preset", "tiny", "--out", str(tmp_path / "r"), "--thetas", "1e300", "1")
    assert_refused(result, "beyond what a counter holds")
    np.save(tmp_path / "none.npy", np.zeros((0, 784), dtype=np.int32))
    result = cli(capsys, "sim", "cocotb", "--manifest", str(bits), "--inputs", str(tmp_path / "none.npy"))
    assert_refused(result, "holds no images")
    assert_refused(cli(capsys, "run", "--simulate", "--manifest", str(bits), str(tmp_path / "none.npy")), "no images")


def test_sigterm_is_one_line_and_unwinds(tmp_path: Path) -> None:
    """SIGTERM (what `kill` and schedulers send) unwinds like Ctrl-C: exit 143 and one line."""
    bits = tmp_path / "bits"
    export = [sys.executable, "-m", "bs4nn.export.cli", "--to-bits", "mnist", "-o", str(bits), "--no-eval"]
    assert subprocess.run(export, capture_output=True, check=False).returncode == 0
    golden = [sys.executable, "-m", "bs4nn.cli", "sim", "golden", "--manifest", str(bits), "--split", "train"]
    golden += ["--json", "--save-decisions", str(tmp_path / "d.npy")]
    process = subprocess.Popen(golden, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # imports and data loaded; 60,000 images take tens of seconds
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and err.strip().splitlines() == ["bs4nn: terminated"], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bits"]


def test_experiments_refuse_a_folder_of_the_users(tmp_path: Path, capsys, bits: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "noise.md").write_text("my notes on noise")
    result = cli(capsys, "experiment", "noise", "--model", str(bits), "--out", str(mine), "--images", "5", "--quiet")
    assert_refused(result, "refusing to replace")
    assert files_of(mine) == {"noise.md": b"my notes on noise"}
    result = cli(capsys, "experiment", "bnn", "--out", str(mine), "--epochs", "1")
    assert_refused(result, "refusing to replace")
    ours = tmp_path / "ours"
    threshold = [
        "experiment",
        "threshold",
        "--model",
        str(bits),
        "--out",
        str(ours),
        "--images",
        "5",
        "--thetas",
        "3",
        "--quiet",
    ]
    assert cli(capsys, *threshold)[0] == 0
    assert (
        cli(capsys, "experiment", "noise", "--model", str(bits), "--out", str(ours), "--images", "5", "--quiet")[0] == 0
    )
    assert {"threshold.json", "noise.json"} <= {p.name for p in ours.iterdir()}

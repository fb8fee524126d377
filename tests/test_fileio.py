"""Atomic outputs (bs4nn/fileio.py): no command replaces what it did not write, killed runs leave
no litter for long, and outputs get the user's ordinary permissions."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bs4nn.errors import Bs4nnError
from bs4nn.fileio import OWNER_RECORD, atomic_write_bytes, output_directory, remove_litter


def write_output(path: Path, files: dict[str, str], writer: str = "bs4nn test") -> None:
    with output_directory(path, writer) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text)


def test_a_folder_written_by_the_same_command_keeps_the_users_other_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_output(out, {"a.txt": "1", "b.txt": "1"})
    (out / "notes.md").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "core.v").write_text("module x; endmodule")
    write_output(out, {"a.txt": "2"})
    assert (out / "a.txt").read_text() == "2"
    assert not (out / "b.txt").exists()  # ours, no longer produced
    assert (out / "notes.md").read_text() == "mine"
    assert (out / "sub" / "core.v").read_text() == "module x; endmodule"
    assert json.loads((out / OWNER_RECORD).read_text()) == {"writer": "bs4nn test", "entries": ["a.txt"]}


@pytest.mark.parametrize("setup", ["user folder", "other command", "a file"])
def test_a_folder_not_written_by_the_command_is_refused_and_left_intact(tmp_path: Path, setup: str) -> None:
    out = tmp_path / "out"
    if setup == "a file":
        out.write_text("precious")
    elif setup == "other command":
        write_output(out, {"report.json": "{}"}, writer="bs4nn build")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("keep me")
    before = sorted((p.name, p.read_bytes()) for p in ([out] if out.is_file() else out.iterdir()))
    with pytest.raises(Bs4nnError, match="refusing to replace"), output_directory(out, "bs4nn test") as tmp:
        (tmp / "x").write_text("new")
    assert sorted((p.name, p.read_bytes()) for p in ([out] if out.is_file() else out.iterdir())) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left


def test_a_new_entry_named_like_a_users_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_output(out, {"a.txt": "1"})
    (out / "b.txt").write_text("mine")
    with pytest.raises(Bs4nnError, match=r"b\.txt not written by"):
        write_output(out, {"a.txt": "2", "b.txt": "ours"})
    assert (out / "b.txt").read_text() == "mine" and (out / "a.txt").read_text() == "1"


def test_a_failure_inside_leaves_the_old_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_output(out, {"a.txt": "1"})
    with pytest.raises(RuntimeError), output_directory(out, "bs4nn test") as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (out / "a.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_swap_killed_half_way_is_undone_on_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_output(out, {"a.txt": "1"})
    (out / "notes.md").write_text("mine")
    os.replace(out, tmp_path / ".out.old")  # killed after moving the old folder aside
    write_output(out, {"a.txt": "2"})
    assert (out / "a.txt").read_text() == "2" and (out / "notes.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_swap_killed_before_removing_the_old_folder_is_finished(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_output(out, {"a.txt": "1"})
    shutil.copytree(out, tmp_path / ".out.old")  # killed after the new folder moved in
    write_output(out, {"a.txt": "2"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (out / "a.txt").read_text() == "2"


def test_litter_of_dead_writers_is_removed_and_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "bits"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    old_style = tmp_path / ".bits.k2j4h1x0.tmp"  # tempfile.mkstemp's names, before PIDs
    old_style.write_bytes(b"")
    dead_file = tmp_path / f".bits.{dead_pid}-00ff00ff.tmp"
    dead_file.write_bytes(b"half")
    dead_dir = tmp_path / f".bits.{dead_pid}-11ff00ff.tmp"
    dead_dir.mkdir()
    (dead_dir / "layer0.bin").write_bytes(b"x")
    live = tmp_path / f".bits.{os.getpid()}-22ff00ff.tmp"
    live.write_bytes(b"")
    other = tmp_path / ".bitsy.1-00.tmp"  # another target's
    other.write_bytes(b"")
    assert sorted(remove_litter(target)) == sorted([old_style, dead_file, dead_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
    atomic_write_bytes(tmp_path / "x.bin", b"1")  # a write cleans its own target's litter only
    assert live.exists()


def test_outputs_get_the_users_umask_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        file = atomic_write_bytes(tmp_path / "f.bin", b"1")
        write_output(tmp_path / "out", {"a.txt": "1"})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(file.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_a_file_write_onto_a_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Bs4nnError, match="is a folder"):
        atomic_write_bytes(tmp_path, b"1")


def test_the_current_folder_is_never_an_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    for name in (".", "..", str(tmp_path)):
        with pytest.raises(Bs4nnError, match="current folder or one above it"):
            write_output(Path(name), {"a.txt": "1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"] and not any((tmp_path / "sub").iterdir())


def test_a_locked_folder_refuses_a_second_holder_until_released(tmp_path):
    """Two simulations in one work folder would read each other's job and results: the second is refused."""
    from bs4nn.fileio import folder_lock

    with (
        folder_lock(tmp_path / "run", "simulation"),
        pytest.raises(Bs4nnError, match="another simulation is running in this folder"),
        folder_lock(tmp_path / "run", "simulation"),
    ):
        pass
    with folder_lock(tmp_path / "run", "simulation"):  # released: the next run goes ahead
        pass

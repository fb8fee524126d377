"""Atomic outputs: a killed run never leaves a half-written file or folder, and no command
replaces what it did not write.

Files are written to a temporary ``.NAME.PID-TOKEN.tmp`` beside the target and renamed into
place; a run killed before the rename leaves that temporary behind, and the next write of the same
target removes it once its process is gone (:func:`remove_litter`).  Everything is created with
the ordinary permissions the user's umask gives (``mkstemp``/``mkdtemp`` would make exports and
checkpoints private to their owner).

Output folders (:func:`output_directory`: bit-model folders, bitstream builds, reports) carry a
record, :data:`OWNER_RECORD`, naming the command that wrote them and the entries it wrote.  A folder
is replaced only when it is empty, or written by the same command: then exactly the entries it
wrote are replaced and everything else the user put there (notes, a ``core.v``) is kept.  Any
other folder, or a file where a folder should go, is refused with one line.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from bs4nn.errors import Bs4nnError

OWNER_RECORD = ".bs4nn-output.json"
"""In every output folder: ``{"writer": command, "entries": [names it wrote]}``."""
TEMP_SUFFIX = ".tmp"
OLD_SUFFIX = ".old"
FILE_MODE = 0o666  # minus the umask, as open() and every other tool creates files
FOLDER_MODE = 0o777


def _temp_name(path: Path) -> Path:
    """``.NAME.PID-TOKEN.tmp`` beside ``path``: the PID tells a later run whether its writer is gone."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_litter(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that killed writes of ``path`` left beside it; return them.

    A temporary whose writer still runs is kept (two commands may write beside each other); one
    without a PID in its name (written by an older bs4nn) counts as abandoned.
    """
    path = Path(path)
    removed = []
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"):
        tag = candidate.name[len(path.name) + 2 : -len(TEMP_SUFFIX)]
        pid_text = tag.split("-", 1)[0] if "-" in tag else ""
        if pid_text.isdigit() and _process_alive(int(pid_text)):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
        removed.append(candidate)
    return removed


def plain_file_name(name: object) -> bool:
    """A name of an entry inside a folder: no path separators, not absolute, not ``.`` or ``..``
    (a manifest or record naming ``../x`` or ``/etc/x`` must not reach outside its folder)."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and Path(name).name == name
    )


def refuse_folder_target(path: str | os.PathLike) -> None:
    """A file output named by the user must not be a folder (checked again at the write)."""
    path = Path(path)
    if path.is_dir():
        raise Bs4nnError(f"{path}: is a folder; give a file name to write")


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    refuse_folder_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_litter(path)
    tmp = _temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError as error:
        raise _write_error(path, error) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise _write_error(path, error) from error
        raise
    return path


def _write_error(path: Path, error: OSError) -> Bs4nnError:
    """A failed write named by its target, not by the temporary the user never asked for."""
    return Bs4nnError(f"{path}: cannot write ({error.strerror or error}); the previous version, if any, is intact")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads((path / OWNER_RECORD).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("writer"), str):
        return None
    entries = record.get("entries")
    if not isinstance(entries, list) or not all(isinstance(name, str) for name in entries):
        return None
    return record


def _refuse_current_folder(path: Path) -> None:
    """``.`` or ``..``: replacing it would pull the folder from under the running command."""
    if Path.cwd().is_relative_to(os.path.abspath(path)):
        raise Bs4nnError(f"{path}: is the current folder or one above it; give the output folder a name")


def owned_entries(
    path: str | os.PathLike, writer: str, legacy: Callable[[Path], Iterable[str] | None] | None = None
) -> set[str]:
    """The entries of output folder ``path`` that ``writer`` may replace; refuse any other folder.

    An absent or empty folder owns nothing.  A folder whose record names ``writer`` owns the
    entries the record lists.  ``legacy`` recognises a folder of the same kind written before
    records existed (a bit-model folder by its manifest) and returns its entries, or None.
    """
    path = Path(path)
    _refuse_current_folder(path)
    if not path.exists() and not path.is_symlink():
        return set()
    if not path.is_dir() or path.is_symlink():
        raise Bs4nnError(f"{path}: exists and is not a folder; refusing to replace it (give a new folder name)")
    if not any(path.iterdir()):
        return set()
    record = _read_record(path)
    if record is not None and record["writer"] == writer:
        return {name for name in record["entries"] if plain_file_name(name)}
    if record is None and legacy is not None:
        names = legacy(path)
        if names is not None:
            return set(names)
    made_by = f"written by {record['writer']}" if record is not None else f"not written by {writer}"
    raise Bs4nnError(
        f"{path}: folder {made_by}; refusing to replace it (give a new or empty folder, or remove it yourself)"
    )


def _link_or_copy(source: Path, dest: Path) -> None:
    """Keep a user's entry in the new folder: hard links where the file system allows, else a copy."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, dest, symlinks=True, copy_function=link)
    elif source.is_symlink():
        os.symlink(os.readlink(source), dest)
    else:
        link(str(source), str(dest))


def _recover_interrupted_swap(path: Path, writer: str) -> None:
    """A run killed between moving the old folder aside and moving the new one in: undo or finish."""
    old = path.with_name(f".{path.name}{OLD_SUFFIX}")
    if not old.is_dir():
        return
    if not path.exists():
        os.replace(old, path)  # put the old folder back before anything else
        return
    record = _read_record(path)
    if record is not None and record["writer"] == writer:  # the new folder is in place, the user's entries in it
        shutil.rmtree(old, ignore_errors=True)


def _swap_in(tmp: Path, path: Path, keep: list[Path]) -> None:
    for entry in keep:
        _link_or_copy(entry, tmp / entry.name)
    if not path.exists():
        os.replace(tmp, path)
        return
    old = path.with_name(f".{path.name}{OLD_SUFFIX}")
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def output_directory(
    path: str | os.PathLike, writer: str, legacy: Callable[[Path], Iterable[str] | None] | None = None
) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it becomes ``path``.

    ``path`` must be absent, empty or written by ``writer`` (:func:`owned_entries`, checked both
    before the work and before the swap).  The user's other entries are carried into the new folder;
    an entry of the new output that has the name of one of theirs is refused.  On an exception the
    temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    _refuse_current_folder(path)
    _recover_interrupted_swap(path, writer)
    owned_entries(path, writer, legacy)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_litter(path)
    tmp = _temp_name(path)
    try:
        os.mkdir(tmp, FOLDER_MODE)
    except OSError as error:
        raise _write_error(path, error) from error
    try:
        yield tmp
        written = sorted(entry.name for entry in tmp.iterdir() if entry.name != OWNER_RECORD)
        (tmp / OWNER_RECORD).write_text(json.dumps({"writer": writer, "entries": written}, indent=1) + "\n")
        owned = owned_entries(path, writer, legacy)
        keep = [entry for entry in path.iterdir() if entry.name not in owned | {OWNER_RECORD}] if path.exists() else []
        clashes = sorted(entry.name for entry in keep if entry.name in written)
        if clashes:
            raise Bs4nnError(f"{path}: {', '.join(clashes)} not written by {writer}; refusing to replace")
        _swap_in(tmp, path, keep)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError) and (error.filename is None or str(error.filename).startswith(str(tmp))):
            raise _write_error(path, error) from error
        raise


def work_directory(
    path: str | os.PathLike, writer: str, legacy: Callable[[Path], Iterable[str] | None] | None = None
) -> Path:
    """A scratch folder a command writes into run after run (a simulation's work folder).

    Refused like an output folder when someone else's (:func:`owned_entries`); claimed with a
    record when new or empty, so a later run knows it may write there.
    """
    path = Path(path)
    owned_entries(path, writer, legacy)
    if _read_record(path) is None:
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path / OWNER_RECORD, json.dumps({"writer": writer, "entries": []}, indent=1) + "\n")
    return path


def describe_os_error(error: OSError) -> str:
    """One line for a failed read or write: the path and the system's reason (disk full, no permission)."""
    where = f"{error.filename}: " if error.filename else ""
    reason = error.strerror or errno.errorcode.get(error.errno or 0) or str(error)
    return f"{where}{reason}"


def sha256_bytes(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def sha256_path(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


LOCK_NAME = ".bs4nn-lock"
"""The file whose exclusive lock says a command is working in a folder (:func:`folder_lock`)."""


@contextlib.contextmanager
def folder_lock(path: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold an exclusive lock on folder ``path`` while the block runs; refuse if another process holds it.

    Why: a scratch folder that a command rewrites run after run (a simulation's job and results) is
    shared by every run started in the same place; two at once would read each other's files.  The
    lock is the kernel's (``flock``): it goes with the process, so a killed run leaves none behind.
    """
    import fcntl

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Bs4nnError(
                f"{folder}: another {what} is running in this folder; wait for it, or give it another folder"
            ) from None
        try:
            yield folder
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

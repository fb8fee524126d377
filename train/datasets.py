"""MNIST and Fashion-MNIST from their standard IDX files, checked before use.

Lookup order for the data folder: ``--data-dir``, then ``$BS4NN_DATA``, then the user cache
(``$XDG_CACHE_HOME/bs4nn/data``, default ``~/.cache/bs4nn/data``).  Inside it each dataset has
its own folder (``mnist/``, ``fashion-mnist/``) holding the original file names, gzip or plain.
A missing file is downloaded from the dataset's official mirrors into the cache and kept only
if its sha256 matches.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bs4nn.errors import Bs4nnError
from bs4nn.fileio import atomic_write_bytes, describe_os_error, sha256_path

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
IMAGE_SIDE = 28
N_CLASSES = 10


@dataclass(frozen=True)
class DatasetSpec:
    """Where one dataset's files come from and what they must hash to."""

    name: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]
    sizes: dict[str, int]  # split -> image count
    class_counts: dict[str, tuple[int, ...]]  # split -> per-class label counts


SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

DATASETS = {
    "mnist": DatasetSpec(
        name="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        sizes={"train": 60000, "test": 10000},
        class_counts={
            "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
            "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
        },
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        sizes={"train": 60000, "test": 10000},
        class_counts={"train": (6000,) * N_CLASSES, "test": (1000,) * N_CLASSES},
    ),
}
ALIASES = {"fashion": "fashion-mnist", "fmnist": "fashion-mnist"}


def dataset_spec(name: str) -> DatasetSpec:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise Bs4nnError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[key]


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_dir``, else ``$BS4NN_DATA``, else the user cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("BS4NN_DATA"):
        return Path(os.environ["BS4NN_DATA"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "bs4nn" / "data"


def _download(spec: DatasetSpec, filename: str, dest: Path) -> Path:
    """Fetch ``filename`` from the first mirror that serves it with the right sha256."""
    errors = []
    for mirror in spec.mirrors:
        url = mirror + filename
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                payload = response.read()
        except OSError as error:
            errors.append(f"{url}: {error}")
            continue
        digest = hashlib.sha256(payload).hexdigest()
        if digest != spec.sha256[filename]:
            errors.append(f"{url}: sha256 {digest} does not match {spec.sha256[filename]}")
            continue
        atomic_write_bytes(dest, payload)
        return dest
    raise Bs4nnError(f"could not download {filename} ({'; '.join(errors)}); put the file in {dest.parent}")


def locate(spec: DatasetSpec, stem: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Path of one IDX file (gzip or plain), downloading it into the data folder if missing."""
    folder = data_root(data_dir) / spec.name
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    if not download:
        raise Bs4nnError(f"{folder / (stem + '.gz')} not found (set --data-dir or $BS4NN_DATA)")
    return _download(spec, f"{stem}.gz", folder / f"{stem}.gz")


def read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """Read one IDX file (gzip or plain) as uint8, checking magic, dimensions and length."""
    try:
        payload = path.read_bytes()
    except OSError as error:  # no permission, a folder, an I/O error: not a corrupt file
        raise Bs4nnError(f"{path}: cannot read ({describe_os_error(error)})") from error
    try:
        raw = gzip.decompress(payload) if path.suffix == ".gz" else payload
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError; a flipped byte is zlib's
        raise Bs4nnError(f"{path}: cannot decompress ({error}); the file is truncated or corrupt") from error
    header_words = 1 + 1 + len(item_shape)
    if len(raw) < 4 * header_words:
        raise Bs4nnError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    header = np.frombuffer(raw, dtype=">u4", count=header_words)
    if int(header[0]) != magic:
        raise Bs4nnError(f"{path}: magic number {int(header[0])}, expected {magic}")
    count, dims = int(header[1]), tuple(int(d) for d in header[2:])
    if dims != item_shape:
        raise Bs4nnError(f"{path}: items are {dims}, expected {item_shape}")
    expected = 4 * header_words + count * int(np.prod(item_shape, dtype=np.int64))
    if len(raw) != expected:
        raise Bs4nnError(f"{path}: {len(raw)} bytes, expected {expected} for {count} items")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 * header_words).reshape((count, *item_shape))


def load_split(
    name: str, split: str, data_dir: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 28, 28) uint8, labels (N,) uint8)`` of ``split`` ("train" or "test")."""
    spec = dataset_spec(name)
    if split not in SPLIT_FILES:
        raise Bs4nnError(f"unknown split {split!r}; choose train or test")
    image_stem, label_stem = SPLIT_FILES[split]
    images = read_idx(locate(spec, image_stem, data_dir, download), IMAGE_MAGIC, (IMAGE_SIDE, IMAGE_SIDE))
    labels_path = locate(spec, label_stem, data_dir, download)
    labels = read_idx(labels_path, LABEL_MAGIC, ())
    if len(images) != len(labels):
        raise Bs4nnError(f"{labels_path}: {len(labels)} labels for {len(images)} images")
    if not len(images):
        raise Bs4nnError(f"{labels_path}: the {spec.name} {split} split holds no images")
    if labels.size and int(labels.max()) >= N_CLASSES:
        raise Bs4nnError(f"{labels_path}: label {int(labels.max())} is not a class 0..9")
    return images, labels


def check_dataset(name: str, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Verify every file of a dataset (sha256 when gzip, shapes, label counts); report lines.

    Raises :class:`Bs4nnError` on the first file that fails.
    """
    spec = dataset_spec(name)
    lines = []
    for split, (image_stem, label_stem) in SPLIT_FILES.items():
        for stem in (image_stem, label_stem):
            path = locate(spec, stem, data_dir, download=False)
            if path.suffix == ".gz":
                digest = sha256_path(path)
                if digest != spec.sha256[path.name]:
                    raise Bs4nnError(f"{path}: sha256 {digest} does not match {spec.sha256[path.name]}")
        images, labels = load_split(name, split, data_dir, download=False)
        if len(images) != spec.sizes[split]:
            raise Bs4nnError(f"{spec.name} {split}: {len(images)} images, expected {spec.sizes[split]}")
        counts = tuple(int(c) for c in np.bincount(labels, minlength=N_CLASSES))
        if counts != spec.class_counts[split]:
            raise Bs4nnError(f"{spec.name} {split}: label counts {counts}, expected {spec.class_counts[split]}")
        lines.append(f"OK {spec.name}/{image_stem} {images.shape}")
        lines.append(f"OK {spec.name}/{label_stem} {labels.shape} per class {list(counts)}")
    return lines

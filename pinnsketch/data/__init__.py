"""Image-classification data: IDX and CIFAR-10 readers, the data-set registry, fetching.

- :mod:`~pinnsketch.data.idx`: the IDX format (MNIST, Fashion-MNIST).
- :mod:`~pinnsketch.data.cifar`: CIFAR-10's python pickle batches.
- :mod:`~pinnsketch.data.datasets`: ``DATASETS``, checksums, ``load_dataset``.
- :mod:`~pinnsketch.data.fetch`: ``fetch`` (web, npm or Debian sources).

Knows nothing of sketching, PDEs or training.
"""

from pinnsketch.data.datasets import (
    DATASETS,
    SPLITS,
    DatasetSpec,
    dataset_dir,
    default_data_dir,
    fetch_hint,
    get_dataset,
    load_dataset,
    load_raw,
    normalize,
)
from pinnsketch.data.fetch import FETCH_SOURCES, fetch
from pinnsketch.data.idx import read_idx, write_idx

__all__ = [
    "DATASETS",
    "FETCH_SOURCES",
    "SPLITS",
    "DatasetSpec",
    "dataset_dir",
    "default_data_dir",
    "fetch",
    "fetch_hint",
    "get_dataset",
    "load_dataset",
    "load_raw",
    "normalize",
    "read_idx",
    "write_idx",
]

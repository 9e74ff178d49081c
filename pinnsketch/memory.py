"""Memory accounting, one definition everywhere (DESIGN.md section 4).

"Held for backward" = bytes of every tensor alive between the end of the forward pass and the
start of the backward pass because backward needs it, counted once per storage. It is counted
with :func:`torch.autograd.graph.saved_tensors_hooks` (custom Functions keep tensors only via
``ctx.save_for_backward``, so the hooks see them). Storages of the given parameters are
excluded: they are alive anyway.

Not seen by the hooks: tensors a Function keeps outside autograd's saved tensors (none in
pinnsketch), and what ``torch.utils.checkpoint`` keeps (its inputs, referenced by its
recomputation closure; the caller holds the points anyway). Peak figures
(:func:`peak_rss_bytes`, :func:`cuda_peak_bytes`) complement the held count.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from pinnsketch.sketch import check_method, held_numel
from pinnsketch.sketch.quantize import QUANT_BLOCK_ROWS, quant8_numbytes

__all__ = ["HeldBytes", "held_bytes", "peak_rss_bytes", "cuda_peak_bytes",
           "expected_exact_bytes", "expected_sketch_bytes", "expected_quant8_bytes",
           "expected_projection_bytes"]


def _storage_key(t: Tensor) -> tuple[int, int] | None:
    try:
        st = t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # e.g. sparse or meta tensors have no storage
        return None
    return st.data_ptr(), st.nbytes()


class HeldBytes:
    """Context manager counting the bytes saved for backward inside it, once per storage.

    Every tensor that autograd saves (built-in ops and ``ctx.save_for_backward``) passes the
    pack hook, which records its untyped storage (by data pointer; a view counts its whole
    storage, since it keeps it alive) and returns the tensor unchanged.

    Args:
        exclude: tensors (e.g. ``model.parameters()``) whose storages are not counted.

    Attributes:
        bytes: total bytes of the distinct counted storages.
        tensors: number of saved tensors that fell on a counted storage (with repeats).
        storages: number of distinct counted storages.

    Caveat: storages are identified by data pointer; a saved tensor freed inside the block
    (its graph dropped) may have its memory reused by a later one, which is then not counted.

    >>> w = torch.ones(1, requires_grad=True)
    >>> with HeldBytes(exclude=[w]) as held:
    ...     y = (w * torch.ones(1000)).sum()
    >>> held.bytes
    4000
    """

    def __init__(self, exclude: Iterable[Tensor] = ()):
        self._excluded = {k[0] for k in map(_storage_key, exclude) if k is not None}
        self._seen: set[int] = set()
        self.bytes = 0
        self.tensors = 0
        self.storages = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t: Tensor) -> Tensor:
        key = _storage_key(t)
        if key is None or key[0] in self._excluded:
            return t
        self.tensors += 1
        if key[0] not in self._seen:
            self._seen.add(key[0])
            self.bytes += key[1]
            self.storages += 1
        return t

    @staticmethod
    def _unpack(t: Tensor) -> Tensor:
        return t

    def __enter__(self) -> HeldBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def held_bytes(fn: Callable[[], object], exclude: Iterable[Tensor] = ()) -> tuple[object, int]:
    """(fn(), bytes saved for backward while running fn), parameters in ``exclude`` not counted.

    >>> w = torch.ones(1, requires_grad=True)
    >>> _, n = held_bytes(lambda: (w * torch.ones(1000)).sum(), exclude=[w])
    >>> n
    4000
    """
    with HeldBytes(exclude) as held:
        result = fn()
    return result, held.bytes


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process in bytes (Linux reports KiB, macOS bytes);
    None where the ``resource`` module does not exist (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def cuda_peak_bytes(device: torch.device | str | int | None = None) -> int | None:
    """``torch.cuda.max_memory_allocated(device)``, or None without CUDA."""
    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.max_memory_allocated(device))


def _hidden_widths(mlp) -> list[int]:
    return [layer.out_features for layer in mlp.layers[:-1]]


def expected_exact_bytes(mlp, plan, n_points: int, itemsize: int) -> int:
    """Held bytes of the ``exact`` policy: sum over hidden layers of J N w, plus N d (the points).

    >>> from pinnsketch.model import MLP
    >>> from pinnsketch.storage import JetPlan
    >>> net = MLP((0.0, 0.0), (1.0, 1.0), width=10, depth=3)
    >>> expected_exact_bytes(net, JetPlan.from_keys([(0,), (1,), (0, 0)], 2), 100, 4)
    48800
    """
    J, n = plan.num_components, n_points
    return itemsize * (sum(J * n * w for w in _hidden_widths(mlp)) + n * plan.dim)


def expected_sketch_bytes(mlp, plan, n_points: int, itemsize: int,
                          rank: int | tuple[int, ...], method: str = "range_finder",
                          exact_value: bool = False) -> int:
    """Held bytes of the ``sketch`` policy: per hidden layer and jet component the sketch, plus N d.

    With k = min(rank, N, w) and s = min(2k + 1, N, w): ``three_sketch`` and ``ema`` keep
    k (w + N) + s^2 numbers per component, ``range_finder`` k (N + w); with ``exact_value``
    component 0 keeps N w instead.

    >>> from pinnsketch.model import MLP
    >>> from pinnsketch.storage import JetPlan
    >>> net = MLP((0.0, 0.0), (1.0, 1.0), width=10, depth=3)
    >>> plan = JetPlan.from_keys([(0,), (1,), (0, 0)], 2)
    >>> expected_sketch_bytes(net, plan, 100, 4, rank=2)
    11360
    """
    widths = _hidden_widths(mlp)
    ranks = tuple(rank) if isinstance(rank, (tuple, list)) else (rank,) * len(widths)
    if len(ranks) != len(widths):
        raise ValueError(f"{len(ranks)} ranks for {len(widths)} hidden layers")
    check_method(method)
    n, total = n_points, n_points * plan.dim
    for w, r in zip(widths, ranks, strict=True):
        per = held_numel(method, n, w, r)
        for j in range(plan.num_components):
            total += n * w if (exact_value and j == 0) else per
    return itemsize * total


def expected_quant8_bytes(mlp, plan, n_points: int, itemsize: int,
                          block_rows: int = QUANT_BLOCK_ROWS) -> int:
    """Held bytes of the ``quant8`` policy: per hidden layer and jet component N w one-byte
    codes plus 2 ceil(N / block_rows) w range numbers, plus N d numbers (the points).

    >>> from pinnsketch.model import MLP
    >>> from pinnsketch.storage import JetPlan
    >>> net = MLP((0.0, 0.0), (1.0, 1.0), width=10, depth=3)
    >>> expected_quant8_bytes(net, JetPlan.from_keys([(0,), (1,), (0, 0)], 2), 100, 4)
    13760
    """
    n = n_points
    per = sum(quant8_numbytes(n, w, itemsize, block_rows) for w in _hidden_widths(mlp))
    return plan.num_components * per + itemsize * n * plan.dim


def expected_projection_bytes(mlp, plan, n_points: int, itemsize: int,
                              rank: int | tuple[int, ...]) -> int:
    """Held bytes of the ``projection`` policy: per hidden layer and jet component N k numbers
    (k = min(rank, w)), plus N d (the points).

    >>> from pinnsketch.model import MLP
    >>> from pinnsketch.storage import JetPlan
    >>> net = MLP((0.0, 0.0), (1.0, 1.0), width=10, depth=3)
    >>> expected_projection_bytes(net, JetPlan.from_keys([(0,), (1,), (0, 0)], 2), 100, 4, 3)
    15200
    """
    widths = _hidden_widths(mlp)
    ranks = tuple(rank) if isinstance(rank, (tuple, list)) else (rank,) * len(widths)
    if len(ranks) != len(widths):
        raise ValueError(f"{len(ranks)} ranks for {len(widths)} hidden layers")
    n = n_points
    numbers = sum(plan.num_components * n * min(r, w) for w, r in zip(widths, ranks, strict=True))
    return itemsize * (numbers + n * plan.dim)

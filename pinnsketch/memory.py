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
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

from pinnsketch.checks import is_int
from pinnsketch.sketch import check_method, held_numel
from pinnsketch.sketch.quantize import QUANT_BLOCK_ROWS, quant8_numbytes

__all__ = ["HeldBytes", "held_bytes", "peak_rss_bytes", "cuda_peak_bytes",
           "policy_held_bytes", "expected_exact_bytes", "expected_sketch_bytes", "expected_quant8_bytes",
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


def _check_pos_int(name: str, v: object) -> int:
    if not is_int(v) or v < 1:
        raise ValueError(f"{name}={v!r} must be an int >= 1")
    return v


def _per_stored(value: int | Sequence[int], count: int, what: str) -> tuple[int, ...]:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * count
    if len(values) != count:
        raise ValueError(f"{len(values)} {what} for {count} stored activations; give one each "
                         "or one int")
    return tuple(_check_pos_int(what[:-1], v) for v in values)


def policy_held_bytes(policy: str, n_points: int, widths: Sequence[int], num_components: int,
                      input_dim: int, itemsize: int, rank: int | Sequence[int] | None = None,
                      method: str = "randomized_svd", exact_value: bool = False,
                      block_rows: int = QUANT_BLOCK_ROWS) -> int:
    """Held bytes of a jet storage policy: the one set of formulas (DESIGN.md section 4).

    A network's stored activations (``net.stored_widths``: every hidden layer, and the
    modified MLP's encoders, each counted once) have widths w_l; per stored activation and
    jet component (J of them), N points, k = min(rank, N, w), s = min(2k + 1, N, w):

    - ``exact``: N w numbers;
    - ``sketch``: ``truncated_svd``, ``randomized_svd``, ``range_finder``: k (N + w) numbers;
      ``three_sketch``, ``ema``: k (w + N) + s^2; with ``exact_value`` component 0 keeps N w;
    - ``quant8``: N w one-byte codes and 2 ceil(N / block_rows) w range numbers;
    - ``projection``: N min(rank, w) numbers;
    - ``checkpoint``: nothing per activation;

    plus the N d numbers of the points, all numbers times ``itemsize``.

    Raises:
        ValueError: an unknown policy (``autograd`` has no closed form), a rank missing for
            ``sketch``/``projection`` or given to another policy, a wrong number of ranks.

    >>> policy_held_bytes("exact", 100, (10, 10, 10), 4, 2, 4)
    48800
    >>> policy_held_bytes("sketch", 100, (10, 10, 10), 4, 2, 4, rank=2, method="range_finder")
    11360
    """
    widths = tuple(widths)
    if not widths:
        raise ValueError("widths=() is empty; give the stored activations' widths, e.g. (50,) * 4")
    for w in widths:
        _check_pos_int("width", w)
    n = _check_pos_int("n_points", n_points)
    J = _check_pos_int("num_components", num_components)
    d = _check_pos_int("input_dim", input_dim)
    _check_pos_int("itemsize", itemsize)
    ranked = ("sketch", "projection")
    if policy not in ("exact", "sketch", "quant8", "projection", "checkpoint"):
        raise ValueError(f"no held-bytes formula for policy {policy!r}: valid policies exact, "
                         "sketch, quant8, projection, checkpoint (autograd's has no closed form)")
    if policy in ranked and rank is None:
        raise ValueError(f"{policy} needs a rank, e.g. rank=16")
    if policy not in ranked and rank is not None:
        raise ValueError(f"{policy} has no rank, got rank={rank!r}; drop it")
    points = itemsize * n * d
    if policy == "checkpoint":
        return points
    if policy == "exact":
        return points + itemsize * J * n * sum(widths)
    if policy == "quant8":
        return points + J * sum(quant8_numbytes(n, w, itemsize, block_rows) for w in widths)
    ranks = _per_stored(rank, len(widths), "ranks")
    if policy == "projection":
        return points + itemsize * J * n * sum(min(r, w) for w, r in zip(widths, ranks))
    check_method(method)
    numbers = 0
    for w, r in zip(widths, ranks, strict=True):
        per = held_numel(method, n, w, r)
        numbers += (J - 1) * per + (n * w if exact_value else per)
    return points + itemsize * numbers


def expected_exact_bytes(net, plan, n_points: int, itemsize: int) -> int:
    """Held bytes of the ``exact`` policy on ``net``: sum over its stored activations of
    J N w, plus N d (the points); :func:`policy_held_bytes`.

    >>> from pinnsketch.model import MLP
    >>> from pinnsketch.storage import JetPlan
    >>> net = MLP((0.0, 0.0), (1.0, 1.0), width=10, depth=3)
    >>> expected_exact_bytes(net, JetPlan.from_keys([(0,), (1,), (0, 0)], 2), 100, 4)
    48800
    """
    return policy_held_bytes("exact", n_points, net.stored_widths, plan.num_components,
                             plan.dim, itemsize)


def expected_sketch_bytes(net, plan, n_points: int, itemsize: int,
                          rank: int | tuple[int, ...], method: str = "range_finder",
                          exact_value: bool = False) -> int:
    """Held bytes of the ``sketch`` policy on ``net`` at ``rank`` (one int, or one per stored
    activation); :func:`policy_held_bytes`.

    >>> from pinnsketch.model import MLP
    >>> from pinnsketch.storage import JetPlan
    >>> net = MLP((0.0, 0.0), (1.0, 1.0), width=10, depth=3)
    >>> plan = JetPlan.from_keys([(0,), (1,), (0, 0)], 2)
    >>> expected_sketch_bytes(net, plan, 100, 4, rank=2)
    11360
    """
    return policy_held_bytes("sketch", n_points, net.stored_widths, plan.num_components,
                             plan.dim, itemsize, rank, method, exact_value)


def expected_quant8_bytes(net, plan, n_points: int, itemsize: int,
                          block_rows: int = QUANT_BLOCK_ROWS) -> int:
    """Held bytes of the ``quant8`` policy on ``net``; :func:`policy_held_bytes`.

    >>> from pinnsketch.model import MLP
    >>> from pinnsketch.storage import JetPlan
    >>> net = MLP((0.0, 0.0), (1.0, 1.0), width=10, depth=3)
    >>> expected_quant8_bytes(net, JetPlan.from_keys([(0,), (1,), (0, 0)], 2), 100, 4)
    13760
    """
    return policy_held_bytes("quant8", n_points, net.stored_widths, plan.num_components,
                             plan.dim, itemsize, block_rows=block_rows)


def expected_projection_bytes(net, plan, n_points: int, itemsize: int,
                              rank: int | tuple[int, ...]) -> int:
    """Held bytes of the ``projection`` policy on ``net``; :func:`policy_held_bytes`.

    >>> from pinnsketch.model import MLP
    >>> from pinnsketch.storage import JetPlan
    >>> net = MLP((0.0, 0.0), (1.0, 1.0), width=10, depth=3)
    >>> expected_projection_bytes(net, JetPlan.from_keys([(0,), (1,), (0, 0)], 2), 100, 4, 3)
    15200
    """
    return policy_held_bytes("projection", n_points, net.stored_widths, plan.num_components,
                             plan.dim, itemsize, rank)

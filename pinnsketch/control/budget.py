"""Memory-budget planning from the held-bytes model (DESIGN.md section 4).

The budget bounds the bytes *held for backward* (what :mod:`pinnsketch.memory` counts): not
the weights, the optimizer state, or the backward pass's own working set (which bounds the
peak; see DESIGN.md section 2). The formulas are :func:`pinnsketch.memory.policy_held_bytes`
(one copy), functions of the network's stored widths (``net.stored_widths``: every hidden
layer, the modified MLP's encoders too), the jet components J, the input dimension d, the
item size, N and the ranks; :func:`exact_held_bytes`, :func:`sketch_held_bytes` and
:func:`compressed_held_bytes` are that function under the planner's argument order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from pinnsketch.checks import is_int
from pinnsketch.memory import policy_held_bytes
from pinnsketch.sketch.methods import check_method

__all__ = ["BudgetPlan", "compressed_held_bytes", "exact_held_bytes", "exact_points_within",
           "format_bytes", "largest_fitting", "parse_bytes", "plan_budget",
           "sketch_held_bytes"]


_UNITS = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_BYTES_RE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_bytes(text: str | int) -> int:
    """A byte count from text such as ``"2GB"``, ``"1.5 GiB"``, ``"512mib"``, ``"1000"``.

    Units (case-insensitive): B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB
    (powers of 1024); no unit means bytes. Fractions are rounded down to whole bytes.

    Raises:
        ValueError: for text that is not a number with a known unit, or a size < 1 byte.

    >>> parse_bytes("2GB"), parse_bytes("1.5 KiB"), parse_bytes("0.1gb")
    (2000000000, 1536, 100000000)
    >>> parse_bytes("abc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot read 'abc' as a memory size; write a number and a unit, e.g. 2GB, ...
    """
    units = "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
    if is_int(text):
        value = Decimal(text)
        shown = str(text)
    elif isinstance(text, str):
        m = _BYTES_RE.match(text)
        unit = m.group(2).lower() if m else None
        if m is None or unit not in ("", *_UNITS):
            raise ValueError(f"cannot read {text!r} as a memory size; write a number and a "
                             f"unit, e.g. 2GB, 512MiB, 1.5GiB (units: {units})")
        try:
            value = Decimal(m.group(1)) * _UNITS[unit or "b"]
        except InvalidOperation:  # pragma: no cover - the regex admits only decimals
            raise ValueError(f"cannot read {text!r} as a memory size") from None
        shown = repr(text)
    else:
        raise ValueError(f"a memory size must be text like '2GB' or an int, got {text!r}")
    if value < 0:
        raise ValueError(f"memory size {shown} is negative; give a positive size, e.g. 2GB")
    if int(value) < 1:
        raise ValueError(f"memory size {shown} is zero bytes; give a positive size, e.g. 2GB")
    return int(value)


def format_bytes(n: int | float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1, e.g. ``'1.50 GiB'``.

    >>> format_bytes(1536), format_bytes(3 * 2**30), format_bytes(12)
    ('1.50 KiB', '3.00 GiB', '12 B')
    """
    n = float(n)
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def _check_pos_int(name: str, v: object) -> int:
    if not is_int(v) or v < 1:
        raise ValueError(f"{name}={v!r} must be an int >= 1")
    return v


def _check_common(widths: Sequence[int], num_components: int, input_dim: int,
                  itemsize: int) -> tuple[int, ...]:
    widths = tuple(widths)
    if not widths:
        raise ValueError("widths=() is empty; give the hidden-layer widths, e.g. (50,) * 4")
    for w in widths:
        _check_pos_int("width", w)
    _check_pos_int("num_components", num_components)
    _check_pos_int("input_dim", input_dim)
    _check_pos_int("itemsize", itemsize)
    return widths


def exact_held_bytes(n_points: int, widths: Sequence[int], num_components: int,
                     input_dim: int, itemsize: int) -> int:
    """Held bytes of ``exact`` storage: itemsize (sum_l J N w_l + N d).

    >>> exact_held_bytes(100, (10, 10, 10), 4, 2, 4)
    48800
    """
    return policy_held_bytes("exact", n_points, widths, num_components, input_dim, itemsize)


def sketch_held_bytes(n_points: int, widths: Sequence[int], ranks: int | Sequence[int],
                      num_components: int, input_dim: int, itemsize: int,
                      method: str = "range_finder", exact_value: bool = False) -> int:
    """Held bytes of ``sketch`` storage at N points and the given per-activation ranks.

    >>> sketch_held_bytes(100, (10, 10, 10), 2, 4, 2, 4)
    11360
    """
    return policy_held_bytes("sketch", n_points, widths, num_components, input_dim, itemsize,
                             ranks, method, exact_value)


def compressed_held_bytes(policy: str, n_points: int, widths: Sequence[int],
                          num_components: int, input_dim: int, itemsize: int,
                          rank: int | Sequence[int] | None = None) -> int:
    """Held bytes of ``quant8`` or ``projection`` storage at N points.

    Raises:
        ValueError: another policy, a rank given to ``quant8`` or missing for ``projection``.

    >>> compressed_held_bytes("quant8", 100, (10, 10, 10), 4, 2, 4)
    13760
    >>> compressed_held_bytes("projection", 100, (10, 10, 10), 4, 2, 4, rank=3)
    15200
    """
    if policy not in ("quant8", "projection"):
        raise ValueError(f"compressed_held_bytes covers 'quant8' and 'projection', not "
                         f"{policy!r}; use exact_held_bytes or sketch_held_bytes")
    return policy_held_bytes(policy, n_points, widths, num_components, input_dim, itemsize, rank)


def exact_points_within(budget_bytes: int, widths: Sequence[int], num_components: int,
                        input_dim: int, itemsize: int) -> int:
    """How many collocation points exact storage can hold within ``budget_bytes`` (may be 0).

    >>> exact_points_within(48800, (10, 10, 10), 4, 2, 4)
    100
    """
    widths = _check_common(widths, num_components, input_dim, itemsize)
    _check_pos_int("budget_bytes", budget_bytes)
    return budget_bytes // (itemsize * (num_components * sum(widths) + input_dim))


@dataclass(frozen=True)
class BudgetPlan:
    """A collocation batch size and per-layer ranks whose held bytes fit a budget.

    Attributes:
        points: collocation points per step (<= the requested number).
        ranks: per stored activation the largest rank that fits (uniform, clamped to the width):
            the rank caps to give :class:`~pinnsketch.control.rank.RankController` as
            ``budget_ranks``.
        held_bytes: the held bytes at (points, ranks), <= the budget.
        message: a human-readable summary for the log.
    """

    points: int
    ranks: tuple[int, ...]
    held_bytes: int
    message: str


def largest_fitting(lo: int, hi: int, fits) -> int:
    """The largest x in [lo, hi] with fits(x), given fits(lo) and fits monotone (True, then
    False), by bisection.

    >>> largest_fitting(0, 100, lambda x: x * x <= 50)
    7
    """
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def plan_budget(budget_bytes: int, widths: Sequence[int], num_components: int, input_dim: int,
                itemsize: int, method: str, requested_points: int, min_rank: int,
                max_points: int | None = None, exact_value: bool = False) -> BudgetPlan:
    """The collocation batch and per-layer ranks that fit ``budget_bytes`` of held memory.

    1. Keep N = min(requested_points, max_points) and take the largest uniform rank r >= min_rank
       (per layer min(r, width)) whose held bytes fit.
    2. If even min_rank does not fit, lower N to the largest batch that fits at min_rank,
       then take the largest rank that fits at that N.

    Held bytes grow monotonically with N and with the rank, so both searches are bisections.

    Args:
        budget_bytes: bytes held for backward allowed (e.g. ``parse_bytes("2GB")``).
        widths: the stored activations' widths (``net.stored_widths``).
        num_components: jet components J per layer (``JetPlan.num_components``).
        input_dim: number of input coordinates d.
        itemsize: bytes per number (4 for float32, 8 for float64).
        method: sketch method (``range_finder``, ``three_sketch``, ``ema``).
        requested_points: the collocation batch the user asked for.
        min_rank: the smallest rank worth sketching at (the controller's ``min_rank``).
        max_points: an optional further cap on N (e.g. the size of a fixed point set).
        exact_value: the value jet is kept exactly (``StorageConfig.exact_value``).

    Raises:
        ValueError: bad arguments, or a budget too small for one point at min_rank (the
            message names the budget and that minimum).

    >>> plan = plan_budget(10**6, (50,) * 4, 4, 2, 4, "range_finder", 2000, 4)
    >>> plan.points, plan.ranks, plan.held_bytes <= 10**6
    (2000, (7, 7, 7, 7), True)
    """
    widths = _check_common(widths, num_components, input_dim, itemsize)
    _check_pos_int("budget_bytes", budget_bytes)
    _check_pos_int("requested_points", requested_points)
    _check_pos_int("min_rank", min_rank)
    if max_points is not None:
        _check_pos_int("max_points", max_points)
    check_method(method)
    top = max(widths)

    def held(n: int, r: int) -> int:
        return sketch_held_bytes(n, widths, tuple(min(r, w) for w in widths), num_components,
                                 input_dim, itemsize, method, exact_value)

    n = requested_points if max_points is None else min(requested_points, max_points)
    lo_rank = min(min_rank, top)
    note = ""
    if held(n, lo_rank) > budget_bytes:
        smallest = held(1, lo_rank)
        if smallest > budget_bytes:
            raise ValueError(
                f"memory budget {format_bytes(budget_bytes)} ({budget_bytes} bytes) is too "
                f"small: even 1 collocation point at rank {min_rank} holds "
                f"{format_bytes(smallest)} ({smallest} bytes); raise the budget to at least "
                "that, or use a smaller network")
        wanted = n
        n = largest_fitting(1, n, lambda x: held(x, lo_rank) <= budget_bytes)
        note = (f"; reduced from the requested {wanted} points because rank {min_rank} at "
                f"{wanted} points needs {format_bytes(held(wanted, lo_rank))}")
    r = largest_fitting(lo_rank, top, lambda x: held(n, x) <= budget_bytes)
    ranks = tuple(min(r, w) for w in widths)
    used = held(n, r)
    exact_n = exact_points_within(budget_bytes, widths, num_components, input_dim, itemsize)
    message = (f"memory budget {format_bytes(budget_bytes)}: {n} collocation points at ranks "
               f"{ranks} hold {format_bytes(used)}{note}")
    if exact_n >= n:
        exact = exact_held_bytes(n, widths, num_components, input_dim, itemsize)
        message += (f"; exact storage of the same {n} points fits too ({format_bytes(exact)}, "
                    "exact gradients): a sketch is not needed within this budget")
    else:
        message += f"; exact storage would fit only {exact_n} points"

    return BudgetPlan(points=n, ranks=ranks, held_bytes=used, message=message)

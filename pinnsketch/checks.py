"""Checks of scalar arguments, one definition for every module: integers, reals, seeds.

Each raises ValueError with a message that names the value (``name``) and what it must be.
``bool`` is never accepted as a number (``True`` is an ``int`` in Python).

>>> check_int("width", 20, low=1)
20
>>> check_int("width", 0, low=1)
Traceback (most recent call last):
...
ValueError: width must be an integer >= 1, got 0
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["is_int", "is_real", "check_int", "check_real", "check_seed", "SEED_LIMIT"]

SEED_LIMIT = 2**63
"""Seeds are ints in [0, 2**63) (what ``torch.Generator.manual_seed`` and numpy accept)."""


def is_int(value: object) -> bool:
    """An int (numpy integers included), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """An int or float (numpy scalars included), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in [low, high] (a bound of None is open)."""
    bounds = " and ".join(b for b in ((f">= {low}" if low is not None else ""),
                                      (f"<= {high}" if high is not None else "")) if b)
    if not is_int(value) or (low is not None and value < low) \
            or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer{' ' + bounds if bounds else ''}, "
                         f"got {value!r}")
    return int(value)


def check_real(name: str, value: object, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float within the bounds (closed unless ``*_open``)."""
    ok = is_real(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        rule = " and ".join(parts)
        raise ValueError(f"{name} must be a finite number{' ' + rule if rule else ''}, "
                         f"got {value!r}")
    return float(value)


def check_seed(name: str, value: object) -> int:
    """``value`` as a seed, an int in [0, 2**63)."""
    if not is_int(value) or not 0 <= int(value) < SEED_LIMIT:
        raise ValueError(f"{name} must be an int in [0, 2**63), got {value!r}")
    return int(value)

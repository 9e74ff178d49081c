"""The equations of a residual: one tensor, or a system of named equations.

A residual returns one (N,) tensor (one equation, loss term ``"pde"``), or a system:

- a dict ``{"momentum_x": r1, "momentum_y": r2, "continuity": r3}``: one loss term per
  equation, named ``"pde:momentum_x"``, ...;
- a tuple or list ``(r1, r2)``: named ``"pde:eq0"``, ``"pde:eq1"``, ... (or by the
  problem's ``equations`` class attribute, in its order).

A problem may declare its equations (``equations = ("momentum_x", "momentum_y",
"continuity")``); the residual must then return exactly those. Without a declaration the
names come from the first evaluation, and every later evaluation must return the same ones:
an equation that appears or disappears between calls would change the objective silently.

The same ``PREFIX:NAME`` scheme names the data terms (``"data:u"``) and the unknown
parameters' history columns (``"param:nu"``); a weight given for ``PREFIX`` applies to every
``PREFIX:NAME`` term not weighted by name (:func:`term_weight`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from torch import Tensor

__all__ = ["PDE", "equation_names", "equations_of", "term_name", "term_weight", "prefix_of"]

PDE = "pde"
"""The loss term of a single-equation residual, and the prefix of a system's terms."""

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def term_name(prefix: str, name: str) -> str:
    """``"pde", "continuity"`` -> ``"pde:continuity"``."""
    return f"{prefix}:{name}"


def prefix_of(term: str) -> str:
    """``"pde:continuity"`` -> ``"pde"``; a term without a prefix is its own."""
    return term.partition(":")[0]


def term_weight(term: str, weights: Mapping[str, float], default: float) -> float:
    """The weight of ``term``: ``weights[term]``, else ``weights[prefix]`` for a
    ``PREFIX:NAME`` term, else ``default``.

    >>> term_weight("pde:continuity", {"pde": 2.0}, 1.0), term_weight("pde:mx", {}, 1.0)
    (2.0, 1.0)
    """
    if term in weights:
        return float(weights[term])
    prefix = prefix_of(term)
    if prefix != term and prefix in weights:
        return float(weights[prefix])
    return float(default)


def _fix(problem: str) -> str:
    return (f"{problem}: residual(d) must return one (N,) tensor, a tuple of them, or a dict "
            "name -> (N,) tensor")


def equation_names(out: object, declared: Sequence[str], problem: str) -> tuple[str, ...] | None:
    """The equation names of a residual's output ``out``: None for a single tensor.

    Raises:
        ValueError: not a tensor, tuple or dict; a bad or repeated name; names or a count
            that differ from the declared ``equations``.
    """
    declared = tuple(declared)
    for name in declared:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"{problem}: equation name {name!r} in equations must be a letter "
                             "followed by letters, digits or '_', e.g. 'momentum_x'")
    if len(set(declared)) != len(declared):
        raise ValueError(f"{problem}: equations {declared} repeats a name")
    if isinstance(out, Tensor):
        if declared:
            raise ValueError(f"{problem}: equations declares {declared} but residual(d) returned "
                             "one tensor; return a dict with those names (or drop equations)")
        return None
    if isinstance(out, Mapping):
        names = tuple(out)
        for name in names:
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise ValueError(f"{problem}: residual(d) returned an equation named {name!r}; "
                                 "a name is a letter followed by letters, digits or '_', e.g. "
                                 "'momentum_x'")
        if not names:
            raise ValueError(f"{problem}: residual(d) returned an empty dict; "
                             + _fix(problem).split(": ", 1)[1])
        if declared:
            _same_names(names, declared, problem, "declared in equations")
            return declared
        return names
    if isinstance(out, (tuple, list)):
        if not out:
            raise ValueError(f"{problem}: residual(d) returned an empty {type(out).__name__}; "
                             + _fix(problem).split(": ", 1)[1])
        if declared and len(declared) != len(out):
            raise ValueError(f"{problem}: residual(d) returned {len(out)} equations, but "
                             f"equations declares {len(declared)}: {', '.join(declared)}")
        return declared or tuple(f"eq{i}" for i in range(len(out)))
    raise ValueError(_fix(problem) + f", not {type(out).__name__}")


def _same_names(got: Sequence[str], want: Sequence[str], problem: str, what: str) -> None:
    unknown = [n for n in got if n not in want]
    missing = [n for n in want if n not in got]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown equation(s) {', '.join(unknown)}")
        if missing:
            parts.append(f"missing equation(s) {', '.join(missing)}")
        raise ValueError(f"{problem}: residual(d) returned {' and '.join(parts)}; the equations "
                         f"{what} are {', '.join(want)}: return exactly those names")


def equations_of(out: object, names: tuple[str, ...] | None, problem: str) -> dict[str, Tensor]:
    """The residual's output as {equation name: tensor} in the order of ``names`` (a single
    tensor as ``{"": out}`` when ``names`` is None).

    Raises:
        ValueError: the output's kind or names differ from ``names`` (found once by
            :func:`equation_names`): a residual must return the same equations every call.
    """
    if names is None:
        if not isinstance(out, Tensor):
            raise ValueError(f"{problem}: residual(d) returned one tensor before and a "
                             f"{type(out).__name__} now; it must return the same equations "
                             "every call")
        return {"": out}
    if isinstance(out, Mapping):
        _same_names(tuple(out), names, problem, "it returned before")
        return {n: out[n] for n in names}
    if isinstance(out, (tuple, list)) and len(out) == len(names):
        return dict(zip(names, out))
    got = "one tensor" if isinstance(out, Tensor) else (
        f"{len(out)} equations" if isinstance(out, (tuple, list)) else type(out).__name__)
    raise ValueError(f"{problem}: residual(d) returned {len(names)} equations "
                     f"({', '.join(names)}) before and {got} now; it must return the same "
                     "equations every call")

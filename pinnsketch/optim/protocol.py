"""The protocol every optimizer of :mod:`pinnsketch.optim` follows (optax-like, explicit state).

An optimizer is an immutable policy object with

    init(x, f, g) -> state
    step(state, fg) -> (state, info)           (``needs_jacobian``: step(state, fg, rj))

where ``x`` is the flat float64 parameter vector, ``fg(x) -> (f, g)`` returns the loss (a
float or 0-d tensor) and its flat float64 gradient, and ``rj(x) -> (r, J)`` the residual
vector (M,) and its Jacobian (M, P) with loss = ||r||^2. ``state`` is a frozen dataclass of
tensors and numbers (:class:`OptimizerState`) whose ``to_dict()`` holds only tensors, ints,
floats, bools, strings, lists and dicts, so ``torch.load(..., weights_only=True)`` reads a
checkpoint of it, and ``from_dict`` rebuilds it: a run continued from
``from_dict(to_dict(state))`` equals the uninterrupted one bit for bit. ``info`` is a
:class:`StepInfo`. ``rebase(state, f, g)`` keeps the curvature information when the
objective changes under the optimizer (a resampled batch) and takes its new value and
gradient at the same x.

The training loop composes such phases and never looks inside one (STYLE.md item 17).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from torch import Tensor

from pinnsketch.optim.line_search import Objective

__all__ = ["Objective", "ResidualJacobian", "StepInfo", "OptimizerState", "Optimizer",
           "check_start"]

ResidualJacobian = Callable[[Tensor], tuple[Tensor, Tensor]]
"""rj(x) -> (r (M,), J (M, P)): residuals and their Jacobian, loss = ||r||^2."""

S = TypeVar("S", bound="OptimizerState")


@dataclass(frozen=True)
class StepInfo:
    """What one optimizer step did.

    Attributes:
        loss: the loss at the state's point after the step.
        evaluations: objective evaluations (and Jacobians) the step used.
        step_length: the line-search step a (quasi-Newton) or ||dx|| (Gauss-Newton).
        line_search_ok: the step was accepted normally (strong Wolfe holds; for a
            Gauss-Newton method: a damping was found that decreased the loss).
        reset: the curvature information was reset (a failed line search).
        skipped_update: the curvature update was skipped (y^T s too small).
        stalled: nothing could be gained from this point (the search failed on a freshly
            reset model, or every damping failed); a loop may stop or resample.
        message: a human sentence when something noteworthy happened, else "".
        extras: method-specific numbers (tau, phi, damping, gain ratio, ...).
    """

    loss: float
    evaluations: int
    step_length: float
    line_search_ok: bool
    reset: bool = False
    skipped_update: bool = False
    stalled: bool = False
    message: str = ""
    extras: dict[str, float] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"optimizer state holds a {type(value).__name__}; only tensors, numbers, "
                    "strings, bools, lists and dicts may be checkpointed")


@dataclass(frozen=True)
class OptimizerState:
    """Base of every optimizer state: frozen, tensors and plain numbers only.

    Subclasses list their fields; ``kind`` names the class in the dict form so that a
    checkpoint of one method is not read as another's.
    """

    kind: ClassVar[str] = "state"

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (tensors cloned), readable by ``torch.load(weights_only=True)``."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls: type[S], d: dict[str, Any]) -> S:
        """Undo :meth:`to_dict` (lists of tensors become tuples again).

        Raises:
            ValueError: a dict of another kind, or with missing or unknown fields.
        """
        if not isinstance(d, dict) or d.get("kind") != cls.kind:
            got = d.get("kind") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"not a {cls.kind!r} optimizer state (got kind {got!r})")
        names = {f.name for f in dataclasses.fields(cls)}
        given = set(d) - {"kind"}
        if given != names:
            raise ValueError(f"{cls.kind} state: missing fields {sorted(names - given)}, "
                             f"unknown fields {sorted(given - names)}")
        kw = {}
        for f in dataclasses.fields(cls):
            v = d[f.name]
            kw[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**kw)

    def replace(self: S, **changes: Any) -> S:
        return dataclasses.replace(self, **changes)


class Optimizer(Protocol):
    """What a training phase needs of an optimizer (see the module docstring)."""

    needs_jacobian: ClassVar[bool]  # True: step(state, fg, rj)

    def init(self, x: Tensor, f: float, g: Tensor) -> OptimizerState: ...

    def step(self, state: Any, fg: Objective) -> tuple[Any, StepInfo]: ...

    def rebase(self, state: Any, f: float, g: Tensor) -> Any: ...

    def state_from_dict(self, d: dict[str, Any]) -> OptimizerState: ...


def check_start(x: Tensor, f: Any, g: Tensor) -> tuple[Tensor, float, Tensor]:
    """Validate an optimizer's start point: flat float64 x and g of one size, finite f.

    Raises:
        ValueError: naming the bad argument.
    """
    if not isinstance(x, Tensor) or x.dim() != 1 or x.dtype != torch.float64:
        raise ValueError(f"x must be a flat float64 tensor, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} of shape "
                         f"{tuple(getattr(x, 'shape', ()))}; flatten with "
                         "torch.nn.utils.parameters_to_vector(...).double()")
    if not isinstance(g, Tensor) or g.shape != x.shape or g.dtype != torch.float64:
        raise ValueError(f"g must be a float64 tensor of x's shape {tuple(x.shape)}, got "
                         f"{getattr(g, 'dtype', type(g).__name__)} {tuple(getattr(g, 'shape', ()))}")
    fv = float(f.detach() if isinstance(f, Tensor) else f)
    if fv != fv or fv in (float("inf"), float("-inf")):
        raise ValueError(f"the loss at the start point is {fv}; an optimizer needs a finite "
                         "start")
    return x, fv, g

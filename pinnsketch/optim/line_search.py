"""A strong-Wolfe line search: bracketing, then zoom with safeguarded cubic interpolation.

Along a descent direction d from x, with phi(a) = f(x + a d) and phi'(a) = g(x + a d)^T d,
a step a > 0 satisfies the strong Wolfe conditions when

    phi(a) <= phi(0) + c1 a phi'(0)          (sufficient decrease)
    |phi'(a)| <= c2 |phi'(0)|                 (curvature),      0 < c1 < c2 < 1.

The search is Algorithms 3.5 (bracketing) and 3.6 (zoom) of Nocedal & Wright, Numerical
Optimization, 2nd ed. (Springer 2006), section 3.5; trial steps come from the minimiser of
the cubic interpolating phi and phi' at two points (their eq. 3.59), kept inside a
safeguarded interval (bisection when the cubic has no minimiser there). Every evaluation of
the objective returns the value and the gradient together (one backward pass), so the
search counts evaluations, not function and gradient calls apart.

It never raises on failure: a failed search returns ``ok=False``, the reason, and the best
point it saw (the lowest value below phi(0)), or no point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from pinnsketch.checks import is_int

__all__ = ["Objective", "LineSearchResult", "StrongWolfe", "as_objective",
           "NOT_DESCENT", "MAX_EVALUATIONS", "INTERVAL_TOO_SMALL", "NON_FINITE", "STEP_LIMIT"]

Objective = Callable[[Tensor], tuple["float | Tensor", Tensor]]
"""fg(x) -> (f, g): the loss (a float or 0-d tensor) and its flat float64 gradient at x."""

NOT_DESCENT = "not a descent direction"
MAX_EVALUATIONS = "max evaluations"
INTERVAL_TOO_SMALL = "interval too small"
NON_FINITE = "non-finite values"
STEP_LIMIT = "step limit reached"  # still descending at max_step: unbounded below?


def as_objective(fg: Objective) -> Callable[[Tensor], tuple[float, Tensor]]:
    """``fg`` with the value turned into a Python float (the gradient left as it is)."""

    def wrapped(x: Tensor) -> tuple[float, Tensor]:
        f, g = fg(x)
        return float(f.detach() if isinstance(f, Tensor) else f), g

    return wrapped


@dataclass(frozen=True)
class LineSearchResult:
    """What a line search found.

    Attributes:
        step: the step a (0.0 when no point is returned).
        f, g: the value and gradient at x + a d (f = phi(0) and g = None when no point is
            returned).
        evaluations: objective evaluations spent.
        ok: the strong Wolfe conditions hold at ``step``.
        reason: "" when ok; else one of ``NOT_DESCENT``, ``MAX_EVALUATIONS``,
            ``INTERVAL_TOO_SMALL``, ``NON_FINITE``, ``STEP_LIMIT``.
    """

    step: float
    f: float
    g: Tensor | None
    evaluations: int
    ok: bool
    reason: str

    @property
    def has_point(self) -> bool:
        """A point is returned (a Wolfe step, or a failed search's best point below phi(0))."""
        return self.g is not None


def _cubic_min(a: float, fa: float, da: float, b: float, fb: float, db: float) -> float | None:
    """Minimiser of the cubic through (a, fa, da), (b, fb, db) (Nocedal & Wright eq. 3.59),
    or None when it has none (complex roots) or the inputs are degenerate."""
    if a == b:
        return None
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    if not math.isfinite(disc) or disc < 0.0:
        return None
    d2 = math.copysign(math.sqrt(disc), b - a)
    denom = db - da + 2.0 * d2
    if denom == 0.0 or not math.isfinite(denom):
        return None
    t = b - (b - a) * (db + d2 - d1) / denom
    return t if math.isfinite(t) else None


@dataclass(frozen=True)
class StrongWolfe:
    """The strong-Wolfe line search of Nocedal & Wright (Algorithms 3.5 and 3.6).

    Args:
        c1: sufficient-decrease constant, 0 < c1 < c2.
        c2: curvature constant, c1 < c2 < 1 (0.9 for quasi-Newton directions).
        max_evaluations: objective evaluations allowed per search (>= 1).
        max_step: the largest step tried while bracketing (N&W's alpha_max).
        xtol: the search gives up ("interval too small") once the bracket is narrower than
            xtol * max(1, its right end): steps that close cannot be told apart in float64.

    Raises:
        ValueError: constants outside their ranges.

    >>> fg = lambda x: (float((x * x).sum()), 2 * x)
    >>> x = torch.tensor([3.0, -4.0], dtype=torch.float64)
    >>> r = StrongWolfe()(fg, x, 25.0, 2 * x, -x, 1.0)
    >>> r.ok, r.step, r.f
    (True, 1.0, 0.0)
    """

    c1: float = 1e-4
    c2: float = 0.9
    max_evaluations: int = 25
    max_step: float = 1e10
    xtol: float = 1e-14

    def __post_init__(self) -> None:
        if not (isinstance(self.c1, (int, float)) and isinstance(self.c2, (int, float))
                and 0.0 < self.c1 < self.c2 < 1.0):
            raise ValueError(f"line search constants must satisfy 0 < c1 < c2 < 1, got "
                             f"c1={self.c1!r}, c2={self.c2!r}; e.g. c1=1e-4, c2=0.9")
        if not is_int(self.max_evaluations) \
                or self.max_evaluations < 1:
            raise ValueError(f"max_evaluations must be an int >= 1, got {self.max_evaluations!r}")
        if not (isinstance(self.max_step, (int, float)) and self.max_step > 0
                and math.isfinite(self.max_step)):
            raise ValueError(f"max_step must be a finite number > 0, got {self.max_step!r}")
        if not (isinstance(self.xtol, (int, float)) and 0 <= self.xtol < 1):
            raise ValueError(f"xtol must be in [0, 1), got {self.xtol!r}")

    def __call__(self, fg: Objective, x: Tensor, f: float, g: Tensor, d: Tensor,
                 step: float = 1.0) -> LineSearchResult:
        """Search along ``d`` from ``x`` (value ``f``, gradient ``g``), first trying ``step``.

        Args:
            fg: the objective, x -> (value, gradient).
            x, f, g: the start point, its value and gradient (flat float64).
            d: the search direction (g^T d < 0 for a descent direction).
            step: the first trial step (> 0; clipped to ``max_step``).

        Returns:
            A :class:`LineSearchResult`; never raises on a failed search.
        """
        return _Search(self, as_objective(fg), x, float(f), g, d)(step)


class _Search:
    """One line search's working state (the phi evaluations and the best point)."""

    def __init__(self, cfg: StrongWolfe, fg, x: Tensor, f0: float, g0: Tensor, d: Tensor):
        self.cfg, self.fg, self.x, self.d = cfg, fg, x, d
        self.f0, self.g0 = f0, g0
        self.dphi0 = float(torch.dot(g0, d))
        self.evals = 0
        self.best: tuple[float, float, Tensor] | None = None  # (step, f, g), f < f0
        self.non_finite = False

    def phi(self, a: float) -> tuple[float, float, Tensor]:
        f, g = self.fg(self.x + a * self.d)
        self.evals += 1
        if not (math.isfinite(f) and bool(torch.isfinite(g).all())):
            self.non_finite = True
            return math.inf, math.nan, g
        if f < self.f0 and (self.best is None or f < self.best[1]):
            self.best = (a, f, g)
        return f, float(torch.dot(g, self.d)), g

    def armijo_fails(self, a: float, fa: float) -> bool:
        return fa > self.f0 + self.cfg.c1 * a * self.dphi0

    def curvature_holds(self, da: float) -> bool:
        return abs(da) <= -self.cfg.c2 * self.dphi0

    def fail(self, reason: str) -> LineSearchResult:
        if reason == MAX_EVALUATIONS and self.non_finite and self.best is None:
            reason = NON_FINITE
        if self.best is None:
            return LineSearchResult(0.0, self.f0, None, self.evals, False, reason)
        a, f, g = self.best
        return LineSearchResult(a, f, g, self.evals, False, reason)

    def __call__(self, step: float) -> LineSearchResult:
        cfg = self.cfg
        if not math.isfinite(self.dphi0) or not math.isfinite(self.f0):
            return self.fail(NON_FINITE)
        if self.dphi0 >= 0.0:
            return self.fail(NOT_DESCENT)
        if not (math.isfinite(step) and step > 0.0):
            step = 1.0
        a_prev, f_prev, d_prev = 0.0, self.f0, self.dphi0
        a = min(step, cfg.max_step)
        first = True
        while True:  # Algorithm 3.5: bracket a Wolfe step
            if self.evals >= cfg.max_evaluations:
                return self.fail(MAX_EVALUATIONS)
            fa, da, ga = self.phi(a)
            if self.armijo_fails(a, fa) or (not first and fa >= f_prev):
                return self.zoom(a_prev, f_prev, d_prev, a, fa, da)
            if self.curvature_holds(da):
                return LineSearchResult(a, fa, ga, self.evals, True, "")
            if da >= 0.0:
                return self.zoom(a, fa, da, a_prev, f_prev, d_prev)
            if a >= cfg.max_step:
                return self.fail(STEP_LIMIT)
            width = a - a_prev
            lo, hi = a + 1.1 * width, min(a + 4.0 * width, cfg.max_step)
            t = _cubic_min(a_prev, f_prev, d_prev, a, fa, da)
            nxt = hi if t is None or not (lo <= t <= hi) else t
            a_prev, f_prev, d_prev = a, fa, da
            a = max(min(nxt, cfg.max_step), a)
            first = False

    def zoom(self, a_lo: float, f_lo: float, d_lo: float, a_hi: float, f_hi: float,
             d_hi: float) -> LineSearchResult:
        """Algorithm 3.6: a_lo satisfies sufficient decrease with the lowest value seen,
        and [a_lo, a_hi] (either order) contains a strong-Wolfe step."""
        cfg = self.cfg
        while True:
            left, right = min(a_lo, a_hi), max(a_lo, a_hi)
            if right - left <= cfg.xtol * max(1.0, right):
                return self.fail(INTERVAL_TOO_SMALL)
            if self.evals >= cfg.max_evaluations:
                return self.fail(MAX_EVALUATIONS)
            t = None
            if math.isfinite(f_hi) and math.isfinite(d_hi):
                t = _cubic_min(a_lo, f_lo, d_lo, a_hi, f_hi, d_hi)
            margin = 0.1 * (right - left)
            if t is None or not (left + margin <= t <= right - margin):
                t = 0.5 * (left + right)  # safeguard: bisect
            ft, dt, gt = self.phi(t)
            if self.armijo_fails(t, ft) or ft >= f_lo:
                a_hi, f_hi, d_hi = t, ft, dt
                continue
            if self.curvature_holds(dt):
                return LineSearchResult(t, ft, gt, self.evals, True, "")
            if dt * (a_hi - a_lo) >= 0.0:
                a_hi, f_hi, d_hi = a_lo, f_lo, d_lo
            a_lo, f_lo, d_lo = t, ft, dt

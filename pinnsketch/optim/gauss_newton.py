"""Levenberg-Marquardt on a least-squares loss ||r(x)||^2 with the classic damping update.

With residuals r (M,) and their Jacobian J (M, P) at x, the step solves the damped
Gauss-Newton normal equations

    (J^T J + mu I) dx = -J^T r,

is accepted when the gain ratio

    rho = (F(x) - F(x + dx)) / (L(0) - L(dx)),   L(dx) = ||r + J dx||^2,
    L(0) - L(dx) = dx^T (mu dx - J^T r),

is positive, and mu follows Nielsen's rule (H. B. Nielsen, "Damping parameter in
Marquardt's method", IMM-REP-1999-05; Madsen, Nielsen & Tingleff, "Methods for non-linear
least squares problems", 2004, Algorithm 3.16): on success mu <- mu max(1/3, 1 - (2 rho -
1)^3), nu <- 2; on failure mu <- mu nu, nu <- 2 nu. The first mu is tau0 max diag(J^T J).

Why Levenberg-Marquardt rather than energy natural gradient (Mueller & Zeinhofer 2023, arXiv
2302.13163): both use the Gauss-Newton matrix J^T J, which is singular for an
over-parameterised network; LM's damping regularises it and adapts the trust region from the
gain ratio, so one step costs one Jacobian, one Cholesky factorisation and usually one loss
evaluation, with no line search and no pseudo-inverse tolerance to tune. Its dense
P x P matrix limits it to small networks, like the dense quasi-Newton methods.

One ``step`` forms J^T J once and tries dampings until one decreases the loss (at most
``max_tries``); it never raises on failure: a step where no damping helped says so
(``stalled``) and leaves x unchanged with mu raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from pinnsketch.checks import is_int
from pinnsketch.optim.line_search import Objective, as_objective
from pinnsketch.optim.protocol import OptimizerState, ResidualJacobian, StepInfo, check_start
from pinnsketch.optim.quasi_newton import DEFAULT_DENSE_LIMIT_BYTES, check_dense_bytes

__all__ = ["LMState", "LevenbergMarquardt", "levenberg_marquardt", "damped_step"]


def damped_step(JtJ: Tensor, Jtr: Tensor, mu: float) -> Tensor | None:
    """dx solving (J^T J + mu I) dx = -J^T r by Cholesky, or None if not positive definite."""
    A = JtJ.clone()
    A.diagonal().add_(mu)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        return None
    return torch.cholesky_solve(-Jtr.unsqueeze(1), L).squeeze(1)


@dataclass(frozen=True)
class LMState(OptimizerState):
    """State of Levenberg-Marquardt: the point, loss, gradient, damping mu and factor nu.

    ``mu`` is 0.0 until the first step sets it from J^T J.
    """

    kind: ClassVar[str] = "levenberg_marquardt"
    x: Tensor
    f: float
    g: Tensor
    mu: float = 0.0
    nu: float = 2.0
    iteration: int = 0
    evaluations: int = 0
    rejections: int = 0


@dataclass(frozen=True)
class LevenbergMarquardt:
    """Levenberg-Marquardt with Nielsen's damping rule (see the module docstring).

    Args:
        tau0: the first damping is tau0 max diag(J^T J).
        max_tries: dampings tried per step before giving up on it.
        max_bytes: refuse a P whose P x P matrix exceeds this (8 P^2 bytes).

    >>> A = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
    >>> t = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    >>> rj = lambda x: (A @ x - t, A)
    >>> fg = lambda x: (float((A @ x - t).pow(2).sum()), 2 * A.T @ (A @ x - t))
    >>> opt = levenberg_marquardt(); x = torch.zeros(2, dtype=torch.float64)
    >>> state, info = opt.step(opt.init(x, *fg(x)), fg, rj)
    >>> info.line_search_ok and state.f < fg(x)[0]
    True
    """

    needs_jacobian: ClassVar[bool] = True  # step(state, fg, rj) (protocol module doc)

    tau0: float = 1e-3
    max_tries: int = 30
    max_bytes: int = DEFAULT_DENSE_LIMIT_BYTES

    def __post_init__(self) -> None:
        if not (isinstance(self.tau0, (int, float)) and self.tau0 > 0 and math.isfinite(self.tau0)):
            raise ValueError(f"tau0 must be a finite number > 0, got {self.tau0!r}; e.g. 1e-3")
        if not is_int(self.max_tries) \
                or self.max_tries < 1:
            raise ValueError(f"max_tries must be an int >= 1, got {self.max_tries!r}")

    @property
    def name(self) -> str:
        return "lm"

    def init(self, x: Tensor, f: float, g: Tensor) -> LMState:
        x, f, g = check_start(x, f, g)
        check_dense_bytes(x.numel(), self.max_bytes)
        return LMState(x.detach().clone(), f, g.detach().clone())

    def rebase(self, state: LMState, f: float, g: Tensor) -> LMState:
        _, f, g = check_start(state.x, f, g)
        return state.replace(f=f, g=g.detach().clone())

    def state_from_dict(self, d: dict[str, Any]) -> LMState:
        return LMState.from_dict(d)

    def step(self, state: LMState, fg: Objective, rj: ResidualJacobian
             ) -> tuple[LMState, StepInfo]:
        """One accepted LM step (or a report that no damping helped)."""
        fg = as_objective(fg)
        r, J = rj(state.x)
        if J.dim() != 2 or J.shape != (r.numel(), state.x.numel()):
            raise ValueError(f"rj must return r (M,) and J (M, {state.x.numel()}), got "
                             f"{tuple(r.shape)} and {tuple(J.shape)}")
        JtJ = J.T @ J
        Jtr = J.T @ r
        mu, nu = state.mu, state.nu
        if mu <= 0.0:
            mu = self.tau0 * float(JtJ.diagonal().max())
            mu = mu if mu > 0 else self.tau0
        evals, rejected = 1, 0
        for _ in range(self.max_tries):
            dx = damped_step(JtJ, Jtr, mu)
            if dx is not None and bool(torch.isfinite(dx).all()):
                x_new = state.x + dx
                f_new, g_new = fg(x_new)
                evals += 1
                predicted = float(torch.dot(dx, mu * dx - Jtr))
                gain = (state.f - f_new) / predicted if predicted > 0 else -1.0
                if math.isfinite(f_new) and math.isfinite(gain) and gain > 0:
                    new_mu = mu * max(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3)
                    new = state.replace(x=x_new, f=f_new, g=g_new, mu=new_mu, nu=2.0,
                                        iteration=state.iteration + 1,
                                        evaluations=state.evaluations + evals,
                                        rejections=state.rejections + rejected)
                    return new, StepInfo(f_new, evals, float(dx.norm()), True,
                                         extras={"damping": mu, "gain_ratio": gain})
            rejected += 1
            mu, nu = mu * nu, nu * 2.0
            if not math.isfinite(mu):
                break
        new = state.replace(mu=mu if math.isfinite(mu) else state.mu, nu=nu,
                            iteration=state.iteration + 1,
                            evaluations=state.evaluations + evals,
                            rejections=state.rejections + rejected)
        msg = (f"lm: no damping up to {mu:.3g} decreased the loss in {rejected} tries; "
               "stayed at the current point")
        return new, StepInfo(state.f, evals, 0.0, False, stalled=True, message=msg,
                             extras={"damping": mu})


def levenberg_marquardt(**kw: Any) -> LevenbergMarquardt:
    """Levenberg-Marquardt. Keywords as for :class:`LevenbergMarquardt`."""
    return LevenbergMarquardt(**kw)

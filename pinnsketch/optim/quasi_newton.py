"""Quasi-Newton methods on a flat float64 parameter vector: dense BFGS, self-scaled BFGS,
self-scaled Broyden, and L-BFGS, all on the strong-Wolfe line search.

Dense methods keep the inverse Hessian approximation H (P x P, float64) and step along
d = -H g. After an accepted step s = x+ - x, y = g+ - g, the self-scaled Broyden family
updates

    H+ = (1/tau) [H - (H y y^T H) / (y^T H y) + phi v v^T] + s s^T / (y^T s),
    v  = sqrt(y^T H y) [s / (y^T s) - H y / (y^T H y)],

(Urban, Stefanou & Pons, "Unveiling the optimization process of physics informed neural
networks", J. Comput. Phys. 2025, arXiv 2405.04230, eq. (10); Al-Baali, "Numerical
experience with a class of self-scaling quasi-Newton algorithms", J. Optim. Theory Appl. 96,
1998). phi = 1 is BFGS, phi = 0 DFP; tau rescales the old curvature. With

    b = s^T H^{-1} s / (y^T s) = -a s^T g / (y^T s)   (a the step length, d = -H g),
    h = y^T H y / (y^T s),      a_k = b h - 1 >= 0,

the choices are

- ``bfgs``: tau = 1, phi = 1 (the textbook update; Nocedal & Wright eq. 6.17);
- ``ssbfgs``: tau = min(1, 1/b), phi = 1 (Al-Baali's choice; Urban et al. eq. (11));
- ``ssbroyden``: Urban et al. eqs. (13)-(23) (their "SSBroyden2", also used by Kiyani et
  al., arXiv 2501.16371, and described in arXiv 2603.10599):
  c = sqrt(a_k / (1 + a_k)), rho- = min(1, h (1 - c)), theta- = (rho- - 1) / a_k,
  theta+ = 1 / rho-, theta = max(theta-, min(theta+, (1 - b) / b)), sigma = 1 + a_k theta,
  rho+ = min(1, 1/b), tau = min(rho+ sigma^(1/(1-P)), sigma) if theta <= 0 else
  rho+ min(sigma^(1/(1-P)), 1/theta), and phi = (1 - theta) / sigma (theta is the Broyden
  parameter of the direct update of B = H^-1; phi the same member written for H).
  theta >= theta- > -1/a_k keeps sigma > 0, so H+ stays positive definite.

Safeguards: the update is skipped (and the step info says so) when
y^T s <= eps ||s|| ||y||; before the first update H = I is replaced by (y^T s / y^T y) I
(Nocedal & Wright eq. 6.20) unless ``initial_scaling=False``; a failed line search moves to
the best point it saw (if any point decreased the loss), resets H to (y^T s / y^T y) I from
the newest curvature pair (I before the first), reports it, and the method goes on.

``lbfgs`` is the limited-memory BFGS two-loop recursion (Nocedal & Wright Algorithm 7.4,
H0 = (y^T s / y^T y) I from the newest pair) on the same line search and safeguards.

A dense method holds 8 P^2 bytes (:func:`dense_bytes`; a step briefly holds two such
matrices); ``init`` refuses a P whose matrix exceeds ``max_bytes`` and :func:`fit_dense`
makes the choice between refusing and falling back to L-BFGS explicit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from pinnsketch.checks import is_int
from pinnsketch.optim.line_search import LineSearchResult, Objective, StrongWolfe, as_objective
from pinnsketch.optim.protocol import OptimizerState, StepInfo, check_start

__all__ = ["UPDATES", "DEFAULT_DENSE_LIMIT_BYTES", "dense_bytes", "check_dense_bytes", "fit_dense",
           "broyden_update", "self_scaling", "DenseState", "DenseQuasiNewton", "LBFGSState",
           "LBFGS", "bfgs", "ssbfgs", "ssbroyden", "lbfgs"]

UPDATES = ("bfgs", "ssbfgs", "ssbroyden")
DEFAULT_DENSE_LIMIT_BYTES = 2 * 1024**3
"""2 GiB: P up to about 16,000 parameters (8 P^2 bytes)."""


def dense_bytes(num_params: int) -> int:
    """Bytes of a dense P x P float64 inverse Hessian, 8 P^2.

    >>> dense_bytes(1000)
    8000000
    """
    if not is_int(num_params) or num_params < 1:
        raise ValueError(f"num_params must be an int >= 1, got {num_params!r}")
    return 8 * num_params * num_params


def check_dense_bytes(num_params: int, max_bytes: int) -> None:
    """Refuse (ValueError naming P, the bytes and the limit) a matrix over ``max_bytes``."""
    need = dense_bytes(num_params)
    if need > max_bytes:
        raise ValueError(
            f"a dense inverse Hessian on P={num_params} parameters holds {need / 1e9:.2f} GB "
            f"(8 P^2 bytes), over the limit of {max_bytes / 1e9:.2f} GB; use L-BFGS "
            "(pinnsketch.optim.lbfgs()), a smaller network, or a larger max_bytes; "
            "fit_dense(...) chooses between them explicitly")


def broyden_update(H: Tensor, s: Tensor, y: Tensor, tau: float = 1.0, phi: float = 1.0,
                   inplace: bool = False, Hy: Tensor | None = None) -> Tensor:
    """The self-scaled Broyden-family inverse update (Urban et al. 2025, eq. (10)).

    Expanding phi v v^T with u = H y, the update is one rank-2 correction of H / tau:

        H+ = H / tau + c_ss s s^T + c_su (s u^T + u s^T) + c_uu u u^T,
        c_ss = (1 + phi (y^T H y) / (tau y^T s)) / y^T s,  c_su = -phi / (tau y^T s),
        c_uu = (phi - 1) / (tau y^T H y).

    Needs y^T s > 0 and y^T H y > 0 (the caller's safeguards). Returns a new tensor, or
    ``H`` itself updated in place when ``inplace`` (2.5 x faster at P = 2000 here: no fresh
    P x P allocation). ``Hy``: H y if the caller has it already.

    >>> H = torch.eye(2, dtype=torch.float64)
    >>> s = torch.tensor([1.0, 0.0], dtype=torch.float64); y = torch.tensor([2.0, 1.0], dtype=torch.float64)
    >>> torch.allclose(broyden_update(H, s, y) @ y, s)
    True
    """
    u = H @ y if Hy is None else Hy
    ys = float(torch.dot(y, s))
    yHy = float(torch.dot(y, u))
    c_ss = (1.0 + phi * yHy / (tau * ys)) / ys
    c_su = -phi / (tau * ys)
    c_uu = (phi - 1.0) / (tau * yHy)
    W = torch.stack([s, u], dim=1)  # (P, 2)
    C = torch.tensor([[c_ss, c_su], [c_su, c_uu]], dtype=H.dtype, device=H.device)
    if inplace:
        return H.addmm_(W @ C, W.T, beta=1.0 / tau)
    return torch.addmm(H, W @ C, W.T, beta=1.0 / tau)


def self_scaling(update: str, b: float, h: float, num_params: int) -> tuple[float, float]:
    """(tau, phi) of ``update`` from b = s^T B s / y^T s and h = y^T H y / y^T s.

    See the module docstring for the formulas (Urban et al. 2025, eqs. (11) and (13)-(23)).
    ``bfgs`` is (1, 1). When a = b h - 1 is at round-off level (s parallel to H y) every
    member of the family gives the same matrix and theta = 0 (BFGS) is used.

    >>> self_scaling("bfgs", 2.0, 3.0, 10)
    (1.0, 1.0)
    >>> self_scaling("ssbfgs", 2.0, 3.0, 10)
    (0.5, 1.0)
    """
    if update == "bfgs":
        return 1.0, 1.0
    rho_plus = min(1.0, 1.0 / b)
    if update == "ssbfgs":
        return rho_plus, 1.0
    if update != "ssbroyden":
        raise ValueError(f"unknown quasi-Newton update {update!r}; valid: {', '.join(UPDATES)}")
    a = b * h - 1.0
    if a <= 1e-12:
        theta = 0.0
    else:
        c = math.sqrt(a / (1.0 + a))
        rho_minus = min(1.0, h * (1.0 - c))
        theta_minus = (rho_minus - 1.0) / a
        theta_plus = 1.0 / rho_minus
        theta = max(theta_minus, min(theta_plus, (1.0 - b) / b))
    sigma = 1.0 + max(a, 0.0) * theta
    sigma_n = sigma ** (1.0 / (1.0 - num_params)) if num_params > 1 else 1.0
    if theta <= 0.0:
        tau = min(rho_plus * sigma_n, sigma)
    else:
        tau = rho_plus * min(sigma_n, 1.0 / theta)
    return tau, (1.0 - theta) / sigma


def _initial_step(g: Tensor) -> float:
    """First trial step with H = I: min(1, 1 / ||g||_1) (no curvature known yet)."""
    n1 = float(g.abs().sum())
    return min(1.0, 1.0 / n1) if n1 > 0 else 1.0


def _pair(x: Tensor, d: Tensor, res: LineSearchResult, g: Tensor, eps: float
          ) -> tuple[Tensor, Tensor, Tensor, float, bool]:
    """(x+, s, y, y^T s, usable) for the point the line search returned."""
    x_new = x + res.step * d
    s = res.step * d
    y = res.g - g
    ys = float(torch.dot(y, s))
    usable = ys > eps * float(s.norm()) * float(y.norm()) and ys > 0.0
    return x_new, s, y, ys, usable


@dataclass(frozen=True)
class DenseState(OptimizerState):
    """State of a dense quasi-Newton method.

    Attributes:
        x, f, g: the current point, loss and gradient.
        H: the inverse Hessian approximation (P, P).
        iteration: steps taken.
        updates: curvature updates since the last reset (0: H is a scaled identity).
        gamma: y^T s / y^T y of the newest usable pair (0.0 before the first).
        evaluations, resets, skips: running totals.
    """

    kind: ClassVar[str] = "dense_quasi_newton"
    x: Tensor
    f: float
    g: Tensor
    H: Tensor
    iteration: int = 0
    updates: int = 0
    gamma: float = 0.0
    evaluations: int = 0
    resets: int = 0
    skips: int = 0


@dataclass(frozen=True)
class DenseQuasiNewton:
    """Dense BFGS / SSBFGS / SSBroyden (see the module docstring).

    Args:
        update: one of :data:`UPDATES`.
        search: the line search (any callable with :class:`StrongWolfe`'s signature).
        skip_eps: skip the update when y^T s <= skip_eps ||s|| ||y||.
        initial_scaling: replace H = I by (y^T s / y^T y) I before the first update.
        max_bytes: refuse a P whose P x P matrix exceeds this (:func:`dense_bytes`).
        inplace: update H in the given state's tensor instead of a new one (no second
            P x P matrix; the state passed to ``step`` must then not be used again, so
            take ``to_dict()`` copies for checkpoints or roll-back).

    Raises:
        ValueError: an unknown update or a bad constant.

    >>> fg = lambda x: (float(x @ x), 2 * x)
    >>> opt = bfgs(); x = torch.tensor([1.0, -2.0], dtype=torch.float64)
    >>> state = opt.init(x, *fg(x))
    >>> for _ in range(3):
    ...     state, info = opt.step(state, fg)
    >>> info.line_search_ok, state.f < 1e-20
    (True, True)
    """

    needs_jacobian: ClassVar[bool] = False  # step(state, fg)

    update: str = "bfgs"
    search: Any = field(default_factory=StrongWolfe)
    skip_eps: float = 1e-10
    initial_scaling: bool = True
    max_bytes: int = DEFAULT_DENSE_LIMIT_BYTES
    inplace: bool = False

    def __post_init__(self) -> None:
        if self.update not in UPDATES:
            raise ValueError(f"unknown quasi-Newton update {self.update!r}; valid: "
                             f"{', '.join(UPDATES)}")
        _check_eps(self.skip_eps)
        for name in ("initial_scaling", "inplace"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not is_int(self.max_bytes) \
                or self.max_bytes < 8:
            raise ValueError(f"max_bytes must be an int >= 8, got {self.max_bytes!r}")

    @property
    def name(self) -> str:
        return self.update

    def init(self, x: Tensor, f: float, g: Tensor) -> DenseState:
        """Start at x with loss f and gradient g; H = I.

        Raises:
            ValueError: bad x, f, g, or a P x P matrix over ``max_bytes``.
        """
        x, f, g = check_start(x, f, g)
        check_dense_bytes(x.numel(), self.max_bytes)
        H = torch.eye(x.numel(), dtype=torch.float64, device=x.device)
        return DenseState(x.detach().clone(), f, g.detach().clone(), H)

    def rebase(self, state: DenseState, f: float, g: Tensor) -> DenseState:
        """Same point and H, the objective's new value and gradient (e.g. a resampled batch)."""
        _, f, g = check_start(state.x, f, g)
        return state.replace(f=f, g=g.detach().clone())

    def state_from_dict(self, d: dict[str, Any]) -> DenseState:
        return DenseState.from_dict(d)

    def step(self, state: DenseState, fg: Objective) -> tuple[DenseState, StepInfo]:
        """One iteration: direction -H g, strong-Wolfe search, update (or reset)."""
        fg = as_objective(fg)
        fresh = state.updates == 0 and state.gamma == 0.0
        d = -(state.H @ state.g)
        step0 = _initial_step(state.g) if fresh else 1.0
        res = self.search(fg, state.x, state.f, state.g, d, step0)
        evals = state.evaluations + res.evaluations
        if not res.ok:
            return self._reset(state, d, res, evals)
        x_new, s, y, ys, usable = _pair(state.x, d, res, state.g, self.skip_eps)
        common = dict(x=x_new, f=res.f, g=res.g, iteration=state.iteration + 1,
                      evaluations=evals)
        if not usable:
            msg = (f"skipped the {self.update} update: y^T s = {ys:.3g} <= {self.skip_eps:g} "
                   "||s|| ||y|| (no reliable curvature along this step)")
            new = state.replace(**common, skips=state.skips + 1)
            return new, StepInfo(res.f, res.evaluations, res.step, True, skipped_update=True,
                                 message=msg)
        gamma = ys / float(torch.dot(y, y))
        H, fresh_matrix = state.H, False
        if state.updates == 0 and self.initial_scaling:
            H = gamma * torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
            fresh_matrix = True
        u = H @ y
        h = float(torch.dot(y, u)) / ys
        b = -res.step * float(torch.dot(s, state.g)) / ys
        tau, phi = self_scaling(self.update, b, h, x_new.numel())
        message = ""
        if not (math.isfinite(tau) and tau > 0 and math.isfinite(phi)):
            message = (f"{self.update}: non-finite scaling (tau={tau}, phi={phi}) from "
                       f"b={b:.3g}, h={h:.3g}; used the BFGS update for this step")
            tau, phi = 1.0, 1.0
        H_new = broyden_update(H, s, y, tau, phi, inplace=self.inplace or fresh_matrix, Hy=u)
        new = state.replace(**common, H=H_new, updates=state.updates + 1, gamma=gamma)
        return new, StepInfo(res.f, res.evaluations, res.step, True, message=message,
                             extras={"tau": tau, "phi": phi})

    def _reset(self, state: DenseState, d: Tensor, res: LineSearchResult, evals: int
               ) -> tuple[DenseState, StepInfo]:
        x, f, g, gamma = state.x, state.f, state.g, state.gamma
        if res.has_point:
            x, s, y, ys, usable = _pair(state.x, d, res, state.g, self.skip_eps)
            f, g = res.f, res.g
            if usable:
                gamma = ys / float(torch.dot(y, y))
        scale = gamma if gamma > 0 else 1.0
        H = scale * torch.eye(x.numel(), dtype=torch.float64, device=x.device)
        stalled = state.updates == 0 and not res.has_point
        new = state.replace(x=x, f=f, g=g, H=H, iteration=state.iteration + 1, updates=0,
                            gamma=gamma, evaluations=evals, resets=state.resets + 1)
        return new, StepInfo(f, res.evaluations, res.step, False, reset=True, stalled=stalled,
                             message=_reset_message(self.update, res, scale, stalled))


def _reset_message(name: str, res: LineSearchResult, scale: float, stalled: bool) -> str:
    where = (f"moved to its best point (step {res.step:.3g}, loss {res.f:.6g})" if res.has_point
             else "stayed at the current point")
    msg = (f"{name}: line search failed ({res.reason}, {res.evaluations} evaluations); {where}; "
           f"curvature reset to {scale:.3g} I")
    if stalled:
        msg += "; it failed from a scaled identity already, so no progress is possible here"
    return msg


def _check_eps(eps: float) -> None:
    if not (isinstance(eps, (int, float)) and 0.0 <= eps < 1.0):
        raise ValueError(f"skip_eps must be in [0, 1), got {eps!r}; e.g. 1e-10")


@dataclass(frozen=True)
class LBFGSState(OptimizerState):
    """State of L-BFGS: the point, and the newest curvature pairs (oldest first)."""

    kind: ClassVar[str] = "lbfgs"
    x: Tensor
    f: float
    g: Tensor
    s: tuple[Tensor, ...] = ()
    y: tuple[Tensor, ...] = ()
    gamma: float = 0.0
    iteration: int = 0
    evaluations: int = 0
    resets: int = 0
    skips: int = 0


def two_loop(g: Tensor, s: tuple[Tensor, ...], y: tuple[Tensor, ...], gamma: float) -> Tensor:
    """H g by the L-BFGS two-loop recursion with H0 = gamma I (Nocedal & Wright Alg. 7.4)."""
    q = g.clone()
    rhos = [1.0 / float(torch.dot(yi, si)) for si, yi in zip(s, y)]
    alphas = []
    for si, yi, rho in zip(reversed(s), reversed(y), reversed(rhos)):
        a = rho * float(torch.dot(si, q))
        alphas.append(a)
        q.add_(yi, alpha=-a)
    q.mul_(gamma)
    for si, yi, rho, a in zip(s, y, rhos, reversed(alphas)):
        beta = rho * float(torch.dot(yi, q))
        q.add_(si, alpha=a - beta)
    return q


@dataclass(frozen=True)
class LBFGS:
    """L-BFGS with history ``history`` on the strong-Wolfe line search.

    Args:
        history: curvature pairs kept (m >= 1).
        search, skip_eps: as for :class:`DenseQuasiNewton`.

    >>> fg = lambda x: (float(x @ x), 2 * x)
    >>> opt = lbfgs(history=5); x = torch.tensor([1.0, -2.0], dtype=torch.float64)
    >>> state = opt.init(x, *fg(x))
    >>> for _ in range(3):
    ...     state, info = opt.step(state, fg)
    >>> info.line_search_ok, state.f < 1e-20
    (True, True)
    """

    needs_jacobian: ClassVar[bool] = False  # step(state, fg)

    history: int = 50
    search: Any = field(default_factory=StrongWolfe)
    skip_eps: float = 1e-10

    def __post_init__(self) -> None:
        if not is_int(self.history) or self.history < 1:
            raise ValueError(f"history must be an int >= 1, got {self.history!r}")
        _check_eps(self.skip_eps)

    @property
    def name(self) -> str:
        return "lbfgs"

    def init(self, x: Tensor, f: float, g: Tensor) -> LBFGSState:
        x, f, g = check_start(x, f, g)
        return LBFGSState(x.detach().clone(), f, g.detach().clone())

    def rebase(self, state: LBFGSState, f: float, g: Tensor) -> LBFGSState:
        _, f, g = check_start(state.x, f, g)
        return state.replace(f=f, g=g.detach().clone())

    def state_from_dict(self, d: dict[str, Any]) -> LBFGSState:
        return LBFGSState.from_dict(d)

    def step(self, state: LBFGSState, fg: Objective) -> tuple[LBFGSState, StepInfo]:
        fg = as_objective(fg)
        fresh = not state.s and state.gamma == 0.0
        gamma = state.gamma if state.gamma > 0 else 1.0
        d = -two_loop(state.g, state.s, state.y, gamma)
        res = self.search(fg, state.x, state.f, state.g, d,
                          _initial_step(state.g) if fresh else 1.0)
        evals = state.evaluations + res.evaluations
        if not res.ok:
            x, f, g, new_gamma = state.x, state.f, state.g, state.gamma
            if res.has_point:
                x, s, y, ys, usable = _pair(state.x, d, res, state.g, self.skip_eps)
                f, g = res.f, res.g
                if usable:
                    new_gamma = ys / float(torch.dot(y, y))
            scale = new_gamma if new_gamma > 0 else 1.0
            stalled = not state.s and not res.has_point
            new = state.replace(x=x, f=f, g=g, s=(), y=(), gamma=new_gamma,
                                iteration=state.iteration + 1, evaluations=evals,
                                resets=state.resets + 1)
            return new, StepInfo(f, res.evaluations, res.step, False, reset=True,
                                 stalled=stalled,
                                 message=_reset_message("lbfgs", res, scale, stalled))
        x_new, s, y, ys, usable = _pair(state.x, d, res, state.g, self.skip_eps)
        common = dict(x=x_new, f=res.f, g=res.g, iteration=state.iteration + 1,
                      evaluations=evals)
        if not usable:
            msg = (f"skipped the lbfgs update: y^T s = {ys:.3g} <= {self.skip_eps:g} "
                   "||s|| ||y||")
            return (state.replace(**common, skips=state.skips + 1),
                    StepInfo(res.f, res.evaluations, res.step, True, skipped_update=True,
                             message=msg))
        keep = self.history - 1
        S = (state.s[-keep:] if keep else ()) + (s,)
        Y = (state.y[-keep:] if keep else ()) + (y,)
        new = state.replace(**common, s=S, y=Y, gamma=ys / float(torch.dot(y, y)))
        return new, StepInfo(res.f, res.evaluations, res.step, True)


def bfgs(**kw: Any) -> DenseQuasiNewton:
    """Dense BFGS (tau = phi = 1). Keywords as for :class:`DenseQuasiNewton`."""
    return DenseQuasiNewton(update="bfgs", **kw)


def ssbfgs(**kw: Any) -> DenseQuasiNewton:
    """Self-scaled BFGS, tau = min(1, 1/b) (Al-Baali 1998; Urban et al. 2025 eq. (11))."""
    return DenseQuasiNewton(update="ssbfgs", **kw)


def ssbroyden(**kw: Any) -> DenseQuasiNewton:
    """Self-scaled Broyden (Urban et al. 2025, eqs. (13)-(23))."""
    return DenseQuasiNewton(update="ssbroyden", **kw)


def lbfgs(history: int = 50, **kw: Any) -> LBFGS:
    """L-BFGS with ``history`` pairs. Keywords as for :class:`LBFGS`."""
    return LBFGS(history=history, **kw)


def fit_dense(optimizer, num_params: int, fallback: LBFGS | None = None) -> tuple[Any, str]:
    """``optimizer`` if its dense P x P matrix (a dense quasi-Newton method's inverse Hessian,
    Levenberg-Marquardt's J^T J) fits ``optimizer.max_bytes``, else ``fallback``.

    Returns (the optimizer to use, a sentence saying what was chosen and why; "" when the
    requested one fits or is not dense).

    Raises:
        ValueError: the matrix does not fit and no fallback is given (the message names
            P, the bytes and the limit).

    >>> opt, why = fit_dense(bfgs(max_bytes=10**6), 1000, fallback=lbfgs())
    >>> opt.name, why.split(";")[0]
    ('lbfgs', 'bfgs on P=1000 parameters would hold 0.008 GB (8 P^2 bytes) > the limit 0.001 GB')
    """
    if isinstance(optimizer, LBFGS):  # the one method without a P x P matrix
        return optimizer, ""
    need = dense_bytes(num_params)
    if need <= optimizer.max_bytes:
        return optimizer, ""
    if fallback is None:
        check_dense_bytes(num_params, optimizer.max_bytes)
    why = (f"{optimizer.name} on P={num_params} parameters would hold {need / 1e9:.3g} GB "
           f"(8 P^2 bytes) > the limit {optimizer.max_bytes / 1e9:.3g} GB; using L-BFGS "
           f"(history {fallback.history}) instead")
    return fallback, why

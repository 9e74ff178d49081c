"""Loss-weighting policies for PINNs: immutable rules, explicit state, plain tensors and floats.

Three rules, each ``init(...) -> state`` and ``update(state, measurements) -> state`` (or a
pure function), none holding a network, a task or an optimizer:

- :class:`GradNormBalancing`: global weights of the loss terms from their gradient norms,
  lambda_hat_i = sum_j ||grad L_j|| / ||grad L_i||, smoothed by a moving average
  lambda <- alpha lambda + (1 - alpha) lambda_hat (Wang, Wang & Perdikaris, "An expert's guide
  to training physics-informed neural networks", arXiv 2308.08468, 2023, loss balancing).
- :func:`causal_weights`: weights of time slices t_1 < ... < t_M of a time-dependent
  residual, w_i = exp(-eps sum_{k<i} L_k), so a slice counts only once the earlier ones are
  resolved (Wang, Sankaran & Perdikaris, "Respecting causality is all you need for training
  physics-informed neural networks", arXiv 2203.07404, 2022); the weights are
  constants for the gradient.
- :class:`ResidualBasedAttention`: one weight per collocation point,
  lambda_i <- gamma lambda_i + eta |r_i| / max_j |r_j| (Anagnostopoulos, Toscano, Stergiopulos
  & Karniadakis, "Residual-based attention in physics-informed neural networks", CMAME 421,
  2024, arXiv 2307.00379); the weighted residual loss is mean((lambda_i r_i)^2).

Every rule refuses bad constants and non-finite inputs with a message naming the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pinnsketch.checks import is_int

__all__ = ["GradNormBalancing", "GradNormState", "causal_weights", "slice_losses",
           "ResidualBasedAttention"]


def _unit_interval(owner: str, name: str, value: float, closed_right: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and 0.0 <= value and (value <= 1.0 if closed_right else value < 1.0)
    if not ok:
        right = "]" if closed_right else ")"
        raise ValueError(f"{owner}: {name} must be in [0, 1{right}, got {value!r}")


def _positive(owner: str, name: str, value: float, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0.0 if allow_zero else value > 0.0)
    if not ok:
        low = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}: {name} must be a finite number {low}, got {value!r}")


@dataclass(frozen=True)
class GradNormState:
    """The current term weights (name -> weight) and how many updates made them."""

    weights: dict[str, float]
    updates: int = 0

    def to_dict(self) -> dict:
        return {"weights": dict(self.weights), "updates": self.updates}

    @classmethod
    def from_dict(cls, d: dict) -> GradNormState:
        return cls(dict(d["weights"]), int(d["updates"]))


@dataclass(frozen=True)
class GradNormBalancing:
    """Gradient-norm balancing of loss terms (Wang, Wang & Perdikaris 2023).

    Args:
        alpha: moving-average weight of the old weights, in [0, 1) (the paper: 0.9).
        every: update the weights every ``every`` steps (the paper: 1000); the policy only
            stores it, the loop decides when to call :meth:`update`.

    >>> pol = GradNormBalancing(alpha=0.5)
    >>> st = pol.init(["pde", "ic"])
    >>> st = pol.update(st, {"pde": 1.0, "ic": 3.0})
    >>> st.weights  # lambda_hat = (4, 4/3), halfway from (1, 1)
    {'pde': 2.5, 'ic': 1.1666666666666665}
    """

    alpha: float = 0.9
    every: int = 1000

    def __post_init__(self) -> None:
        _unit_interval("GradNormBalancing", "alpha", self.alpha)
        if not is_int(self.every) or self.every < 1:
            raise ValueError(f"GradNormBalancing: every must be an int >= 1, got {self.every!r}")

    def init(self, terms) -> GradNormState:
        names = list(terms)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"GradNormBalancing needs distinct term names, got {names}")
        return GradNormState({n: 1.0 for n in names})

    def update(self, state: GradNormState, grad_norms: dict[str, float]) -> GradNormState:
        """New weights from the current ||grad L_i|| of every term (unweighted terms).

        Raises:
            ValueError: norms missing for a term, non-finite, or not positive.
        """
        if set(grad_norms) != set(state.weights):
            raise ValueError(f"gradient norms for {sorted(grad_norms)}, but the weighted terms "
                             f"are {sorted(state.weights)}")
        for name, v in grad_norms.items():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"gradient norm of term {name!r} is {v!r}; it must be finite "
                                 "and > 0 (a term with zero gradient cannot be balanced)")
        total = sum(grad_norms.values())
        a = self.alpha
        new = {n: a * w + (1 - a) * total / grad_norms[n] for n, w in state.weights.items()}
        return GradNormState(new, state.updates + 1)


def slice_losses(times: Tensor, residuals: Tensor, t0: float, t1: float, slices: int) -> Tensor:
    """Mean squared residual per time slice: [t0, t1] cut into ``slices`` equal parts.

    Returns (slices,) L_i = mean over the points with t in slice i of r^2 (0 for an empty
    slice); differentiable in ``residuals``. The last slice includes t1.

    >>> slice_losses(torch.tensor([0.1, 0.2, 0.9]), torch.tensor([1.0, 3.0, 2.0]), 0, 1, 2)
    tensor([5., 4.])
    """
    if not is_int(slices) or slices < 1:
        raise ValueError(f"slices must be an int >= 1, got {slices!r}")
    if not t1 > t0:
        raise ValueError(f"need t1 > t0, got [{t0}, {t1}]")
    if times.shape != residuals.shape or times.dim() != 1:
        raise ValueError(f"times {tuple(times.shape)} and residuals {tuple(residuals.shape)} "
                         "must be 1-D of one length")
    idx = ((times.detach() - t0) / (t1 - t0) * slices).floor().long().clamp(0, slices - 1)
    sums = torch.zeros(slices, dtype=residuals.dtype, device=residuals.device)
    sums = sums.index_add(0, idx, residuals.pow(2))
    counts = torch.bincount(idx, minlength=slices).to(residuals.dtype)
    return sums / counts.clamp(min=1)


def causal_weights(losses: Tensor, eps: float) -> Tensor:
    """w_i = exp(-eps sum_{k<i} L_k) for slice losses L_1..L_M (Wang, Sankaran & Perdikaris 2022).

    Returned detached (the weights are constants for the gradient); w_1 = 1. The causal
    loss is then mean_i w_i L_i.

    Raises:
        ValueError: eps negative or non-finite; losses not a finite 1-D tensor >= 0.

    >>> causal_weights(torch.tensor([1.0, 2.0, 3.0]), eps=0.5)
    tensor([1.0000, 0.6065, 0.2231])
    """
    _positive("causal_weights", "eps", eps, allow_zero=True)
    if losses.dim() != 1 or not bool(torch.isfinite(losses).all()) or bool((losses < 0).any()):
        raise ValueError("causal_weights needs a 1-D tensor of finite slice losses >= 0")
    L = losses.detach()
    before = torch.cat([L.new_zeros(1), torch.cumsum(L, 0)[:-1]])
    return torch.exp(-eps * before)


@dataclass(frozen=True)
class ResidualBasedAttention:
    """Per-point residual-based attention weights (Anagnostopoulos et al. 2024).

    Args:
        gamma: memory of the old weights, in [0, 1) (the paper: 0.999).
        eta: learning rate of the attention, > 0 (the paper: 0.01); the weights stay below
            eta / (1 - gamma).
        init_weight: the weights' start value (the paper: 0).

    >>> rba = ResidualBasedAttention(gamma=0.5, eta=1.0)
    >>> lam = rba.init(3)
    >>> rba.update(lam, torch.tensor([1.0, -2.0, 4.0])).tolist()
    [0.25, 0.5, 1.0]
    """

    gamma: float = 0.999
    eta: float = 0.01
    init_weight: float = 0.0

    def __post_init__(self) -> None:
        _unit_interval("ResidualBasedAttention", "gamma", self.gamma)
        _positive("ResidualBasedAttention", "eta", self.eta)
        _positive("ResidualBasedAttention", "init_weight", self.init_weight, allow_zero=True)

    def init(self, num_points: int, dtype=torch.float64) -> Tensor:
        if not is_int(num_points) or num_points < 1:
            raise ValueError(f"num_points must be an int >= 1, got {num_points!r}")
        return torch.full((num_points,), float(self.init_weight), dtype=dtype)

    def update(self, weights: Tensor, residuals: Tensor) -> Tensor:
        """gamma lambda + eta |r| / max |r| (a new tensor; residuals are detached).

        Raises:
            ValueError: shapes differ, or residuals non-finite.
        """
        if weights.shape != residuals.shape or weights.dim() != 1:
            raise ValueError(f"weights {tuple(weights.shape)} and residuals "
                             f"{tuple(residuals.shape)} must be 1-D of one length (one per point)")
        r = residuals.detach().abs().to(weights.dtype)
        if not bool(torch.isfinite(r).all()):
            raise ValueError("residuals contain NaN or inf; RBA weights need finite residuals")
        top = float(r.max())
        scaled = r / top if top > 0 else torch.zeros_like(r)
        return self.gamma * weights + self.eta * scaled

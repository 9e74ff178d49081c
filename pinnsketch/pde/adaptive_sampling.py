"""Residual-based adaptive resampling (RAD): draw collocation points where the residual is large.

Over a candidate pool x_1..x_M with PDE residuals r_i, RAD (Wu, Zhu, Tan, Kartha & Lu,
"A comprehensive study of non-adaptive and residual-based adaptive sampling for
physics-informed neural networks", CMAME 403, 2023, arXiv 2207.10289, eq. (2)) draws n
points with probability

    p_i proportional to |r_i|^k / mean_j |r_j|^k + c,

k >= 0 sharpening the preference for large residuals, c >= 0 keeping a uniform share
(k = 0 or c -> infinity: uniform sampling). A pure function: the same pool, residuals and
generator state give the same points.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pinnsketch._types import Points
from pinnsketch.checks import is_int

__all__ = ["rad_probabilities", "rad_sample", "draw_by_probabilities"]


def _check(residuals: Tensor, k: float, c: float) -> None:
    if not isinstance(residuals, Tensor) or residuals.dim() != 1 or residuals.numel() == 0:
        raise ValueError(f"residuals must be a non-empty 1-D tensor (one per pool point), got "
                         f"shape {tuple(getattr(residuals, 'shape', ()))}")
    if not bool(torch.isfinite(residuals).all()):
        raise ValueError("residuals contain NaN or inf; RAD needs finite residuals on the pool")
    if not (isinstance(k, (int, float)) and not isinstance(k, bool) and math.isfinite(k) and k >= 0):
        raise ValueError(f"RAD exponent k must be a finite number >= 0, got {k!r} "
                         "(Wu et al. use k = 1 or 2)")
    if not (isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c >= 0):
        raise ValueError(f"RAD constant c must be a finite number >= 0, got {c!r} "
                         "(Wu et al. use c = 1; c = 0 samples by residual only)")


def rad_probabilities(residuals: Tensor, k: float = 1.0, c: float = 1.0) -> Tensor:
    """p_i = (|r_i|^k / mean |r|^k + c) / sum_j (...) over the pool (float64, sums to 1).

    When every residual is zero the residual part is taken as uniform (p uniform).

    Raises:
        ValueError: residuals not a finite non-empty 1-D tensor, k or c negative or non-finite,
            or c = 0 with every residual zero.

    >>> rad_probabilities(torch.tensor([0.0, 1.0, 3.0]), k=1.0, c=0.0).tolist()
    [0.0, 0.25, 0.75]
    """
    _check(residuals, k, c)
    w = residuals.detach().abs().double().pow(k)
    mean = w.mean()
    if float(mean) > 0:
        w = w / mean + c
    else:
        if c == 0:
            raise ValueError("every residual on the pool is zero and c = 0: RAD has nothing to "
                             "sample by; use c > 0")
        w = torch.ones_like(w)
    return w / w.sum()


def rad_sample(points: Points, residuals: Tensor, n: int, k: float = 1.0, c: float = 1.0,
               generator: torch.Generator | None = None, replace: bool = False
               ) -> tuple[Tensor, Points]:
    """Draw n pool points with RAD probabilities; returns (indices (n,), points (n, d)).

    Args:
        points: (M, d) candidate pool.
        residuals: (M,) PDE residuals at the pool points.
        n: points to draw (n <= M without replacement).
        k, c: RAD's exponent and uniform share (see the module docstring).
        generator: the random stream (explicit; required for reproducibility).
        replace: draw with replacement (each draw then follows p exactly; without
            replacement, as Wu et al. and Urban et al. do, later draws renormalise p over the
            points not yet drawn).

    Raises:
        ValueError: bad k or c, n < 1, n > M without replacement, or mismatched shapes.

    >>> pool = torch.linspace(0, 1, 5).unsqueeze(1)
    >>> idx, pts = rad_sample(pool, torch.tensor([0., 0., 0., 0., 1.]), 1, c=0.0,
    ...                       generator=torch.Generator().manual_seed(0))
    >>> idx.tolist(), pts.tolist()
    ([4], [[1.0]])
    """
    _check(residuals, k, c)
    if isinstance(points, Tensor) and points.dim() == 2 and residuals.numel() != points.shape[0]:
        raise ValueError(f"{residuals.numel()} residuals for {points.shape[0]} pool points; "
                         "give one residual per point")
    return draw_by_probabilities(points, rad_probabilities(residuals, k, c), n, generator,
                                 replace)


def draw_by_probabilities(points: Points, probabilities: Tensor, n: int,
                          generator: torch.Generator | None, replace: bool = False
                          ) -> tuple[Tensor, Points]:
    """Draw n of the (M, d) ``points`` with the given (M,) probabilities (e.g.
    :func:`rad_probabilities` kept from an earlier residual evaluation); returns (indices (n,),
    points (n, d)). Raises ValueError as :func:`rad_sample` does."""
    if not isinstance(points, Tensor) or points.dim() != 2:
        raise ValueError(f"points must be an (M, d) tensor, got shape "
                         f"{tuple(getattr(points, 'shape', ()))}")
    if not isinstance(probabilities, Tensor) or probabilities.shape != points.shape[:1]:
        raise ValueError(f"{tuple(getattr(probabilities, 'shape', ()))} probabilities for "
                         f"{points.shape[0]} pool points; give one per point")
    if not is_int(n) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if not replace and n > points.shape[0]:
        raise ValueError(f"cannot draw n={n} distinct points from a pool of {points.shape[0]}; "
                         "use a larger pool (Wu et al. use a pool several times n) or "
                         "replace=True")
    if generator is None:
        raise ValueError("RAD needs an explicit torch.Generator (no global RNG is used)")
    idx = torch.multinomial(probabilities, n, replacement=replace, generator=generator)
    return idx, points[idx]

"""Kovasznay flow: a closed-form solution of the steady incompressible Navier-Stokes equations.

Kovasznay, "Laminar flow behind a two-dimensional grid" (Proc. Camb. Phil. Soc. 1948): with
lambda = Re/2 - sqrt(Re^2/4 + 4 pi^2),

    u = 1 - exp(lambda x) cos(2 pi y)
    v = lambda / (2 pi) exp(lambda x) sin(2 pi y)
    p = (1 - exp(2 lambda x)) / 2

solves  u u_x + v u_y = -p_x + (u_xx + u_yy) / Re,  u v_x + v v_y = -p_y + (v_xx + v_yy) / Re,
u_x + v_y = 0  in the whole plane. The PINN benchmark (DeepXDE's example, Lu et al. 2021;
NSFnets, Jin et al. 2021) uses Re = 20 on [-0.5, 1] x [-0.5, 1.5] with the exact velocity on
the boundary. The functions here are torch expressions, so autograd differentiates them (the
three-field problem itself needs a network with several outputs).
"""

from __future__ import annotations

import math

import torch

from pinnsketch._types import Field, Points

__all__ = ["kovasznay_lambda", "kovasznay_flow", "KOVASZNAY_BOUNDS"]

KOVASZNAY_BOUNDS = {"x": (-0.5, 1.0), "y": (-0.5, 1.5)}
"""The usual PINN domain of the Kovasznay benchmark."""


def kovasznay_lambda(re: float = 20.0) -> float:
    """lambda = Re/2 - sqrt(Re^2/4 + 4 pi^2) (negative: the wake decays downstream).

    >>> round(kovasznay_lambda(20.0), 12)
    -1.810098120014
    """
    if not (math.isfinite(re) and re > 0):
        raise ValueError(f"the Reynolds number must be finite and > 0, got {re!r}")
    return re / 2 - math.sqrt(re**2 / 4 + 4 * math.pi**2)


def kovasznay_flow(points: Points, re: float = 20.0) -> tuple[Field, Field, Field]:
    """(u, v, p) at (N, 2) points (x, y), each (N,), differentiable by autograd."""
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (N, 2) columns (x, y), got {tuple(points.shape)}")
    lam = kovasznay_lambda(re)
    x, y = points[:, 0], points[:, 1]
    e = torch.exp(lam * x)
    u = 1 - e * torch.cos(2 * math.pi * y)
    v = lam / (2 * math.pi) * e * torch.sin(2 * math.pi * y)
    p = (1 - e * e) / 2
    return u, v, p

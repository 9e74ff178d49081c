"""Viscous Burgers equation with the classic shock-forming initial condition."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from pinnsketch import (
    Dirichlet,
    EvaluationGrid,
    Initial,
    OutputTransform,
    Problem,
    cole_hopf_burgers,
    interval,
    space_time,
)


@dataclass(frozen=True)
class Burgers(Problem):
    """Viscous Burgers: u_t + u u_x = nu u_xx on x in [-1, 1], t in [0, 1].

    u(x, 0) = -sin(pi x), u(-1, t) = u(1, t) = 0, nu = 0.01/pi by default. A steep front
    forms at x = 0 from t ~ 1/pi on (the inviscid breaking time) and sharpens.

    Reference: the Cole-Hopf integral evaluated by 200-node Gauss-Hermite quadrature
    (Basdevant et al. 1986; the benchmark of Raissi, Perdikaris & Karniadakis, J. Comput.
    Phys. 2019). The error is measured on the published 256 x 100 grid:
    x = linspace(-1, 1, 256), t = 0, 0.01, ..., 0.99.

    ``hard=True`` (the default; ``--param hard=false`` for the soft form) builds the initial
    and boundary conditions into the network, u = -sin(pi x) + t (1 - x^2) N(x, t) (the
    hard-constraint form of Urban et al. 2024 and DeepXDE's Allen-Cahn example): both
    conditions hold for every N and leave the loss, which keeps only the PDE residual.
    """

    name: ClassVar[str] = "burgers"
    equation: ClassVar[str] = "u_t + u u_x = nu u_xx, x in [-1,1], t in [0,1], u(x,0) = -sin(pi x)"
    nu: float = 0.01 / math.pi
    hard: bool = True

    def validate(self) -> None:
        if not self.nu > 0:
            raise ValueError(f"burgers: nu must be > 0 (the viscosity), got {self.nu}")

    @property
    def domain(self):
        return space_time(interval(x=(-1.0, 1.0)), t=(0.0, 1.0))

    def residual(self, d):
        return d.u_t + d.u * d.u_x - self.nu * d.u_xx

    def conditions(self):
        return (
            Dirichlet(0.0, name="boundary"),
            Initial(lambda d: -torch.sin(math.pi * d.x), name="initial"),
        )

    def output_transforms(self):
        if not self.hard:
            return ()
        return (OutputTransform(g=lambda p: -torch.sin(math.pi * p[:, 0]),
                                phi=lambda p: p[:, 1] * (1.0 - p[:, 0] ** 2),
                                field="u", satisfies=("boundary", "initial")),)

    def reference(self, points):
        return cole_hopf_burgers(points, self.nu)

    def evaluation_grid(self):
        x = torch.linspace(-1.0, 1.0, 256, dtype=torch.float64)
        t = torch.arange(100, dtype=torch.float64) / 100.0
        return EvaluationGrid(("x", "t"), (x, t))

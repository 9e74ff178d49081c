"""1-D heat equation with a two-mode exact solution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from pinnsketch import Dirichlet, Initial, OutputTransform, Problem, interval, space_time


@dataclass(frozen=True)
class Heat(Problem):
    """Heat equation u_t = alpha u_xx on x in [0, 1], t in [0, 1], u(0, t) = u(1, t) = 0.

    Exact solution (separation of variables), two modes decaying at different rates
    alpha pi^2 and 9 alpha pi^2:

        u = sin(pi x) exp(-alpha pi^2 t) + b sin(3 pi x) exp(-9 alpha pi^2 t),

    with u(x, 0) = sin(pi x) + b sin(3 pi x).

    ``hard=True`` (the default; ``--param hard=false`` for the soft form) builds both
    conditions into the network, u = u(x, 0) + t x (1 - x) N(x, t): they hold for every N
    and leave the loss, which keeps only the PDE residual.
    """

    name: ClassVar[str] = "heat"
    equation: ClassVar[str] = "u_t = alpha u_xx, x in [0,1], t in [0,1], two decaying sine modes"
    alpha: float = 0.1
    b: float = 0.5
    hard: bool = True

    def validate(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"heat: alpha must be > 0 (the diffusivity), got {self.alpha}")

    @property
    def domain(self):
        return space_time(interval(x=(0.0, 1.0)), t=(0.0, 1.0))

    def residual(self, d):
        return d.u_t - self.alpha * d.u_xx

    def initial_value(self, x):
        return torch.sin(math.pi * x) + self.b * torch.sin(3 * math.pi * x)

    def conditions(self):
        return (
            Dirichlet(0.0, name="boundary"),
            Initial(lambda d: self.initial_value(d.x), name="initial"),
        )

    def output_transforms(self):
        if not self.hard:
            return ()
        return (OutputTransform(g=lambda p: self.initial_value(p[:, 0]),
                                phi=lambda p: p[:, 1] * p[:, 0] * (1.0 - p[:, 0]),
                                field="u", satisfies=("boundary", "initial")),)

    def reference(self, points):
        x, t = points[:, 0], points[:, 1]
        k = self.alpha * math.pi**2
        return (torch.sin(math.pi * x) * torch.exp(-k * t)
                + self.b * torch.sin(3 * math.pi * x) * torch.exp(-9 * k * t))

"""1-D wave equation with a two-mode standing-wave solution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from pinnsketch import Dirichlet, Initial, InitialVelocity, Problem, interval, space_time


@dataclass(frozen=True)
class Wave(Problem):
    """Wave equation u_tt = c^2 u_xx on x in [0, 1], t in [0, 1], u(0, t) = u(1, t) = 0.

    Exact solution, two standing waves (d'Alembert / separation of variables):

        u = sin(pi x) cos(c pi t) + b sin(a pi x) cos(a c pi t),

    so u(x, 0) = sin(pi x) + b sin(a pi x) and u_t(x, 0) = 0. The defaults c = 2, a = 4,
    b = 1/2 are PINNacle's Wave1D (Hao et al., "PINNacle: a comprehensive benchmark of
    physics-informed neural networks", NeurIPS 2024); b = 0, c = 1 is jaxpi's single-mode
    wave example. ``a`` is a whole number, so the ends stay at rest.

    The residual is written in units of (a c pi)^2, (u_tt - c^2 u_xx) / (a c pi)^2: the same
    PDE, with its terms of order one like the initial and boundary terms (u_tt reaches
    b (a c pi)^2 = 316 by default), as Poisson's is scaled by pi^2.
    """

    name: ClassVar[str] = "wave"
    equation: ClassVar[str] = ("u_tt = c^2 u_xx, x in [0,1], t in [0,1], u(x,0) = sin(pi x) + "
                               "b sin(a pi x), u_t(x,0) = 0, u = 0 at x = 0, 1")
    c: float = 2.0
    a: int = 4
    b: float = 0.5

    def validate(self) -> None:
        if not self.c > 0:
            raise ValueError(f"wave: c must be > 0 (the wave speed), got {self.c}")
        if isinstance(self.a, bool) or not isinstance(self.a, int) or self.a < 1:
            raise ValueError(f"wave: a must be a whole number >= 1 (the second mode's index), "
                             f"got {self.a!r}")

    @property
    def domain(self):
        return space_time(interval(x=(0.0, 1.0)), t=(0.0, 1.0))

    def residual(self, d):
        return (d.u_tt - self.c**2 * d.u_xx) / (self.a * self.c * math.pi) ** 2

    def conditions(self):
        return (
            Dirichlet(0.0, name="boundary"),
            Initial(lambda d: torch.sin(math.pi * d.x) + self.b * torch.sin(self.a * math.pi * d.x),
                    name="initial"),
            InitialVelocity(0.0, name="velocity"),
        )

    def reference(self, points):
        x, t = points[:, 0], points[:, 1]
        w = self.c * math.pi
        return (torch.sin(math.pi * x) * torch.cos(w * t)
                + self.b * torch.sin(self.a * math.pi * x) * torch.cos(self.a * w * t))

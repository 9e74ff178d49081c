"""2-D Poisson equation with a two-frequency manufactured solution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from pinnsketch import Dirichlet, Problem, rectangle


@dataclass(frozen=True)
class Poisson(Problem):
    """Poisson equation -laplacian u = f on (0, 1)^2 with u = 0 on the boundary.

    Manufactured solution u = sin(pi x) sin(pi y) + b sin(3 pi x) sin(2 pi y), so

        f = 2 pi^2 sin(pi x) sin(pi y) + 13 b pi^2 sin(3 pi x) sin(2 pi y).

    The residual is written in units of pi^2, (-laplacian u - f) / pi^2: the same PDE, but
    its squared residual is then of the size of the boundary term's, so neither term
    swamps the other in the loss (without the scaling the default run ended at L2 6.9e-3;
    see the README's results).
    """

    name: ClassVar[str] = "poisson"
    equation: ClassVar[str] = "-laplacian u = f on (0,1)^2, u = 0 on the boundary, two frequencies"
    b: float = 0.25

    @property
    def domain(self):
        return rectangle(x=(0.0, 1.0), y=(0.0, 1.0))

    def source(self, x, y):
        pi = math.pi
        return (2 * pi**2 * torch.sin(pi * x) * torch.sin(pi * y)
                + 13 * self.b * pi**2 * torch.sin(3 * pi * x) * torch.sin(2 * pi * y))

    def residual(self, d):
        return (-d.laplacian - self.source(d.x, d.y)) / math.pi**2

    def conditions(self):
        return (Dirichlet(0.0, name="boundary"),)

    def reference(self, points):
        x, y = points[:, 0], points[:, 1]
        pi = math.pi
        return (torch.sin(pi * x) * torch.sin(pi * y)
                + self.b * torch.sin(3 * pi * x) * torch.sin(2 * pi * y))

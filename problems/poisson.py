"""2-D Poisson equation with a two-frequency manufactured solution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from pinnsketch import Dirichlet, OutputTransform, Problem, rectangle


@dataclass(frozen=True)
class Poisson(Problem):
    """Poisson equation -laplacian u = f on (0, 1)^2 with u = 0 on the boundary.

    Manufactured solution u = sin(pi x) sin(pi y) + b sin(3 pi x) sin(2 pi y), so

        f = 2 pi^2 sin(pi x) sin(pi y) + 13 b pi^2 sin(3 pi x) sin(2 pi y).

    The residual is written in units of pi^2, (-laplacian u - f) / pi^2: the same PDE, but
    its squared residual is then of the size of the boundary term's, so neither term
    swamps the other in the loss (without the scaling the default run ended at L2 6.9e-3;
    see the README's results).

    ``hard=True`` (the default; ``--param hard=false`` for the soft form) builds the boundary
    condition into the network, u = x (1 - x) y (1 - y) N(x, y), which vanishes on the
    boundary for every N: the condition leaves the loss.
    """

    name: ClassVar[str] = "poisson"
    equation: ClassVar[str] = "-laplacian u = f on (0,1)^2, u = 0 on the boundary, two frequencies"
    b: float = 0.25
    hard: bool = True

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

    def output_transforms(self):
        if not self.hard:
            return ()
        return (OutputTransform(g=lambda p: torch.zeros_like(p[:, 0]),
                                phi=lambda p: (p[:, 0] * (1.0 - p[:, 0])
                                               * p[:, 1] * (1.0 - p[:, 1])),
                                field="u", satisfies=("boundary",)),)

    def reference(self, points):
        x, y = points[:, 0], points[:, 1]
        pi = math.pi
        return (torch.sin(pi * x) * torch.sin(pi * y)
                + self.b * torch.sin(3 * pi * x) * torch.sin(2 * pi * y))

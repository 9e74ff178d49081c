"""2-D Helmholtz equation with a manufactured solution (the PINN benchmark of Wang et al.)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from pinnsketch import Dirichlet, Problem, rectangle


@dataclass(frozen=True)
class Helmholtz(Problem):
    """Helmholtz equation u_xx + u_yy + k^2 u = q on (-1, 1)^2 with u = 0 on the boundary.

    Manufactured solution u = sin(a1 pi x) sin(a2 pi y), so

        q = (k^2 - (a1 pi)^2 - (a2 pi)^2) sin(a1 pi x) sin(a2 pi y);

    a1 = 1, a2 = 4, k = 1 by default: Wang, Teng & Perdikaris, "Understanding and mitigating
    gradient flow pathologies in physics-informed neural networks" (SIAM J. Sci. Comput. 2021);
    PINNacle's Helmholtz2D is the same family with a1 = a2 = 4 on the unit square. a1 and a2
    are whole numbers, so u vanishes on the boundary.

    The residual is written in units of (a1^2 + a2^2) pi^2 (the size of the Laplacian's
    terms): the same PDE, with its squared residual of the boundary term's size.
    """

    name: ClassVar[str] = "helmholtz"
    equation: ClassVar[str] = ("u_xx + u_yy + k^2 u = q on (-1,1)^2, u = 0 on the boundary, "
                               "u = sin(a1 pi x) sin(a2 pi y)")
    k: float = 1.0
    a1: int = 1
    a2: int = 4

    def validate(self) -> None:
        for name in ("a1", "a2"):
            a = getattr(self, name)
            if isinstance(a, bool) or not isinstance(a, int) or a < 1:
                raise ValueError(f"helmholtz: {name} must be a whole number >= 1, got {a!r}")

    @property
    def domain(self):
        return rectangle(x=(-1.0, 1.0), y=(-1.0, 1.0))

    def _scale(self) -> float:
        return (self.a1**2 + self.a2**2) * math.pi**2

    def source(self, x, y):
        return ((self.k**2 - self._scale()) * torch.sin(self.a1 * math.pi * x)
                * torch.sin(self.a2 * math.pi * y))

    def residual(self, d):
        return (d.laplacian + self.k**2 * d.u - self.source(d.x, d.y)) / self._scale()

    def conditions(self):
        return (Dirichlet(0.0, name="boundary"),)

    def reference(self, points):
        x, y = points[:, 0], points[:, 1]
        return torch.sin(self.a1 * math.pi * x) * torch.sin(self.a2 * math.pi * y)

"""Poisson's equation on the L-shaped domain (a re-entrant corner)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from pinnsketch import LSHAPE, Dirichlet, OutputTransform, Polygon, Problem, lshape_reference


@functools.lru_cache(maxsize=1)
def _unit_reference():
    """The finite-difference solution for a unit source (about 3 s; cached in memory)."""
    return lshape_reference()


@dataclass(frozen=True)
class PoissonLShape(Problem):
    """-(u_xx + u_yy) = f on the L-shape [-1, 1]^2 without (0, 1)^2, u = 0 on its boundary.

    f = ``source`` = 1 by default (DeepXDE's Poisson L-shape example, Lu et al., SIAM Rev.
    2021). Near the re-entrant corner (0, 0) of interior angle 3 pi / 2 the solution behaves
    like r^(2/3) sin(2 theta / 3), so its gradient is unbounded there.

    Reference: the five-point finite-difference solution on the grids h = 2/256 and 1/256,
    Richardson-extrapolated with the corner's exponent 4/3, interpolated between the nodes
    (:func:`pinnsketch.lshape_reference`; relative L2 error 5e-5 at interior points, at most
    5e-4 next to the corner, measured against finer grids: benchmarks/lshape_convergence.py);
    the solution is linear in f, so other sources scale the unit-source solution. The error
    is measured on the domain's evaluation points: a 101 x 101 grid kept inside the L, points
    along the boundary, and a triangulation for the plots.

    ``hard=True`` (the default; ``--param hard=false`` puts the condition in the loss) builds
    the boundary condition and the corner's singular behaviour into the network: u = phi N
    with

        phi = (1 - x^2)(1 - y^2) r^(2/3) sin(2 theta / 3),

    theta the angle from the notch edge {x = 0, y > 0} through the domain (0 <= theta <=
    3 pi / 2): phi vanishes on the outer square and on both notch edges, and behaves like the
    corner's leading singular function r^(2/3) sin(2 theta / 3), so N stays bounded and smoother
    than u there (the singular-function idea of singularity-enriched PINNs, Hu, Jin & Zhou,
    SIAM J. Sci. Comput. 2024, as a hard constraint). The condition then leaves the loss.
    """

    name: ClassVar[str] = "poisson_lshape"
    equation: ClassVar[str] = ("-(u_xx + u_yy) = source on the L-shape [-1,1]^2 \\ (0,1)^2, "
                               "u = 0 on its boundary")
    source: float = 1.0
    hard: bool = True

    @property
    def domain(self):
        return Polygon(LSHAPE)

    def residual(self, d):
        return -d.laplacian - self.source

    def conditions(self):
        return (Dirichlet(0.0, name="boundary"),)

    def output_transforms(self):
        if not self.hard:
            return ()
        return (OutputTransform(g=lambda p: torch.zeros_like(p[:, 0]), phi=_corner_factor,
                                field="u", satisfies=("boundary",)),)

    def reference(self, points):
        return self.source * _unit_reference()(points)


def _corner_factor(p):
    """(1 - x^2)(1 - y^2) r^(2/3) sin(2 theta / 3), theta from the notch edge {x = 0, y > 0}."""
    x, y = p[:, 0], p[:, 1]
    theta = torch.remainder(torch.atan2(y, x) - math.pi / 2, 2 * math.pi)
    return (1 - x**2) * (1 - y**2) * (x**2 + y**2) ** (1 / 3) * torch.sin(2 * theta / 3)

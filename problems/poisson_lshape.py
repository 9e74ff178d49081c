"""Poisson's equation on the L-shaped domain (a re-entrant corner)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

from pinnsketch import LSHAPE, Dirichlet, Polygon, Problem, lshape_reference


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
    """

    name: ClassVar[str] = "poisson_lshape"
    equation: ClassVar[str] = ("-(u_xx + u_yy) = source on the L-shape [-1,1]^2 \\ (0,1)^2, "
                               "u = 0 on its boundary")
    source: float = 1.0

    @property
    def domain(self):
        return Polygon(LSHAPE)

    def residual(self, d):
        return -d.laplacian - self.source

    def conditions(self):
        return (Dirichlet(0.0, name="boundary"),)

    def reference(self, points):
        return self.source * _unit_reference()(points)

"""Kovasznay flow: steady incompressible Navier-Stokes with a closed-form solution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from pinnsketch import Dirichlet, Problem, kovasznay_flow, rectangle


@dataclass(frozen=True)
class Kovasznay(Problem):
    """Steady Navier-Stokes at Reynolds number Re on [-0.5, 1] x [-0.5, 1.5]:

        u u_x + v u_y + p_x - (u_xx + u_yy) / Re = 0
        u v_x + v v_y + p_y - (v_xx + v_yy) / Re = 0
        u_x + v_y = 0

    three fields (u, v, p) and three equations (``momentum_x``, ``momentum_y``,
    ``continuity``), each its own loss term. The exact solution (Kovasznay, Proc. Camb. Phil.
    Soc. 1948), with lambda = Re/2 - sqrt(Re^2/4 + 4 pi^2),

        u = 1 - exp(lambda x) cos(2 pi y),  v = lambda / (2 pi) exp(lambda x) sin(2 pi y),
        p = (1 - exp(2 lambda x)) / 2,

    gives the boundary values of u and v on the whole boundary and of p on the outflow
    x = 1 (p is fixed only up to a constant by the equations): the setting of DeepXDE's
    Kovasznay example (Lu et al., SIAM Rev. 2021) and NSFnets (Jin et al., J. Comput. Phys.
    2021), Re = 20 by default. The reference is the closed form.
    """

    name: ClassVar[str] = "kovasznay"
    equation: ClassVar[str] = ("steady Navier-Stokes (u, v, p) on [-0.5,1] x [-0.5,1.5], "
                               "Re = 20, Kovasznay's exact flow on the boundary")
    fields: ClassVar[tuple[str, ...]] = ("u", "v", "p")
    equations: ClassVar[tuple[str, ...]] = ("momentum_x", "momentum_y", "continuity")
    re: float = 20.0

    def validate(self) -> None:
        if not self.re > 0:
            raise ValueError(f"kovasznay: re must be > 0 (the Reynolds number), got {self.re}")

    @property
    def domain(self):
        return rectangle(x=(-0.5, 1.0), y=(-0.5, 1.5))

    def residual(self, d):
        return {
            "momentum_x": d.u * d.u_x + d.v * d.u_y + d.p_x - (d.u_xx + d.u_yy) / self.re,
            "momentum_y": d.u * d.v_x + d.v * d.v_y + d.p_y - (d.v_xx + d.v_yy) / self.re,
            "continuity": d.u_x + d.v_y,
        }

    def _exact(self, d, i: int):
        return kovasznay_flow(d.points, self.re)[i]

    def conditions(self):
        return (
            Dirichlet(lambda d: self._exact(d, 0), field="u", name="boundary_u"),
            Dirichlet(lambda d: self._exact(d, 1), field="v", name="boundary_v"),
            Dirichlet(lambda d: self._exact(d, 2), field="p", on=("x+",), name="outflow_p"),
        )

    def reference(self, points):
        return torch.stack(kovasznay_flow(points, self.re), dim=1)

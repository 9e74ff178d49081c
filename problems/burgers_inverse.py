"""Burgers' viscosity learnt from noisy observations of the Cole-Hopf solution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from pinnsketch import (
    Dirichlet,
    EvaluationGrid,
    Initial,
    Observations,
    Problem,
    Unknown,
    cole_hopf_burgers,
    interval,
    space_time,
)


@dataclass(frozen=True)
class BurgersInverse(Problem):
    """Learn nu in u_t + u u_x = nu u_xx (x in [-1, 1], t in [0, 1], u(x, 0) = -sin(pi x),
    u(+-1, t) = 0) from noisy observations of u.

    The observations: ``n_obs`` points drawn uniformly in the domain from the run's seed,
    with the Cole-Hopf solution for ``nu_true`` = 0.01/pi (Gauss-Hermite quadrature,
    :func:`pinnsketch.cole_hopf_burgers`) plus Gaussian noise of standard deviation
    ``noise`` times the standard deviation of the clean values (1 % by default). This is the
    identification benchmark of Raissi, Perdikaris & Karniadakis (J. Comput. Phys. 2019,
    Sec. 4.1.1: 2,000 points, 1 % noise, nu recovered to 0.8 %), here with nu the only
    unknown and the known initial and boundary conditions kept.

    ``nu`` starts at 0.01 (about three times the truth) and is learnt as exp(s)
    (``Unknown(..., positive=True)``); ``--param nu=0.0031831`` fixes it (a forward problem
    with data). The reference (for the L2 error) is the Cole-Hopf solution for ``nu_true``
    on Burgers' published 256 x 100 grid.
    """

    name: ClassVar[str] = "burgers_inverse"
    equation: ClassVar[str] = ("u_t + u u_x = nu u_xx, nu unknown, from noisy observations of u "
                               "(x in [-1,1], t in [0,1], u(x,0) = -sin(pi x))")
    nu: float = Unknown(0.01, positive=True)
    nu_true: float = 0.01 / math.pi
    noise: float = 0.01
    n_obs: int = 2000

    def validate(self) -> None:
        if not self.nu > 0 or not self.nu_true > 0:
            raise ValueError(f"burgers_inverse: nu and nu_true must be > 0 (viscosities), got "
                             f"nu={self.nu}, nu_true={self.nu_true}")
        if not self.noise >= 0:
            raise ValueError(f"burgers_inverse: noise must be >= 0 (a fraction of the solution's "
                             f"standard deviation), got {self.noise}")
        if isinstance(self.n_obs, bool) or not isinstance(self.n_obs, int) or self.n_obs < 1:
            raise ValueError(f"burgers_inverse: n_obs must be a whole number >= 1, got "
                             f"{self.n_obs!r}")

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

    def observations(self, seed):
        rng = np.random.default_rng([seed, 0xB1A5])
        points = np.stack([rng.uniform(-1.0, 1.0, self.n_obs), rng.uniform(0.0, 1.0, self.n_obs)], 1)
        clean = cole_hopf_burgers(torch.from_numpy(points), self.nu_true).numpy()
        sigma = self.noise * float(clean.std())
        values = clean + sigma * rng.standard_normal(self.n_obs)
        return Observations(points, {"u": values}, noise={"u": sigma} if sigma > 0 else {},
                            source=f"burgers_inverse.observations(seed={seed})")

    def true_values(self):
        return {"nu": self.nu_true}

    def reference(self, points):
        return cole_hopf_burgers(points, self.nu_true)

    def evaluation_grid(self):
        x = torch.linspace(-1.0, 1.0, 256, dtype=torch.float64)
        t = torch.arange(100, dtype=torch.float64) / 100.0
        return EvaluationGrid(("x", "t"), (x, t))

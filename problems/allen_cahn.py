"""Allen-Cahn equation with periodic boundaries (the benchmark of Raissi et al.)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from pinnsketch import EvaluationGrid, Initial, Periodic, Problem, etdrk4_periodic, interval, space_time

MODES = 2048
DT = 1e-3
SNAPSHOT_DT = 5e-3


@functools.lru_cache(maxsize=4)
def _spectral(diffusion: float, reaction: float, modes: int, dt: float, snapshot_dt: float):
    """The Fourier/ETDRK4 solution for one parameter set and resolution (cached in memory)."""
    return etdrk4_periodic(lambda k: -diffusion * k**2,  # u * u * u: numpy's u**3 is 50x slower
                           lambda u: reaction * u * (1.0 - u * u),
                           lambda u, v: reaction * (1.0 - 3.0 * u * u) * v,
                           lambda x: x**2 * np.cos(np.pi * x),
                           (-1.0, 1.0), (0.0, 1.0), modes=modes, dt=dt, snapshot_dt=snapshot_dt)


@dataclass(frozen=True)
class AllenCahn(Problem):
    """Allen-Cahn: u_t = d u_xx + r (u - u^3) on x in [-1, 1] (periodic), t in [0, 1].

    u(x, 0) = x^2 cos(pi x); u and u_x periodic in x; d = ``diffusion`` = 1e-4 and
    r = ``rate`` = 5 by default (the Allen-Cahn example of Raissi, Perdikaris & Karniadakis,
    J. Comput. Phys. 2019). The solution forms interfaces of width ~ sqrt(2 d / r) (tanh
    profiles) that then barely move.

    Reference: Fourier pseudo-spectral in x with 2048 points (1023 modes) and ETDRK4 in t
    with step 1e-3 (Kassam & Trefethen, SIAM J. Sci. Comput. 2005), computed at first use in
    about a second and cached in memory; see :func:`pinnsketch.etdrk4_periodic`. Halving the
    step and doubling the modes changes it by 1.6e-11 for t >= 0.05 and 1.7e-7 for
    t >= 0.005 (benchmarks/allen_cahn_convergence.py; tests/test_allen_cahn.py allows 5e-11
    and 5e-7); at t = 0 the truncated series of the kinked initial condition (u_x jumps by 4
    at x = +-1) is within 4e-4 of it there, a kink the equation smooths at once. The error is
    measured on a 512 x 201 grid (the size of Raissi et al.'s data): x = -1 + 2 j / 512,
    t = 0, 0.005, ..., 1.
    """

    name: ClassVar[str] = "allen_cahn"
    equation: ClassVar[str] = ("u_t = diffusion u_xx + rate (u - u^3), x in [-1,1] periodic, "
                               "t in [0,1], u(x,0) = x^2 cos(pi x)")
    diffusion: float = 1e-4
    rate: float = 5.0

    def validate(self) -> None:
        if not self.diffusion > 0:
            raise ValueError(f"allen_cahn: diffusion must be > 0, got {self.diffusion}")
        if not self.rate >= 0:
            raise ValueError(f"allen_cahn: rate must be >= 0 (the reaction rate), got {self.rate}")

    @property
    def domain(self):
        return space_time(interval(x=(-1.0, 1.0)), t=(0.0, 1.0))

    def residual(self, d):
        return d.u_t - self.diffusion * d.u_xx - self.rate * (d.u - d.u**3)

    def conditions(self):
        return (
            Periodic(coord="x", name="periodic"),
            Initial(lambda d: d.x**2 * torch.cos(math.pi * d.x), name="initial"),
        )

    def spectral_reference(self, modes: int = MODES, dt: float = DT,
                           snapshot_dt: float = SNAPSHOT_DT, check: bool = True):
        """The spectral solution at a given resolution (a callable of (N, 2) points).

        Raises:
            RuntimeError: with ``check``, if the resolution does not resolve these parameters
                (the top eighth of the Fourier modes holds more than 1e-10 of the largest at
                t >= 0.05).
        """
        sol = _spectral(float(self.diffusion), float(self.rate), modes, dt, snapshot_dt)
        late = sol.times >= 0.05
        if check and float(sol.tail()[late].max()) > 1e-10:
            width = math.sqrt(2 * self.diffusion / self.rate) if self.rate > 0 else float("inf")
            raise RuntimeError(f"allen_cahn: {modes} Fourier points do not resolve "
                               f"diffusion={self.diffusion}, rate={self.rate} (interfaces of width "
                               f"~{width:.2g}); pass more modes to spectral_reference")
        return sol

    def reference(self, points):
        return self.spectral_reference()(points)

    def evaluation_grid(self):
        x = -1.0 + 2.0 * torch.arange(512, dtype=torch.float64) / 512
        t = torch.linspace(0.0, 1.0, 201, dtype=torch.float64)
        return EvaluationGrid(("x", "t"), (x, t))

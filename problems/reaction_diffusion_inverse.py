"""A two-species reaction-diffusion system whose diffusion coefficient and reaction rate are
learnt from noisy observations of both species."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from pinnsketch import (
    EvaluationGrid,
    Initial,
    Observations,
    Periodic,
    Problem,
    Unknown,
    etdrk4_periodic_system,
    interval,
    space_time,
)

MODES = 128
DT = 1e-3
SNAPSHOT_DT = 5e-3


def _u0(x):
    return 1.0 + 0.5 * np.sin(2 * np.pi * x)


def _v0(x):
    return 1.0 - 0.5 * np.sin(4 * np.pi * x)


@functools.lru_cache(maxsize=8)
def spectral_solution(diffusion: float, rate: float, modes: int = MODES, dt: float = DT,
                      snapshot_dt: float = SNAPSHOT_DT):
    """(u, v) by Fourier/ETDRK4 (:func:`pinnsketch.etdrk4_periodic_system`; cached)."""

    def reaction(w):
        u, v = w
        r = rate * u * v * v
        return np.stack([-r, -2.0 * r])

    def tangent(w, dw):
        u, v = w
        du, dv = dw
        dr = rate * (du * v * v + 2.0 * u * v * dv)
        return np.stack([-dr, -2.0 * dr])

    return etdrk4_periodic_system(lambda k: np.stack([-diffusion * k**2] * 2), reaction, tangent,
                                  lambda x: np.stack([_u0(x), _v0(x)]), (0.0, 1.0), (0.0, 1.0),
                                  modes=modes, dt=dt, snapshot_dt=snapshot_dt)


@dataclass(frozen=True)
class ReactionDiffusionInverse(Problem):
    """Learn D and k in the two-species system (x in [0, 1] periodic, t in [0, 1])

        u_t = D u_xx - k u v^2,    v_t = D v_xx - 2 k u v^2,

    u(x, 0) = 1 + sin(2 pi x) / 2, v(x, 0) = 1 - sin(4 pi x) / 2, from noisy observations of
    both u and v. The reaction A + 2B -> products consumes u at rate k u v^2 and v at twice
    that (DeepXDE's diffusion-reaction inverse example, Lu et al., SIAM Rev. 2021, made
    periodic here so that a spectral method gives the reference).

    The observations: ``n_obs`` points drawn uniformly from the run's seed, u and v from the
    reference for ``diffusion_true`` = 0.01 and ``rate_true`` = 1, plus Gaussian noise of
    ``noise`` (1 %) times each species' standard deviation. D starts at 0.05 and k at 0.5
    (``Unknown(..., positive=True)``: learnt as exp(s)); ``--param diffusion=0.01`` fixes one.

    Reference: Fourier pseudo-spectral in x (128 points) and ETDRK4 in t (step 1e-3; Kassam &
    Trefethen, SIAM J. Sci. Comput. 2005), snapshots every 5e-3 joined by quintic Hermite
    polynomials (:func:`pinnsketch.etdrk4_periodic_system`). Doubling the modes changes it by
    round-off and halving the step by 2e-14 (tests/test_reaction_diffusion.py,
    benchmarks/reaction_diffusion_convergence.py). The error is measured on a 128 x 201 grid
    (x = j / 128, t = 0, 0.005, ..., 1), both fields together and each alone.
    """

    name: ClassVar[str] = "reaction_diffusion_inverse"
    equation: ClassVar[str] = ("u_t = D u_xx - k u v^2, v_t = D v_xx - 2 k u v^2, D and k unknown, "
                               "from noisy observations of u and v (x in [0,1] periodic)")
    fields: ClassVar[tuple[str, ...]] = ("u", "v")
    equations: ClassVar[tuple[str, ...]] = ("u", "v")
    diffusion: float = Unknown(0.05, positive=True)
    rate: float = Unknown(0.5, positive=True)
    diffusion_true: float = 0.01
    rate_true: float = 1.0
    noise: float = 0.01
    n_obs: int = 2000

    def validate(self) -> None:
        for name in ("diffusion", "rate", "diffusion_true", "rate_true"):
            if not getattr(self, name) > 0:
                raise ValueError(f"reaction_diffusion_inverse: {name} must be > 0, got "
                                 f"{getattr(self, name)}")
        if not self.noise >= 0:
            raise ValueError(f"reaction_diffusion_inverse: noise must be >= 0, got {self.noise}")
        if isinstance(self.n_obs, bool) or not isinstance(self.n_obs, int) or self.n_obs < 1:
            raise ValueError(f"reaction_diffusion_inverse: n_obs must be a whole number >= 1, "
                             f"got {self.n_obs!r}")

    @property
    def domain(self):
        return space_time(interval(x=(0.0, 1.0)), t=(0.0, 1.0))

    def residual(self, d):
        r = self.rate * d.u * d.v**2
        return {"u": d.u_t - self.diffusion * d.u_xx + r,
                "v": d.v_t - self.diffusion * d.v_xx + 2.0 * r}

    def conditions(self):
        return (
            Periodic(coord="x", field="u", name="periodic_u"),
            Periodic(coord="x", field="v", name="periodic_v"),
            Initial(lambda d: 1.0 + 0.5 * torch.sin(2 * math.pi * d.x), field="u",
                    name="initial_u"),
            Initial(lambda d: 1.0 - 0.5 * torch.sin(4 * math.pi * d.x), field="v",
                    name="initial_v"),
        )

    def spectral_reference(self, modes: int = MODES, dt: float = DT):
        """The reference at another resolution (for convergence checks): (u, v) callables."""
        return spectral_solution(float(self.diffusion_true), float(self.rate_true), modes, dt)

    def reference(self, points):
        u, v = self.spectral_reference()
        return torch.stack([u(points), v(points)], dim=1)

    def observations(self, seed):
        rng = np.random.default_rng([seed, 0x2D1F])
        points = np.stack([rng.uniform(0.0, 1.0, self.n_obs), rng.uniform(0.0, 1.0, self.n_obs)], 1)
        clean = self.reference(torch.from_numpy(points)).numpy()
        values, noise = {}, {}
        for i, f in enumerate(self.fields):
            sigma = self.noise * float(clean[:, i].std())
            values[f] = clean[:, i] + sigma * rng.standard_normal(self.n_obs)
            if sigma > 0:
                noise[f] = sigma
        return Observations(points, values, noise=noise,
                            source=f"reaction_diffusion_inverse.observations(seed={seed})")

    def true_values(self):
        return {"diffusion": self.diffusion_true, "rate": self.rate_true}

    def evaluation_grid(self):
        x = torch.arange(128, dtype=torch.float64) / 128
        t = torch.linspace(0.0, 1.0, 201, dtype=torch.float64)
        return EvaluationGrid(("x", "t"), (x, t))

"""The reaction-diffusion reference (Fourier/ETDRK4 for a two-species system) has converged.

- In x: the solution is smooth (analytic initial data, a polynomial reaction, diffusion), so
  its Fourier coefficients decay faster than any power; with 128 points the top eighth of the
  modes holds less than 1e-15 of the largest, and doubling the modes changes the solution by
  round-off (float64 sums of ~100 terms of size ~1: a few 1e-15; we allow 1e-13).
- In t: ETDRK4 is fourth order (Cox & Matthews 2002), so the change from halving the step
  falls by 2^4 = 16 per halving while the leading error term dominates; we require 11 to 22
  (the next term is O(dt^5), ~dt / (2 dt) relative) on steps 5e-3 -> 2.5e-3 -> 1.25e-3, and
  that the problem's step 1e-3 is within 1e-10 of its half (16x below the 1.25e-3 change).
"""

from __future__ import annotations

import numpy as np
import torch

from pinnsketch import load_problem


def _values(problem, modes, dt, pts):
    u, v = problem.spectral_reference(modes=modes, dt=dt)
    return torch.stack([u(pts), v(pts)], 1).numpy()


def test_the_reference_has_converged_in_modes_and_step():
    torch.set_num_threads(1)
    problem = load_problem("reaction_diffusion_inverse")
    x = torch.linspace(0, 1, 33, dtype=torch.float64)[:-1]
    t = torch.linspace(0, 1, 21, dtype=torch.float64)
    pts = torch.cartesian_prod(x, t)
    sol = problem.spectral_reference()
    assert max(float(s.tail().max()) for s in sol) < 1e-15
    base = _values(problem, 128, 1e-3, pts)
    assert 0.3 < base.min() and base.max() <= 1.5 + 1e-12  # not vacuous: both species vary
    assert np.abs(_values(problem, 256, 1e-3, pts) - base).max() <= 1e-13
    steps = [_values(problem, 128, dt, pts) for dt in (5e-3, 2.5e-3, 1.25e-3)]
    changes = [np.abs(a - b).max() for a, b in zip(steps, steps[1:])]
    assert 11 <= changes[0] / changes[1] <= 22, changes
    assert np.abs(_values(problem, 128, 5e-4, pts) - base).max() <= 1e-10

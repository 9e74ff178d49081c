"""The Allen-Cahn reference (Fourier pseudo-spectral + ETDRK4) has converged.

The claim in problems/allen_cahn.py: halving the ETDRK4 step and doubling the Fourier points
changes the reference on the 512 x 201 evaluation grid by at most 5e-11 for t >= 0.05 and
5e-7 for t >= 0.005 (measured: 1.6e-11 and 1.7e-7 with 2048 -> 4096 points, 1e-3 -> 5e-4;
benchmarks/allen_cahn_convergence.py prints the whole table). The early-time change comes from
the initial kink at x = +-1 (u_x jumps by 4), which diffusion smooths over a width
sqrt(1e-4 t); for t >= 0.05 the spectrum's top eighth is below 1e-18 of its peak.

ETDRK4 itself is checked where the exact answer is known: for a linear equation (f = 0) one
step is exact up to the contour-integral evaluation of e^{hL} (error ~ 1e-16 per step).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pinnsketch import etdrk4_periodic, load_problem

F64 = torch.float64


@pytest.fixture(scope="module")
def problem():
    return load_problem("allen_cahn")


def test_reference_converged_in_modes_and_step(problem):
    fine = problem.spectral_reference(modes=4096, dt=5e-4)
    coarse = problem.spectral_reference()
    grid = problem.evaluation_grid()
    x = grid.axes[0].numpy()
    a, b = coarse.snapshots(x), fine.snapshots(x)
    assert a.shape == (201, 512) and np.allclose(coarse.times, grid.axes[1].numpy(), rtol=0, atol=1e-15)
    diff = np.abs(a - b)
    late, early = coarse.times >= 0.05 - 1e-12, coarse.times >= 0.005 - 1e-12
    assert diff[late].max() <= 5e-11, diff[late].max()
    assert diff[early].max() <= 5e-7, diff[early].max()
    assert coarse.tail()[late].max() <= 1e-15


def test_reference_is_the_interpolant_of_its_snapshots(problem):
    """At the snapshot times the torch evaluation equals the snapshot series, by the grid
    path (distinct x values tabulated once) and by the general, differentiable path."""
    ref = problem.spectral_reference()
    grid = problem.evaluation_grid()
    u = problem.reference(grid.points()).reshape(grid.shape).numpy()
    snaps = ref.snapshots(grid.axes[0].numpy()).T
    assert np.abs(u - snaps).max() <= 1e-12
    rows = torch.randperm(grid.points().shape[0], generator=torch.Generator().manual_seed(0))[:500]
    pts = grid.points()[rows].requires_grad_(True)
    assert np.abs(ref(pts).detach().numpy() - snaps.reshape(-1)[rows.numpy()]).max() <= 1e-12


def test_maximum_principle_and_energy_decay(problem):
    """|u0| <= 1 keeps |u| <= 1 (the comparison principle: u = +-1 are solutions), and the
    free energy E(u) = int d/2 u_x^2 + r/4 (1 - u^2)^2 dx of this L2 gradient flow never
    increases (dE/dt = -int u_t^2). E from the series: int u_x^2 = (P/2) sum k_n^2 |c_n|^2,
    the potential by the periodic trapezoid rule on 4096 points (exact for the degree-4
    polynomial of a 1023-mode series)."""
    ref = problem.spectral_reference()
    x = -1 + 2 * np.arange(4096) / 4096
    u = ref.snapshots(x)
    assert np.abs(u).max() <= 1 + 1e-9
    grad = (ref.period / 2) * (ref.wavenumbers**2 * np.abs(ref.coeffs) ** 2).sum(1)
    energy = problem.diffusion / 2 * grad + problem.rate / 4 * ((1 - u**2) ** 2).mean(1) * 2.0
    assert (np.diff(energy[1:]) <= 1e-12).all(), np.diff(energy).max()
    assert energy[-1] < 0.5 * energy[1]  # it does fall: the interfaces form


def test_etdrk4_is_exact_for_a_linear_equation():
    """u_t = u_xx - u on [0, 2 pi): each mode decays as exp(-(k^2 + 1) t)."""
    sol = etdrk4_periodic(lambda k: -(k**2) - 1.0, lambda u: 0.0 * u, lambda u, v: 0.0 * v,
                          lambda x: np.sin(x) + 0.5 * np.cos(3 * x), (0.0, 2 * np.pi), (0.0, 1.0),
                          modes=32, dt=0.1, snapshot_dt=0.5)
    x = np.linspace(0, 2 * np.pi, 7)
    exact = np.exp(-2.0) * np.sin(x) + 0.5 * np.exp(-10.0) * np.cos(3 * x)
    assert np.abs(sol.snapshots(x)[-1] - exact).max() <= 1e-14


@pytest.mark.parametrize("kwargs, match", [
    ({"modes": 7}, "even integer"), ({"dt": 0.003, "snapshot_dt": 0.005}, "whole multiple"),
    ({"dt": -1.0}, "dt > 0"),
])
def test_bad_resolution_is_refused(kwargs, match):
    args = dict(modes=64, dt=1e-3, snapshot_dt=5e-3) | kwargs
    with pytest.raises(ValueError, match=match):
        etdrk4_periodic(lambda k: -k**2, lambda u: u, lambda u, v: v, np.sin, (0.0, 1.0),
                        (0.0, 1.0), **args)


def test_underresolved_parameters_are_refused():
    with pytest.raises(RuntimeError, match="do not resolve"):
        load_problem("allen_cahn", diffusion=1e-4).spectral_reference(modes=256)

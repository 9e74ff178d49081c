"""The finite-difference Poisson reference on grid-aligned domains (the L-shape).

Tolerances: the five-point scheme reproduces every u with u_xxxx = u_yyyy = 0 exactly (its
truncation error is (h^2/12)(u_xxxx + u_yyyy)), so such a solution is matched to the sparse LU
solve's round-off, ~ (condition number ~ 1/h^2) * eps ~ 1e-13 here; we allow 1e-12. The
L-shape's observed orders are compared with the corner theory (module docstring of
pinnsketch.pde.fd_poisson): 2/3 for the nodal maximum next to the corner and 4/3 for the
root-mean-square pollution, within 0.1 on grids n = 32 ... 256 (measured 0.660 - 0.665 and
1.29 - 1.33).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pinnsketch import Disk, Polygon, rectangle
from pinnsketch.pde.fd_poisson import (
    LSHAPE,
    GridSolution,
    convergence_table,
    poisson_fd,
    richardson,
)

F64 = torch.float64
L = Polygon(LSHAPE)


@pytest.fixture(scope="module")
def nested():
    return [poisson_fd(L, 1.0, 0.0, 2.0 / n) for n in (32, 64, 128, 256)]


def test_exact_for_a_biquadratic_on_the_lshape():
    """u = (x^2 - 1)(y^2 - 1) + x y: -laplacian u = 2 (2 - x^2 - y^2); boundary data from u."""
    def u(x, y):
        return (x**2 - 1) * (y**2 - 1) + x * y

    sol = poisson_fd(L, lambda x, y: 2 * (2 - x**2 - y**2), u, 2.0 / 40)
    x, y = np.meshgrid(*sol.axes, indexing="ij")
    ok = np.isfinite(sol.values)
    assert np.abs(sol.values[ok] - u(x, y)[ok]).max() <= 1e-12
    assert sol.residual <= 1e-9  # |A u - b| / h^2 of the LU solve
    assert not ok[(x > 0) & (y > 0)].any()  # the removed quadrant holds no values
    # the interpolant: cubic where the 4 x 4 stencil is inside (exact for a biquadratic),
    # bilinear next to the boundary (error <= h^2/8 (|u_xx| + |u_yy|) <= 2 h^2 / 8 * 2)
    pts = L.sample_interior(3000, "sobol", 1)
    err = (sol(pts) - torch.from_numpy(u(pts[:, 0].numpy(), pts[:, 1].numpy()))).abs()
    assert float(err.max()) <= (2.0 / 40) ** 2 / 8 * 4 + 1e-12
    near = L._edge_distance(pts).min(1).values > 2 * (2.0 / 40) + 1e-9  # cubic cells only
    assert float(err[near].max()) <= 1e-12


def test_lshape_convergence_orders(nested):
    rows = convergence_table(nested)
    orders = [r["order"] for r in rows[1:]]
    assert all(abs(p - 2 / 3) <= 0.1 for p in orders), orders
    rms = [r["rms_change"] for r in rows]
    rms_orders = [math.log2(a / b) for a, b in zip(rms, rms[1:])]
    assert all(abs(p - 4 / 3) <= 0.1 for p in rms_orders), rms_orders


def test_richardson_removes_the_pollution_term(nested):
    """Extrapolating with the corner exponent 4/3 moves the nodes far closer to the finest
    extrapolation than the plain solutions are (pollution C h^(4/3) removed)."""
    r1 = richardson(nested[0], nested[1], 4 / 3)
    r2 = richardson(nested[2], nested[3], 4 / 3)
    r2_on_coarse = r2.values[::4, ::4]
    ok = np.isfinite(r1.values)
    plain = np.sqrt(np.mean((nested[0].values[ok] - r2_on_coarse[ok]) ** 2))
    extrapolated = np.sqrt(np.mean((r1.values[ok] - r2_on_coarse[ok]) ** 2))
    assert extrapolated < plain / 20, (plain, extrapolated)


def test_symmetry_and_known_values(nested):
    """The L-shape is symmetric about y = x, so is the grid: u(x, y) = u(y, x) to round-off.
    u = 0 on the boundary, u > 0 inside (maximum principle), largest ~0.149 near (-0.43, -0.43)."""
    sol = nested[-1]
    v = sol.values
    ok = np.isfinite(v)
    assert np.array_equal(ok, ok.T)
    assert np.abs(v[ok] - v.T[ok]).max() <= 1e-13
    nodes = torch.from_numpy(np.stack(np.meshgrid(*sol.axes, indexing="ij"), -1).reshape(-1, 2))
    on = L.on_boundary(nodes).numpy().reshape(v.shape)
    assert (v[on] == 0).all() and (v[ok & ~on] > 0).all()
    assert 0.148 < np.nanmax(v) < 0.1495


def test_interpolant_matches_nodes_and_refuses_outside(nested):
    sol = nested[0]
    nodes = torch.from_numpy(np.stack(np.meshgrid(*sol.axes, indexing="ij"), -1).reshape(-1, 2))
    vals = sol.values.reshape(-1)
    ok = np.isfinite(vals)
    assert np.abs(sol(nodes[torch.from_numpy(ok)]).numpy() - vals[ok]).max() <= 1e-15
    with pytest.raises(ValueError, match="outside the solved domain"):
        sol(torch.tensor([[0.5, 0.5]], dtype=F64))


@pytest.mark.parametrize("domain, h, match", [
    (Disk((0.0, 0.0), 1.0), 0.25, "grid"),
    (rectangle(x=(0.0, 1.0), y=(0.0, 1.0)), 0.3, "divide"),
    (rectangle(x=(0.0, 1.0), y=(0.0, 1.0)), -0.1, "positive"),
])
def test_refusals(domain, h, match):
    with pytest.raises(ValueError, match=match):
        poisson_fd(domain, 1.0, 0.0, h)
    with pytest.raises(ValueError, match="nested"):
        richardson(GridSolution((0.0, 0.0), 0.1, np.zeros((3, 3)), 0.0),
                   GridSolution((0.0, 0.0), 0.07, np.zeros((5, 5)), 0.0), 2.0)

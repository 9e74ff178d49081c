"""Finite-difference reference solutions of Poisson's equation on grid-aligned domains.

    -laplacian u = f in the domain,   u = g on its boundary,

for a 2-D domain of the protocol (:mod:`pinnsketch.pde.geometry`) whose boundary lies on the
lines of a uniform grid of spacing h: rectangles, the L-shape, their unions and differences.
The nodes of the bounding box's grid are classified by the domain's own verbs (``on_boundary``:
Dirichlet nodes, ``inside`` and not on the boundary: unknowns, the rest: outside); every
unknown's four neighbours must be unknowns or boundary nodes, which is what "the boundary lies
on grid lines" means here, and is checked.

The five-point Laplacian (-u_W - u_E - u_S - u_N + 4 u_P) / h^2 = f_P is solved by a sparse
LU factorisation (SuperLU through ``scipy.sparse.linalg.spsolve``). Its truncation error is
(h^2 / 12)(u_xxxx + u_yyyy), second order for smooth solutions. A re-entrant corner of
interior angle omega > pi makes u ~ r^(pi / omega) sin(pi theta / omega) near it (the
L-shape: omega = 3 pi / 2, r^(2/3)), whose derivatives are unbounded there, and the error
converges more slowly: measured on the L-shape with f = 1 (:func:`convergence_table`, nested
grids h = 2/16 ... 2/1024, benchmarks/lshape_convergence.py), the largest nodal change, next
to the corner, falls like h^(2/3) (observed orders 0.661, 0.660, 0.663, 0.665, 0.666) and the
root-mean-square change like h^(4/3) (orders 1.29, 1.31, 1.32, 1.33, 1.33): the corner's
error pollutes the whole domain at order
2 pi / omega (Laasonen, J. ACM 1958). Richardson extrapolation with that exponent,
u_h/2 + (u_h/2 - u_h) / (2^(4/3) - 1) (:func:`richardson`), removes the pollution term: on
the L-shape it moves the nodal values 50 to 100 times closer to the finest extrapolation.

Between nodes the solution is a tensor-product cubic Lagrange interpolant of the 4 x 4 nodes
around the point's cell when they all lie in the domain (error O(h^4) for smooth u), and the
bilinear interpolant of the cell's corners otherwise (next to the boundary and the corner):
the cells of a grid-aligned domain lie wholly inside or outside it, so those corners exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pinnsketch._types import Field, Points

__all__ = ["GridSolution", "poisson_fd", "richardson", "convergence_table", "lshape_reference",
           "LSHAPE"]

F64 = torch.float64
LSHAPE = ((0.0, 0.0), (1.0, 0.0), (1.0, -1.0), (-1.0, -1.0), (-1.0, 1.0), (0.0, 1.0))
"""DeepXDE's L-shape: [-1, 1]^2 without the open quadrant (0, 1) x (0, 1)."""
Data = float | Callable[[np.ndarray, np.ndarray], np.ndarray]


def _values(g: Data, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if callable(g):
        return np.broadcast_to(np.asarray(g(x, y), dtype=float), x.shape).astype(float)
    return np.full(x.shape, float(g))


@dataclass(frozen=True, eq=False)
class GridSolution:
    """Node values of a finite-difference solution and their bilinear interpolant.

    ``values[i, j]`` is u at (lo[0] + i h, lo[1] + j h); NaN at nodes outside the domain.
    ``residual`` is the largest |A u - b| of the solved system (round-off check).
    """

    lo: tuple[float, float]
    h: float
    values: np.ndarray
    residual: float

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        nx, ny = self.values.shape
        return (self.lo[0] + self.h * np.arange(nx), self.lo[1] + self.h * np.arange(ny))

    def __call__(self, points: Points) -> Field:
        """u at (N, 2) points of the closed domain (cubic or bilinear, see the module).

        Raises:
            ValueError: a point lies in no cell whose four corners are in the domain.
        """
        p = points.detach().to(F64).cpu().numpy()
        v = self.values
        nx, ny = v.shape
        s = (p - np.asarray(self.lo)) / self.h
        out = np.full(len(p), np.nan)
        cubic = np.zeros(len(p), dtype=bool)
        for di in (0, -1):  # a point on a cell edge belongs to both cells; either has its corners
            for dj in (0, -1):
                i = np.clip(np.floor(s[:, 0]).astype(int) + di, 0, nx - 2)
                j = np.clip(np.floor(s[:, 1]).astype(int) + dj, 0, ny - 2)
                a, b = s[:, 0] - i, s[:, 1] - j
                inside = (a >= -1e-9) & (a <= 1 + 1e-9) & (b >= -1e-9) & (b <= 1 + 1e-9)
                lin = ((1 - a) * (1 - b) * v[i, j] + a * (1 - b) * v[i + 1, j]
                       + (1 - a) * b * v[i, j + 1] + a * b * v[i + 1, j + 1])
                take = np.isnan(out) & inside & np.isfinite(lin)
                out[take] = lin[take]
                # the 4 x 4 stencil i-1..i+2, j-1..j+2, where it lies in the grid and the domain
                ok = take & (i >= 1) & (i <= nx - 3) & (j >= 1) & (j <= ny - 3)
                if ok.any():
                    ii, jj, aa, bb = i[ok], j[ok], a[ok], b[ok]
                    wa, wb = _cubic_weights(aa), _cubic_weights(bb)
                    acc = np.zeros(len(ii))
                    for m in range(4):
                        for n in range(4):
                            acc += wa[m] * wb[n] * v[ii - 1 + m, jj - 1 + n]
                    good = np.isfinite(acc)
                    rows = np.flatnonzero(ok)[good]
                    out[rows] = acc[good]
                    cubic[rows] = True
        bad = np.isnan(out)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} points lie outside the solved domain "
                             f"(first: {p[np.argmax(bad)].tolist()})")
        return torch.from_numpy(out).to(dtype=points.dtype, device=points.device)


def _cubic_weights(a: np.ndarray) -> list[np.ndarray]:
    """Lagrange weights of the nodes -1, 0, 1, 2 at local coordinate a in [0, 1]."""
    return [-a * (a - 1) * (a - 2) / 6, (a + 1) * (a - 1) * (a - 2) / 2,
            -(a + 1) * a * (a - 2) / 2, (a + 1) * a * (a - 1) / 6]


def poisson_fd(domain, source: Data, boundary: Data, h: float) -> GridSolution:
    """Solve -laplacian u = source, u = boundary on a 2-D grid-aligned domain with spacing h.

    Args:
        domain: a 2-D spatial domain of the protocol; h must divide its bounding box.
        source, boundary: numbers or functions (x, y) -> values on numpy arrays.
        h: the grid spacing.

    Raises:
        ValueError: h does not divide the bounding box, or the boundary is not on grid lines.

    >>> from pinnsketch.pde.geometry import Polygon
    >>> square = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    >>> sol = poisson_fd(square, lambda x, y: 2 * (x * (1 - x) + y * (1 - y)), 0.0, 0.125)
    >>> exact = lambda x, y: x * (1 - x) * y * (1 - y)  # quadratic in x and in y: no truncation
    >>> x, y = np.meshgrid(*sol.axes, indexing="ij")
    >>> bool(np.abs(sol.values - exact(x, y)).max() < 1e-15)
    True
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    if domain.dim != 2 or domain.time is not None:
        raise ValueError(f"poisson_fd solves on 2-D spatial domains, got {domain.names}")
    if not (math.isfinite(h) and h > 0):
        raise ValueError(f"h must be a positive number, got {h!r}")
    counts = [(b - a) / h for a, b in zip(domain.lo, domain.hi)]
    if any(abs(c - round(c)) > 1e-9 * c for c in counts):
        raise ValueError(f"h = {h} must divide the bounding box {domain.lo} - {domain.hi}")
    nx, ny = (int(round(c)) + 1 for c in counts)
    x, y = np.meshgrid(domain.lo[0] + h * np.arange(nx), domain.lo[1] + h * np.arange(ny),
                       indexing="ij")
    nodes = torch.from_numpy(np.stack([x.ravel(), y.ravel()], 1))
    tol = 1e-9 * h
    on = domain.on_boundary(nodes, tol).numpy().reshape(nx, ny)
    unknown = domain.inside(nodes, tol).numpy().reshape(nx, ny) & ~on
    known = on
    if unknown[0].any() or unknown[-1].any() or unknown[:, 0].any() or unknown[:, -1].any():
        raise ValueError("interior nodes on the bounding box's edge: the domain is not closed")
    shifts = ((1, 0), (-1, 0), (0, 1), (0, -1))
    for di, dj in shifts:
        nb_ok = np.roll(unknown | known, (-di, -dj), axis=(0, 1))
        if (unknown & ~nb_ok).any():
            i, j = np.argwhere(unknown & ~nb_ok)[0]
            raise ValueError(f"the boundary does not lie on the lines of the grid of spacing {h}: "
                             f"node ({x[i, j]:.6g}, {y[i, j]:.6g}) is inside, its neighbour "
                             "is neither inside nor on the boundary")
    index = -np.ones((nx, ny), dtype=np.int64)
    index[unknown] = np.arange(int(unknown.sum()))
    g = np.where(known, _values(boundary, x, y), 0.0)
    rhs = _values(source, x, y)[unknown] * h * h
    rows, cols, vals = [index[unknown]], [index[unknown]], [np.full(int(unknown.sum()), 4.0)]
    ui, uj = np.nonzero(unknown)
    for di, dj in shifts:
        ni, nj = ui + di, uj + dj
        inner = unknown[ni, nj]
        rows.append(index[ui[inner], uj[inner]])
        cols.append(index[ni[inner], nj[inner]])
        vals.append(np.full(int(inner.sum()), -1.0))
        np.add.at(rhs, index[ui[~inner], uj[~inner]], g[ni[~inner], nj[~inner]])
    n = int(unknown.sum())
    matrix = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(n, n)).tocsc()
    u = spsolve(matrix, rhs)
    residual = float(np.abs(matrix @ u - rhs).max() / (h * h))
    values = np.full((nx, ny), np.nan)
    values[known] = g[known]
    values[unknown] = u
    return GridSolution((float(domain.lo[0]), float(domain.lo[1])), float(h), values, residual)


def richardson(coarse: GridSolution, fine: GridSolution, order: float) -> GridSolution:
    """Richardson extrapolation at the coarse nodes: u_f + (u_f - u_c) / (2^order - 1).

    Removes the leading error term C h^order of a solution whose error expands in powers of h
    (order 4/3 on the L-shape, see the module; 2 for smooth solutions).
    """
    if not math.isclose(fine.h * 2, coarse.h, rel_tol=1e-12) or fine.lo != coarse.lo:
        raise ValueError("richardson needs nested grids: fine.h = coarse.h / 2, same origin")
    f = fine.values[::2, ::2]
    return GridSolution(coarse.lo, coarse.h, f + (f - coarse.values) / (2.0**order - 1.0),
                        max(coarse.residual, fine.residual))


def convergence_table(solutions: list[GridSolution]) -> list[dict[str, float]]:
    """Changes between successive solutions on grids h, h/2, h/4, ... at the coarse nodes.

    Each row: ``h``, ``max_change`` (max over the coarser grid's nodes of |u_h - u_{h/2}|),
    ``rms_change`` (root mean square over those nodes), and ``order``: log2 of the ratio of
    successive max changes (the observed order of convergence), NaN for the first row.
    """
    rows: list[dict[str, float]] = []
    for coarse, fine in zip(solutions, solutions[1:]):
        if not math.isclose(fine.h * 2, coarse.h, rel_tol=1e-12) or fine.lo != coarse.lo:
            raise ValueError("convergence_table needs nested grids: each h half the previous")
        a, b = coarse.values, fine.values[::2, ::2]
        ok = np.isfinite(a)
        d = np.abs(a[ok] - b[ok])
        rows.append({"h": coarse.h, "max_change": float(d.max()),
                     "rms_change": float(np.sqrt((d**2).mean()))})
    for prev, row in zip([None] + rows[:-1], rows):
        row["order"] = (math.log2(prev["max_change"] / row["max_change"]) if prev else math.nan)
    return rows


def lshape_reference(n: int = 256) -> GridSolution:
    """-laplacian u = 1 on DeepXDE's L-shape, u = 0 on its boundary: the Richardson
    extrapolation (order 4/3) of the grids h = 2/n and 1/n, on the nodes of the first.

    With n = 256 (about 3 s): relative L2 error 5e-5 at random interior points and at most
    5e-4 next to the re-entrant corner, measured against the same extrapolation from
    n = 512 and 1024 (benchmarks/lshape_convergence.py).
    """
    from pinnsketch.pde.geometry import Polygon

    lshape = Polygon(LSHAPE)
    return richardson(poisson_fd(lshape, 1.0, 0.0, 2.0 / n), poisson_fd(lshape, 1.0, 0.0, 1.0 / n),
                      4.0 / 3.0)

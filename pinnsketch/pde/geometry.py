"""Domains beyond the box: disks, polygons, their unions, differences and intersections, and
any of them times a time interval, all behind one protocol.

The protocol (:class:`Domain`) has DeepXDE's geometry verbs (Lu, Meng, Mao & Karniadakis,
SIAM Rev. 2021): coordinate ``names`` and the ``time`` coordinate, ``dim``, a bounding box
``lo``/``hi`` (the network scales its inputs by it), ``inside``, ``on_boundary``,
``boundary_normal``, interior and boundary samplers, and ``evaluation_points`` for errors and
plots. :class:`~pinnsketch.pde.domain.Box` implements it with exact faces; the classes here
implement it for other sets:

- interior points: quasi-random points of the bounding box (the project's samplers: uniform,
  sobol, lhs, halton), kept if inside, drawn deterministically in rounds until n are found;
- boundary points: a measure-preserving map from unit points onto a set that covers the
  boundary (:meth:`Geometry.boundary_map`: arclength for a polygon, angle for a disk, column 0
  split by measure between the operands of a set combination), kept if on the boundary, so
  the points spread in proportion to boundary measure; normals come with them;
- set combinations (``a | b``, ``a - b``, ``a & b``): membership by the set algebra; the
  boundary is the part of each operand's boundary that lies on the result's boundary,
  decided pointwise (:class:`_Combination`), with the subtracted operand's normals flipped.

Why not ``deepxde.geometry``: it implements exactly this, but deepxde is an optional extra
here (the ``compare`` extra, used by parity tests and benchmarks), and importing it has
process-wide effects that a library must not impose on its users: it selects a backend (from
``DDE_BACKEND``, else ``~/.deepxde/config.json``, which it writes when absent), its PyTorch
backend calls ``torch.set_default_device("cuda")`` whenever a GPU is visible, its float
setting changes torch's default dtype, and its pseudo-random sampler draws from numpy's global
random state (no per-call seed). Containing that needs an import guard around every use of the
protocol; the small set needed here (membership, distance to segments, arclength maps,
pointwise set rules) is a few hundred lines, tested against analytic areas, perimeters and
normals, and against ``deepxde.geometry`` where deepxde is installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from pinnsketch._types import Points
from pinnsketch.pde.domain import DomainBase, check_names
from pinnsketch.pde.evaluation import EvaluationPoints
from pinnsketch.pde.sampling import check_sampler, unit_cube
from pinnsketch.seeds import derive_seed

__all__ = ["Domain", "Geometry", "EvaluationPoints", "Disk", "Polygon", "Union", "Difference",
           "Intersection", "GeometryXTime", "sample_boundary_where"]

F64 = torch.float64
MAX_CANDIDATES = 1_000_000
"""A sampler gives up on a set that keeps fewer than 1 in 1000 of its candidates after
max(MAX_CANDIDATES, 1000 n) of them (a (nearly) empty set: a mistake in its definition)."""

BoundarySelector = tuple[str, ...] | Callable[[Points], Tensor] | None


@runtime_checkable
class Domain(Protocol):
    """What the samplers, conditions, tasks and plots may ask of a domain.

    Points are (N, d) tensors, columns in the order of ``names``. Membership and boundary tests
    take a tolerance ``tol`` (default: the domain's ``tol``, 1e-10 of its largest extent).
    """

    names: tuple[str, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    time: str | None

    @property
    def dim(self) -> int: ...

    @property
    def spatial(self) -> tuple[str, ...]: ...

    def index(self, name: str) -> int: ...

    def bounds(self, name: str) -> tuple[float, float]: ...

    def inside(self, points: Points, tol: float | None = None) -> Tensor: ...

    def on_boundary(self, points: Points, tol: float | None = None) -> Tensor: ...

    def boundary_normal(self, points: Points, tol: float | None = None) -> Points: ...

    def sample_interior(self, n: int, method: str, seed: int, dtype: torch.dtype = F64,
                        rows: slice | None = None) -> Points: ...

    def sample_boundary(self, n: int, method: str, seed: int, dtype: torch.dtype = F64,
                        on: BoundarySelector = None) -> tuple[Points, Points]: ...

    def corners(self) -> Points: ...

    def evaluation_points(self, n_per_axis: int = 101) -> EvaluationPoints: ...


# ----- the generic samplers -----

def _draw_until(n: int, dim: int, method: str, seed: int, guess: float,
                candidates: Callable[[Points], tuple[tuple[Tensor, ...], Tensor]]
                ) -> tuple[Tensor, ...]:
    """The first n kept candidates: unit points of [0, 1)^dim drawn in rounds (round 0 from
    ``seed``, round r from ``derive_seed(seed, r)``), each round sized from the kept fraction
    so far (``guess`` before any; at most 8 times the previous round), mapped and filtered by
    ``candidates(unit) -> (tensors, keep)``. Deterministic: the same arguments give the same
    points."""
    check_sampler(method)
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"need a number of points n >= 0, got {n!r}")
    if n == 0:
        tensors, keep = candidates(torch.zeros(0, dim, dtype=F64))
        return tuple(t[keep] for t in tensors)
    parts: list[tuple[Tensor, ...]] = []
    found = drawn = r = 0
    m = math.ceil(n / guess * 1.1) + 16
    while drawn < max(MAX_CANDIDATES, 1000 * n) or found * 1000 >= drawn:
        unit = unit_cube(method, m, dim, seed if r == 0 else derive_seed(seed, r), F64)
        tensors, keep = candidates(unit)
        parts.append(tuple(t[keep] for t in tensors))
        found += int(keep.sum())
        drawn += m
        r += 1
        if found >= n:
            return tuple(torch.cat(cols)[:n] for cols in zip(*parts))
        wanted = math.ceil((n - found) * drawn / found * 1.1) + 16 if found else 8 * m
        m = min(wanted, 8 * m)
    raise RuntimeError(f"found only {found} of {n} points in {drawn} candidates: the set fills "
                       f"about {found / drawn:.2g} of what its sampler covers (is it empty?)")


def _rows(points: Points, n: int, rows: slice | None) -> Points:
    if rows is None:
        return points
    start, stop, step = rows.indices(n)
    if step != 1:
        raise ValueError(f"rows must be a contiguous slice, got step {step}")
    return points[start:stop]


def sample_boundary_where(domain: Domain, on: Callable[[Points], Tensor] | None, n: int,
                          method: str, seed: int, dtype: torch.dtype = F64
                          ) -> tuple[Points, Points]:
    """n boundary points (and outward unit normals) of ``domain`` for which ``on(points)`` is
    True (all when None), spread in proportion to boundary measure: unit points mapped by
    ``domain.boundary_map`` and filtered, drawn until n are found."""
    if on is not None and not callable(on):
        raise ValueError(f"on must be None or a predicate points -> (N,) bool, got {on!r}")

    def candidates(unit):
        pts, nrm, keep = domain.boundary_map(unit)
        if on is not None and pts.shape[0]:
            sel = torch.as_tensor(on(pts))
            if sel.shape != (pts.shape[0],) or sel.dtype != torch.bool:
                raise ValueError(f"the boundary predicate must return an (N,) bool tensor, got "
                                 f"{sel.dtype} of shape {tuple(sel.shape)}")
            keep = keep & sel
        return (pts, nrm), keep

    # a primitive's map lands on its boundary (all kept); a combination's or a predicate's not
    guess = 0.5 if on is not None or isinstance(domain, _Combination) else 1.0
    pts, nrm = _draw_until(n, domain.boundary_unit_dim, method, seed, guess, candidates)
    return pts.to(dtype), nrm.to(dtype)


# ----- the base of the non-box domains -----

class Geometry(DomainBase):
    """Base of the non-box domains: generic samplers and evaluation points built on the verbs.

    A subclass (a frozen dataclass) provides ``names``, ``lo``, ``hi``, ``time``, ``inside``,
    ``on_boundary``, ``boundary_normal``, and the boundary parametrisation:
    ``boundary_unit_dim`` (columns of unit points it reads), ``boundary_map_measure`` (measure
    of the set it covers) and ``boundary_map(unit) -> (points, normals, keep)``, measure
    preserving onto a set that covers the boundary, ``keep`` marking images on the boundary.
    """

    def fill_fraction(self) -> float:
        """A guess of the fraction of the bounding box inside the set (sizes the first round)."""
        return 0.5

    def corners(self) -> Points:
        """(K, d) points where the boundary is not smooth (kept in evaluation points); none."""
        return torch.zeros(0, self.dim, dtype=F64)

    def sample_interior(self, n: int, method: str, seed: int, dtype: torch.dtype = F64,
                        rows: slice | None = None) -> Points:
        """(n, d) points of the set: quasi-random points of the bounding box kept if inside.

        With ``rows``, only those rows of the same n-point set (a data-parallel process's
        share): every process draws and tests all the candidates and keeps its slice, since
        which candidates are kept is known only by testing them in order (and a Latin
        hypercube is a property of the whole draw).
        """
        lo = torch.tensor(self.lo, dtype=F64)
        span = torch.tensor(self.hi, dtype=F64) - lo

        def candidates(unit):
            pts = lo + unit * span
            return (pts,), self.inside(pts)

        (pts,) = _draw_until(n, self.dim, method, seed, self.fill_fraction(), candidates)
        return _rows(pts, n, rows).to(dtype)

    def sample_boundary(self, n: int, method: str, seed: int, dtype: torch.dtype = F64,
                        on: BoundarySelector = None) -> tuple[Points, Points]:
        """n boundary points and their outward unit normals, spread by boundary measure; ``on``
        (a predicate points -> (N,) bool) keeps a part of the boundary."""
        if isinstance(on, tuple | list | str):
            raise ValueError(f"on={on!r} names faces of a box; the boundary of a "
                             f"{type(self).__name__} is selected by a predicate "
                             "(on=lambda p: p[:, 0] < 0) or None for all of it")
        return sample_boundary_where(self, on, n, method, seed, dtype)

    def evaluation_points(self, n_per_axis: int = 101) -> EvaluationPoints:
        """A square grid of ``n_per_axis`` points along the largest extent, kept if inside, plus
        points spaced alike along the boundary; a Delaunay triangulation (scipy) without the
        triangles that leave the set, when the set is 2-D."""
        if n_per_axis < 2:
            raise ValueError(f"n_per_axis must be >= 2, got {n_per_axis}")
        h = max(b - a for a, b in zip(self.lo, self.hi)) / (n_per_axis - 1)
        axes = [torch.linspace(a, b, max(round((b - a) / h), 1) + 1, dtype=F64)
                for a, b in zip(self.lo, self.hi)]
        grid = EvaluationPoints.from_grid(self.names, tuple(axes)).points
        tol = self.tol
        grid = grid[self.inside(grid, tol) & ~self.on_boundary(grid, tol)]
        if self.boundary_unit_dim != 1:
            return EvaluationPoints(self.names, grid)
        m = max(math.ceil(self.boundary_map_measure / h), 8)
        unit = ((torch.arange(m, dtype=F64) + 0.5) / m)[:, None]
        bpts, _, keep = self.boundary_map(unit)
        bpts = torch.unique(torch.cat([bpts[keep], self.corners()]), dim=0)  # 1-D: repeated ends
        if self.dim != 2:
            return EvaluationPoints(self.names, torch.cat([grid, bpts]))
        from scipy.spatial import cKDTree
        if bpts.shape[0] and grid.shape[0]:  # no slivers: drop grid points hugging the boundary
            dist, _ = cKDTree(bpts.numpy()).query(grid.numpy())
            grid = grid[torch.from_numpy(dist > 0.25 * h)]
        points = torch.cat([grid, bpts])
        return EvaluationPoints(self.names, points, self._triangulate(points),
                                (self.names[0], self.names[1]), points.shape[0])

    def _triangulate(self, points: Points) -> Tensor:
        from scipy.spatial import Delaunay
        tri = torch.from_numpy(Delaunay(points.numpy()).simplices.astype(np.int64))
        corners = points[tri]  # (M, 3, 2)
        probes = [corners.mean(1)] + [(corners[:, i] + corners[:, (i + 1) % 3]) / 2 for i in range(3)]
        ok = torch.stack([self.inside(p) for p in probes]).all(0)
        return tri[ok]


def _as_points(points: Points) -> Points:
    if points.ndim != 2:
        raise ValueError(f"points must be an (N, d) tensor, got shape {tuple(points.shape)}")
    return points.to(F64)


def _by_chunks(fn: Callable[[Points], Tensor], points: Points, width: int) -> Tensor:
    """fn over row chunks of points, so that (chunk, width) temporaries stay near 4M entries."""
    size = max(1, 4_000_000 // max(width, 1))
    if points.shape[0] <= size:
        return fn(points)
    return torch.cat([fn(p) for p in points.split(size)])


# ----- disk -----

@dataclass(frozen=True)
class Disk(Geometry):
    """The closed disk |p - center| <= radius in the plane of two coordinates.

    >>> disk = Disk((0.0, 0.0), 1.0)
    >>> disk.inside(torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.9, 0.9]], dtype=torch.float64)).tolist()
    [True, True, False]
    """

    center: tuple[float, float] = (0.0, 0.0)
    radius: float = 1.0
    names: tuple[str, ...] = ("x", "y")
    time: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        check_names(self.names)
        if len(self.names) != 2:
            raise ValueError(f"a Disk lives in a plane: give two coordinate names, got {self.names}")
        if len(self.center) != 2 or not all(math.isfinite(c) for c in self.center):
            raise ValueError(f"Disk center must be two finite numbers, got {self.center!r}")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"Disk radius must be finite and > 0, got {self.radius!r}")
        object.__setattr__(self, "center", tuple(float(c) for c in self.center))
        object.__setattr__(self, "radius", float(self.radius))

    @property
    def lo(self) -> tuple[float, ...]:
        return tuple(c - self.radius for c in self.center)

    @property
    def hi(self) -> tuple[float, ...]:
        return tuple(c + self.radius for c in self.center)

    @property
    def volume(self) -> float:
        """The area pi r^2."""
        return math.pi * self.radius**2

    def fill_fraction(self) -> float:
        return math.pi / 4

    def _radial(self, points: Points) -> tuple[Points, Tensor]:
        p = _as_points(points)
        rel = p - torch.tensor(self.center, dtype=F64, device=p.device)
        return rel, rel.norm(dim=1)

    def inside(self, points: Points, tol: float | None = None) -> Tensor:
        tol = self.tol if tol is None else tol
        return self._radial(points)[1] <= self.radius + tol

    def on_boundary(self, points: Points, tol: float | None = None) -> Tensor:
        tol = self.tol if tol is None else tol
        return (self._radial(points)[1] - self.radius).abs() <= tol

    def boundary_normal(self, points: Points, tol: float | None = None) -> Points:
        rel, r = self._radial(points)
        on = self.on_boundary(points, tol)
        return torch.where(on[:, None], rel / r.clamp_min(1e-300)[:, None], torch.zeros_like(rel))

    @property
    def boundary_unit_dim(self) -> int:
        return 1

    @property
    def boundary_map_measure(self) -> float:
        """The circumference 2 pi r."""
        return 2 * math.pi * self.radius

    def boundary_map(self, unit: Points) -> tuple[Points, Points, Tensor]:
        theta = 2 * math.pi * unit[:, 0].to(F64)
        normals = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
        points = torch.tensor(self.center, dtype=F64, device=unit.device) + self.radius * normals
        return points, normals, torch.ones(unit.shape[0], dtype=torch.bool, device=unit.device)


# ----- polygon -----

def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _segments_touch(p1, p2, q1, q2, eps: float) -> np.ndarray:
    """Whether segment p1p2 meets any segment q1q2 (arrays of them), touching included."""
    d1, d2 = p2 - p1, q2 - q1
    o1, o2 = _cross(d1, q1 - p1), _cross(d1, q2 - p1)
    o3, o4 = _cross(d2, p1 - q1), _cross(d2, p2 - q1)
    proper = (o1 * o2 < -eps**2) & (o3 * o4 < -eps**2)

    def on_seg(a, b, c, o):  # c on segment ab, given orientation o of (a, b, c)
        lo, hi = np.minimum(a, b) - eps, np.maximum(a, b) + eps
        return (np.abs(o) <= eps) & np.all((c >= lo) & (c <= hi), axis=-1)

    return (proper | on_seg(p1, p2, q1, o1) | on_seg(p1, p2, q2, o2)
            | on_seg(q1, q2, p1, o3) | on_seg(q1, q2, p2, o4))


@dataclass(frozen=True)
class Polygon(Geometry):
    """A closed simple polygon given by its vertices in order (either orientation).

    Refused: fewer than 3 vertices, repeated consecutive vertices, non-finite coordinates,
    self-intersection (including edges that touch or fold back), zero area.

    >>> lshape = Polygon([(0, 0), (1, 0), (1, -1), (-1, -1), (-1, 1), (0, 1)])
    >>> lshape.volume, lshape.boundary_map_measure
    (3.0, 8.0)
    """

    vertices: tuple[tuple[float, float], ...] = ()
    names: tuple[str, ...] = ("x", "y")
    time: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        check_names(self.names)
        if len(self.names) != 2:
            raise ValueError(f"a Polygon lives in a plane: give two coordinate names, got {self.names}")
        try:
            v = np.asarray(self.vertices, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"Polygon vertices must be (x, y) pairs, got {self.vertices!r}") from None
        if v.ndim != 2 or v.shape[1] != 2:
            raise ValueError(f"Polygon vertices must be (x, y) pairs, got shape {v.shape}")
        if len(v) < 3:
            raise ValueError(f"a Polygon needs at least 3 vertices, got {len(v)}: list the corners "
                             "of the region in order around it")
        if not np.isfinite(v).all():
            raise ValueError("Polygon vertices must be finite numbers")
        object.__setattr__(self, "vertices", tuple((float(a), float(b)) for a, b in v))
        original = v
        v = (v - v.mean(0)) / max(float(np.abs(v - v.mean(0)).max()), 1e-300)  # unit scale
        edges = np.roll(v, -1, axis=0) - v
        eps = 1e-12
        lengths = np.hypot(edges[:, 0], edges[:, 1])
        if (lengths <= eps).any():
            i = int(np.argmax(lengths <= eps))
            raise ValueError(f"Polygon vertices {i} and {(i + 1) % len(v)} coincide at "
                             f"{tuple(original[i])}")
        n = len(v)
        for i in range(n):  # adjacent edges must not fold back onto each other
            j = (i + 1) % n
            if abs(_cross(edges[i], edges[j])) <= eps * (lengths[i] + lengths[j]) \
                    and np.dot(edges[i], edges[j]) < 0:
                raise ValueError(f"Polygon is not simple: edges {i} and {j} fold back at vertex "
                                 f"{j}; list the corners in order around the region, each once "
                                 "(a region with a hole or crossing parts is a combination: "
                                 "a - b, a | b)")
        for i in range(n):  # non-adjacent edges must not meet
            js = np.array([j for j in range(i + 2, n) if not (i == 0 and j == n - 1)], dtype=int)
            if js.size == 0:
                continue
            hit = _segments_touch(v[i], v[(i + 1) % n], v[js], v[(js + 1) % n], eps)
            if hit.any():
                j = int(js[np.argmax(hit)])
                w = self.vertices
                raise ValueError(f"Polygon is not simple: edge {i} {w[i]}-{w[(i + 1) % n]} "
                                 f"meets edge {j} {w[j]}-{w[(j + 1) % n]}; list the corners in "
                                 "order around the region, each once (a region with a hole or "
                                 "crossing parts is a combination: a - b, a | b)")
        signed = 0.5 * float(_cross(v, np.roll(v, -1, axis=0)).sum())
        if abs(signed) <= eps:
            raise ValueError("Polygon has zero area")

    @property
    def _v(self) -> Tensor:
        return torch.tensor(self.vertices, dtype=F64)

    @property
    def _edges(self) -> tuple[Tensor, Tensor]:
        a = self._v
        return a, torch.roll(a, -1, dims=0)

    def _edges_on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        a, b = self._edges
        return a.to(device), b.to(device)

    @property
    def _signed_area(self) -> float:
        a, b = self._edges
        return 0.5 * float((a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]).sum())

    @property
    def lo(self) -> tuple[float, ...]:
        return tuple(float(c) for c in self._v.min(0).values)

    @property
    def hi(self) -> tuple[float, ...]:
        return tuple(float(c) for c in self._v.max(0).values)

    @property
    def volume(self) -> float:
        """The area (shoelace formula)."""
        return abs(self._signed_area)

    def fill_fraction(self) -> float:
        return self.volume / math.prod(b - a for a, b in zip(self.lo, self.hi))

    @property
    def edge_normals(self) -> Tensor:
        """(E, 2) outward unit normals of the edges v_i -> v_{i+1}."""
        a, b = self._edges
        d = b - a
        sign = 1.0 if self._signed_area > 0 else -1.0  # counter-clockwise: outward is (dy, -dx)
        return sign * torch.stack([d[:, 1], -d[:, 0]], dim=1) / d.norm(dim=1, keepdim=True)

    def _edge_distance(self, points: Points) -> Tensor:
        """(N, E) distance of each point to each edge."""
        a, b = self._edges_on(points.device)
        d = b - a

        def dist(p):
            p = p[:, None, :]
            s = (((p - a) * d).sum(-1) / (d * d).sum(-1)).clamp(0.0, 1.0)
            return (p - a - s[..., None] * d).norm(dim=-1)

        return _by_chunks(dist, _as_points(points), len(d))

    def _crossing_inside(self, points: Points) -> Tensor:
        """(N,) even-odd rule: a ray to +x crosses the boundary an odd number of times."""
        a, b = self._edges_on(points.device)

        def odd(p):
            px, py = p[:, :1], p[:, 1:]
            straddle = (a[:, 1] > py) != (b[:, 1] > py)
            dy = torch.where(straddle, b[:, 1] - a[:, 1], torch.ones_like(b[:, 1] - a[:, 1]))
            x_cross = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / dy
            return ((straddle & (px < x_cross)).sum(1) % 2) == 1

        return _by_chunks(odd, _as_points(points), len(a))

    def inside(self, points: Points, tol: float | None = None) -> Tensor:
        return self._crossing_inside(points) | self.on_boundary(points, tol)

    def on_boundary(self, points: Points, tol: float | None = None) -> Tensor:
        tol = self.tol if tol is None else tol
        if points.shape[0] == 0:
            return torch.zeros(0, dtype=torch.bool, device=points.device)
        return self._edge_distance(points).min(1).values <= tol

    def boundary_normal(self, points: Points, tol: float | None = None) -> Points:
        """Outward unit normal of the edge a point lies on; at a vertex the normalised sum of
        its two edges' normals; zero off the boundary."""
        tol = self.tol if tol is None else tol
        on_edge = (self._edge_distance(points) <= tol).to(F64)  # (N, E)
        summed = on_edge @ self.edge_normals.to(points.device)
        norm = summed.norm(dim=1, keepdim=True)
        return torch.where(norm > 0, summed / norm.clamp_min(1e-300), summed)

    @property
    def boundary_unit_dim(self) -> int:
        return 1

    def corners(self) -> Points:
        """The vertices."""
        return self._v

    @property
    def boundary_map_measure(self) -> float:
        """The perimeter."""
        a, b = self._edges
        return float((b - a).norm(dim=1).sum())

    def boundary_map(self, unit: Points) -> tuple[Points, Points, Tensor]:
        a, b = self._edges_on(unit.device)
        lengths = (b - a).norm(dim=1)
        ends = torch.cat([torch.zeros(1, dtype=F64, device=unit.device), torch.cumsum(lengths, 0)])
        s = unit[:, 0].to(F64) * ends[-1]
        e = torch.clamp(torch.searchsorted(ends[1:-1], s, right=True), 0, len(lengths) - 1)
        local = ((s - ends[e]) / lengths[e]).clamp(0.0, 1.0)[:, None]
        points = a[e] + local * (b[e] - a[e])
        return (points, self.edge_normals.to(unit.device)[e],
                torch.ones(unit.shape[0], dtype=torch.bool, device=unit.device))


# ----- set combinations -----

def _interior(g: Domain, p: Points, tol: float) -> Tensor:
    """Strictly inside: in the closed set and farther than tol from its boundary."""
    return g.inside(p, tol) & ~g.on_boundary(p, tol)


@dataclass(frozen=True)
class _Combination(Geometry):
    """A set combination of two spatial domains over the same coordinates.

    The boundary is decided pointwise: a point of operand a's boundary is on the result's
    boundary by :meth:`_keep_a`, one of b's by :meth:`_keep_b`. Where both boundaries overlap
    along a piece of positive measure, the piece belongs to a (so it is sampled once), kept
    or dropped by whether the two outward normals agree.
    """

    a: Domain
    b: Domain
    flip_b: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        for g in (self.a, self.b):
            if not isinstance(g, Domain):
                raise ValueError(f"{type(self).__name__} combines domains, got {type(g).__name__}")
            if g.time is not None:
                raise ValueError(f"{type(self).__name__}: combine spatial domains, then add time "
                                 f"with space_time(...); this operand has time coordinate {g.time!r}")
        if tuple(self.a.names) != tuple(self.b.names):
            raise ValueError(f"{type(self).__name__} of domains over different coordinates: "
                             f"{tuple(self.a.names)} and {tuple(self.b.names)}; give both the same names")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.a.names)

    @property
    def time(self) -> None:
        return None

    @property
    def tol(self) -> float:
        return min(self.a.tol, self.b.tol)

    def _keep_a(self, p: Points, n_a: Points, tol: float) -> Tensor:
        raise NotImplementedError

    def _keep_b(self, p: Points, tol: float) -> Tensor:
        raise NotImplementedError

    def _agree(self, p: Points, n: Points, other: Domain, tol: float) -> tuple[Tensor, Tensor]:
        """(on the other's boundary, normals agree there)."""
        on = other.on_boundary(p, tol)
        return on, (n * other.boundary_normal(p, tol)).sum(1) > 0

    def _parts(self, points: Points, tol: float | None) -> tuple[Tensor, Tensor]:
        tol = self.tol if tol is None else tol
        p = _as_points(points)
        part_a = self.a.on_boundary(p, tol)
        part_a = part_a & self._keep_a(p, self.a.boundary_normal(p, tol), tol)
        part_b = ~part_a & self.b.on_boundary(p, tol) & self._keep_b(p, tol)
        return part_a, part_b

    def on_boundary(self, points: Points, tol: float | None = None) -> Tensor:
        part_a, part_b = self._parts(points, tol)
        return part_a | part_b

    def boundary_normal(self, points: Points, tol: float | None = None) -> Points:
        tol = self.tol if tol is None else tol
        part_a, part_b = self._parts(points, tol)
        n_b = self.b.boundary_normal(points, tol) * (-1.0 if self.flip_b else 1.0)
        out = torch.where(part_a[:, None], self.a.boundary_normal(points, tol), torch.zeros_like(n_b))
        return torch.where(part_b[:, None], n_b, out)

    def corners(self) -> Points:
        """The operands' corners that lie on this set's boundary (the points where the two
        boundaries cross are not found)."""
        c = torch.cat([self.a.corners(), self.b.corners()])
        return c[self.on_boundary(c)] if c.shape[0] else c

    @property
    def boundary_unit_dim(self) -> int:
        return max(self.a.boundary_unit_dim, self.b.boundary_unit_dim)

    @property
    def boundary_map_measure(self) -> float:
        """Both operands' parametrised boundaries (more than the result's boundary)."""
        return self.a.boundary_map_measure + self.b.boundary_map_measure

    def boundary_map(self, unit: Points) -> tuple[Points, Points, Tensor]:
        u = unit.to(F64)
        split = self.a.boundary_map_measure / self.boundary_map_measure
        to_a = u[:, 0] < split
        points = torch.empty(u.shape[0], self.dim, dtype=F64, device=u.device)
        normals = torch.empty_like(points)
        keep = torch.zeros(u.shape[0], dtype=torch.bool, device=u.device)
        tol = self.tol
        for g, rows, lo, width in ((self.a, to_a, 0.0, split), (self.b, ~to_a, split, 1.0 - split)):
            if not bool(rows.any()):
                continue
            sub = u[rows][:, : g.boundary_unit_dim].clone()
            sub[:, 0] = ((sub[:, 0] - lo) / width).clamp(0.0, 1.0 - 1e-16)
            p, n, k = g.boundary_map(sub)
            if g is self.a:
                k = k & self._keep_a(p, n, tol)
            else:
                k = k & self._keep_b(p, tol)
                n = -n if self.flip_b else n
            points[rows], normals[rows], keep[rows] = p, n, k
        return points, normals, keep


@dataclass(frozen=True)
class Union(_Combination):
    """a | b: points in either; its boundary, the parts of each boundary outside the other."""

    @property
    def lo(self) -> tuple[float, ...]:
        return tuple(min(x, y) for x, y in zip(self.a.lo, self.b.lo))

    @property
    def hi(self) -> tuple[float, ...]:
        return tuple(max(x, y) for x, y in zip(self.a.hi, self.b.hi))

    def inside(self, points: Points, tol: float | None = None) -> Tensor:
        tol = self.tol if tol is None else tol
        return self.a.inside(points, tol) | self.b.inside(points, tol)

    def _keep_a(self, p: Points, n_a: Points, tol: float) -> Tensor:
        on_b, agree = self._agree(p, n_a, self.b, tol)
        return ~_interior(self.b, p, tol) & (~on_b | agree)

    def _keep_b(self, p: Points, tol: float) -> Tensor:
        return ~self.a.inside(p, tol)


@dataclass(frozen=True)
class Intersection(_Combination):
    """a & b: points in both; its boundary, the parts of each boundary inside the other."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(x >= y for x, y in zip(self.lo, self.hi)):
            raise ValueError("Intersection of domains whose bounding boxes do not overlap is empty")

    @property
    def lo(self) -> tuple[float, ...]:
        return tuple(max(x, y) for x, y in zip(self.a.lo, self.b.lo))

    @property
    def hi(self) -> tuple[float, ...]:
        return tuple(min(x, y) for x, y in zip(self.a.hi, self.b.hi))

    def inside(self, points: Points, tol: float | None = None) -> Tensor:
        tol = self.tol if tol is None else tol
        return self.a.inside(points, tol) & self.b.inside(points, tol)

    def _keep_a(self, p: Points, n_a: Points, tol: float) -> Tensor:
        on_b, agree = self._agree(p, n_a, self.b, tol)
        return self.b.inside(p, tol) & (~on_b | agree)

    def _keep_b(self, p: Points, tol: float) -> Tensor:
        return _interior(self.a, p, tol)


@dataclass(frozen=True)
class Difference(_Combination):
    """a - b: points of a not strictly inside b; its boundary, a's boundary outside b and b's
    boundary inside a (with b's normals flipped: they point into b, out of the result)."""

    flip_b: bool = field(default=True, init=False)

    @property
    def lo(self) -> tuple[float, ...]:
        return tuple(self.a.lo)

    @property
    def hi(self) -> tuple[float, ...]:
        return tuple(self.a.hi)

    def inside(self, points: Points, tol: float | None = None) -> Tensor:
        tol = self.tol if tol is None else tol
        return self.a.inside(points, tol) & ~_interior(self.b, points, tol)

    def _keep_a(self, p: Points, n_a: Points, tol: float) -> Tensor:
        on_b, agree = self._agree(p, n_a, self.b, tol)
        return ~_interior(self.b, p, tol) & ~(on_b & agree)

    def _keep_b(self, p: Points, tol: float) -> Tensor:
        return _interior(self.a, p, tol)


# ----- space x time -----

@dataclass(frozen=True)
class GeometryXTime(Geometry):
    """space x [t0, t1] for a spatial domain; the time coordinate comes last.

    Interior: space interior x [t0, t1]; boundary: the lateral surface (space boundary x
    [t0, t1]) with the spatial outward normals (time component 0); the initial slice
    {t = t0} is sampled by :meth:`sample_initial`. ``space_time(space, t=(t0, t1))`` builds it.
    """

    space: Domain
    t0: float
    t1: float
    time: str = "t"

    def __post_init__(self) -> None:
        if not isinstance(self.space, Domain):
            raise ValueError(f"GeometryXTime needs a spatial domain, got {type(self.space).__name__}")
        if self.space.time is not None:
            raise ValueError("GeometryXTime needs a purely spatial domain")
        check_names(tuple(self.space.names) + (self.time,))
        if not (math.isfinite(self.t0) and math.isfinite(self.t1) and self.t0 < self.t1):
            raise ValueError(f"time coordinate {self.time!r}: need finite t0 < t1, "
                             f"got [{self.t0}, {self.t1}]")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.space.names) + (self.time,)

    @property
    def lo(self) -> tuple[float, ...]:
        return tuple(self.space.lo) + (float(self.t0),)

    @property
    def hi(self) -> tuple[float, ...]:
        return tuple(self.space.hi) + (float(self.t1),)

    def fill_fraction(self) -> float:
        return self.space.fill_fraction() if isinstance(self.space, Geometry) else 0.5

    def corners(self) -> Points:
        """None: the corners of the space are edges here."""
        return torch.zeros(0, self.dim, dtype=F64)

    def _in_time(self, points: Points, tol: float) -> Tensor:
        t = _as_points(points)[:, -1]
        return (t >= self.t0 - tol) & (t <= self.t1 + tol)

    def inside(self, points: Points, tol: float | None = None) -> Tensor:
        tol = self.tol if tol is None else tol
        return self.space.inside(points[:, :-1], tol) & self._in_time(points, tol)

    def on_boundary(self, points: Points, tol: float | None = None) -> Tensor:
        """The lateral boundary: space boundary x [t0, t1]."""
        tol = self.tol if tol is None else tol
        return self.space.on_boundary(points[:, :-1], tol) & self._in_time(points, tol)

    def boundary_normal(self, points: Points, tol: float | None = None) -> Points:
        tol = self.tol if tol is None else tol
        n = self.space.boundary_normal(points[:, :-1], tol)
        n = n * self._in_time(points, tol)[:, None].to(n.dtype)
        return torch.cat([n, torch.zeros_like(n[:, :1])], dim=1)

    @property
    def boundary_unit_dim(self) -> int:
        return self.space.boundary_unit_dim + 1

    @property
    def boundary_map_measure(self) -> float:
        return self.space.boundary_map_measure * (self.t1 - self.t0)

    def boundary_map(self, unit: Points) -> tuple[Points, Points, Tensor]:
        u = unit.to(F64)
        p, n, keep = self.space.boundary_map(u[:, : self.space.boundary_unit_dim])
        t = self.t0 + u[:, -1:] * (self.t1 - self.t0)
        return torch.cat([p, t], 1), torch.cat([n, torch.zeros_like(t)], 1), keep

    def sample_initial(self, n: int, method: str, seed: int, dtype: torch.dtype = F64) -> Points:
        """(n, d) points on the initial slice {t = t0}: space interior points at t0."""
        x = self.space.sample_interior(n, method, seed, F64)
        return torch.cat([x, torch.full((x.shape[0], 1), self.t0, dtype=F64)], 1).to(dtype)

    def evaluation_points(self, n_per_axis: int = 101) -> EvaluationPoints:
        """The space's evaluation points at ``n_per_axis`` equispaced times, time-major."""
        space = self.space.evaluation_points(n_per_axis)
        times = torch.linspace(self.t0, self.t1, n_per_axis, dtype=F64)
        m = space.points.shape[0]
        points = torch.cat([torch.cat([space.points, torch.full((m, 1), float(t), dtype=F64)], 1)
                            for t in times])
        return EvaluationPoints(self.names, points, space.triangles, space.plane,
                                m if space.triangles is not None else 0, times)

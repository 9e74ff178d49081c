"""Axis-aligned domains: intervals, rectangles, boxes, optionally with a time axis.

A box is  prod_i [lo_i, hi_i]  over named coordinates (single letters, e.g.
``("x", "t")``). One coordinate may be marked as time; its lower end is the initial slice
and it has no boundary faces. The spatial boundary is the union of the faces
{x_i = lo_i} and {x_i = hi_i} of the spatial coordinates.

The box is one implementation of the domain protocol (:class:`pinnsketch.pde.geometry.Domain`:
membership, boundary, normals, samplers, evaluation points); it keeps its exact faces and
direct quasi-random samplers. Disks, polygons and their set combinations live in
:mod:`pinnsketch.pde.geometry`, which builds on this module; the few box verbs that need it or
the samplers import them where they are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from pinnsketch._types import Points

if TYPE_CHECKING:
    from pinnsketch.pde.evaluation import EvaluationPoints

__all__ = ["Box", "Face", "DomainBase", "check_names", "interval", "rectangle", "space_time",
           "REL_TOL"]

REL_TOL = 1e-10
"""Default membership/boundary tolerance, relative to a domain's largest bounding-box extent:
float64 points generated on a boundary lie on it to a few ulps (~1e-16 relative), so 1e-10
accepts them with a wide margin while no sampled interior point comes that close by chance
(probability ~1e-10 per point)."""


def check_names(names: tuple[str, ...]) -> None:
    """Coordinate names: at least one, distinct, each one lower-case letter other than 'u'."""
    if not names:
        raise ValueError("a domain needs at least one coordinate")
    if len(set(names)) != len(names):
        raise ValueError(f"coordinate names must be distinct, got {names}")
    for name in names:
        if not (isinstance(name, str) and len(name) == 1 and name.isalpha() and name.islower()) \
                or name == "u":
            raise ValueError(
                f"coordinate name {name!r} must be a single lower-case letter other than 'u' "
                "(derivatives are named u_<letters>, e.g. u_xt)"
            )


class DomainBase:
    """What every domain derives from its ``names``, ``lo``, ``hi`` (bounding box) and ``time``:
    coordinate lookup, the default tolerance, and the set operators ``|`` (union), ``-``
    (difference) and ``&`` (intersection) of :mod:`pinnsketch.pde.geometry`."""

    names: tuple[str, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    time: str | None

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def spatial(self) -> tuple[str, ...]:
        """The coordinates that are not time."""
        return tuple(n for n in self.names if n != self.time)

    @property
    def tol(self) -> float:
        """Default boundary tolerance: ``REL_TOL`` times the largest bounding-box extent."""
        return REL_TOL * max(b - a for a, b in zip(self.lo, self.hi))

    def index(self, name: str) -> int:
        """Column of coordinate ``name`` in a (N, d) points tensor."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown coordinate {name!r}; this domain has {self.names}") from None

    def bounds(self, name: str) -> tuple[float, float]:
        """Bounding-box extent of coordinate ``name``."""
        i = self.index(name)
        return self.lo[i], self.hi[i]

    def __or__(self, other):
        from pinnsketch.pde.geometry import Union
        return Union(self, other)

    def __sub__(self, other):
        from pinnsketch.pde.geometry import Difference
        return Difference(self, other)

    def __and__(self, other):
        from pinnsketch.pde.geometry import Intersection
        return Intersection(self, other)


@dataclass(frozen=True)
class Face:
    """One face {coord = lo} (side -1) or {coord = hi} (side +1) of a box; outward normal side*e_coord."""

    coord: str
    side: int

    def __post_init__(self) -> None:
        if self.side not in (-1, 1):
            raise ValueError(f"Face.side must be -1 (lower end) or +1 (upper end), got {self.side!r}")


@dataclass(frozen=True)
class Box(DomainBase):
    """The box prod_i [lo_i, hi_i] over named coordinates.

    Args:
        names: coordinate names, one lower-case letter each, e.g. ``("x", "t")``.
        lo, hi: lower and upper ends, one per coordinate, lo < hi.
        time: the name of the time coordinate, or None for a purely spatial domain.

    >>> box = space_time(interval(x=(-1.0, 1.0)), t=(0.0, 1.0))
    >>> box.names, box.spatial, box.volume
    (('x', 't'), ('x',), 2.0)
    """

    names: tuple[str, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    time: str | None = None

    def __post_init__(self) -> None:
        check_names(self.names)
        if not (len(self.lo) == len(self.hi) == len(self.names)):
            raise ValueError("lo and hi need one value per coordinate")
        for name, a, b in zip(self.names, self.lo, self.hi):
            if not (math.isfinite(a) and math.isfinite(b) and a < b):
                raise ValueError(f"coordinate {name!r}: need finite lo < hi, got [{a}, {b}]")
        if self.time is not None and self.time not in self.names:
            raise ValueError(f"time coordinate {self.time!r} is not one of {self.names}")

    @property
    def volume(self) -> float:
        return math.prod(b - a for a, b in zip(self.lo, self.hi))

    def faces(self, coords: tuple[str, ...] | None = None) -> tuple[Face, ...]:
        """Faces named by coordinate: ``"x"`` both ends, ``"x-"`` the lower, ``"x+"`` the upper.

        All faces of all spatial coordinates by default.

        >>> rectangle(x=(0, 1), y=(0, 2)).faces(("x-", "y"))
        (Face(coord='x', side=-1), Face(coord='y', side=-1), Face(coord='y', side=1))
        """
        coords = self.spatial if coords is None else coords
        if isinstance(coords, str):
            raise ValueError(f"faces take a tuple of names, e.g. ({coords!r},), not a string")
        out = []
        for spec in coords:
            c, sides = spec[:1], {"": (-1, 1), "-": (-1,), "+": (1,)}.get(spec[1:])
            if sides is None or c not in self.spatial:
                raise ValueError(f"unknown face {spec!r}: use a spatial coordinate of "
                                 f"{self.spatial}, optionally with '-' (lower end) or '+' (upper)")
            out.extend(Face(c, s) for s in sides)
        return tuple(out)

    def face_measure(self, face: Face) -> float:
        """(d-1)-dimensional measure of a face (1 for the end points of an interval)."""
        return math.prod(b - a for n, a, b in zip(self.names, self.lo, self.hi) if n != face.coord)

    def scale_to_unit(self, points: Points) -> Points:
        """Affine map of the box onto [-1, 1]^d, coordinate-wise."""
        lo = torch.as_tensor(self.lo, dtype=points.dtype, device=points.device)
        hi = torch.as_tensor(self.hi, dtype=points.dtype, device=points.device)
        return 2.0 * (points - lo) / (hi - lo) - 1.0

    def contains(self, points: Points, tol: float = 0.0) -> torch.Tensor:
        """(N,) bool: which points lie in the closed box (up to ``tol``)."""
        lo = torch.as_tensor(self.lo, dtype=points.dtype, device=points.device)
        hi = torch.as_tensor(self.hi, dtype=points.dtype, device=points.device)
        return ((points >= lo - tol) & (points <= hi + tol)).all(dim=1)

    # ----- the domain protocol (pinnsketch.pde.geometry.Domain) -----

    def inside(self, points: Points, tol: float | None = None) -> torch.Tensor:
        """(N,) bool: which points lie in the closed box, up to ``tol`` (default :attr:`tol`)."""
        return self.contains(points, self.tol if tol is None else tol)

    def _face_hits(self, points: Points, tol: float) -> torch.Tensor:
        """(N, F) bool: which of the spatial faces ``self.faces()`` each point lies on."""
        cols = []
        for face in self.faces():
            i = self.index(face.coord)
            end = self.lo[i] if face.side < 0 else self.hi[i]
            cols.append((points[:, i] - end).abs() <= tol)
        return torch.stack(cols, dim=1)

    def on_boundary(self, points: Points, tol: float | None = None) -> torch.Tensor:
        """(N,) bool: which points lie on a spatial face (time ends are no boundary)."""
        tol = self.tol if tol is None else tol
        return self.inside(points, tol) & self._face_hits(points, tol).any(dim=1)

    def boundary_normal(self, points: Points, tol: float | None = None) -> Points:
        """(N, d) outward unit normals: a face's normal on it, the normalised sum of the normals
        of the faces meeting at an edge or corner, zero off the boundary."""
        tol = self.tol if tol is None else tol
        hits = self._face_hits(points, tol) & self.inside(points, tol)[:, None]
        normals = torch.zeros_like(points)
        for f, face in enumerate(self.faces()):
            normals[:, self.index(face.coord)] += face.side * hits[:, f].to(points.dtype)
        norm = normals.norm(dim=1, keepdim=True)
        return torch.where(norm > 0, normals / norm.clamp_min(1e-300), normals)

    def corners(self) -> Points:
        """(2^k, d) the corners of the spatial box (at the lower end of time, if any)."""
        if not self.spatial:
            return torch.zeros(0, self.dim, dtype=torch.float64)
        axes = [torch.tensor([a, b] if nm != self.time else [a], dtype=torch.float64)
                for nm, a, b in zip(self.names, self.lo, self.hi)]
        mesh = torch.meshgrid(*axes, indexing="ij")
        return torch.stack([m.reshape(-1) for m in mesh], dim=1)

    @property
    def boundary_unit_dim(self) -> int:
        """Columns of the unit points that :meth:`boundary_map` reads."""
        return max(self.dim - 1, 1)

    @property
    def boundary_map_measure(self) -> float:
        """(d-1)-measure of the set :meth:`boundary_map` covers: all spatial faces."""
        return sum(self.face_measure(f) for f in self.faces())

    def boundary_map(self, unit: Points) -> tuple[Points, Points, torch.Tensor]:
        """Measure-preserving map of unit points onto the spatial faces.

        Column 0 picks a face in proportion to its measure and, rescaled, gives the first free
        coordinate on it; columns 1.. give the others. Returns (points, outward normals, keep),
        keep all True (every image is on the boundary). Used by set combinations and by
        predicate-filtered boundary sampling; :meth:`sample_boundary` uses exact face counts.
        """
        faces = self.faces()
        u = unit.to(torch.float64)
        weights = torch.tensor([self.face_measure(f) for f in faces], dtype=torch.float64)
        edges = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(weights, 0)]) / weights.sum()
        which = torch.clamp(torch.searchsorted(edges[1:-1], u[:, 0], right=True), 0, len(faces) - 1)
        local = ((u[:, 0] - edges[which]) / (edges[which + 1] - edges[which])).clamp(0.0, 1.0 - 1e-16)
        points = torch.empty(u.shape[0], self.dim, dtype=torch.float64)
        normals = torch.zeros_like(points)
        for f, face in enumerate(faces):
            rows = which == f
            free = [nm for nm in self.names if nm != face.coord]
            cols = [local[rows]] + [u[rows, j] for j in range(1, len(free))]
            for nm, col in zip(free, cols):
                a, b = self.bounds(nm)
                points[rows, self.index(nm)] = a + col * (b - a)
            i = self.index(face.coord)
            points[rows, i] = self.lo[i] if face.side < 0 else self.hi[i]
            normals[rows, i] = float(face.side)
        return points, normals, torch.ones(u.shape[0], dtype=torch.bool)

    def sample_interior(self, n: int, method: str, seed: int, dtype: torch.dtype = torch.float64,
                        rows: slice | None = None) -> Points:
        """(n, d) points of the box (see :func:`pinnsketch.pde.sampling.sample_interior`)."""
        from pinnsketch.pde.sampling import sample_interior
        return sample_interior(self, n, method, seed, dtype, rows)

    def sample_boundary(self, n: int, method: str, seed: int, dtype: torch.dtype = torch.float64,
                        on: tuple[str, ...] | Callable[[Points], torch.Tensor] | None = None
                        ) -> tuple[Points, Points]:
        """n points on spatial faces and their outward unit normals.

        ``on``: None (every spatial face) or face names (``("x",)``, ``("x-", "y+")``, see
        :meth:`faces`): exact counts per face in proportion to face measure; or a predicate
        (points -> (N,) bool) that keeps a part of the boundary (sampled until n are found).
        """
        if callable(on):
            from pinnsketch.pde.geometry import sample_boundary_where
            return sample_boundary_where(self, on, n, method, seed, dtype)
        from pinnsketch.pde.sampling import sample_faces
        faces = self.faces(on)
        pts, idx = sample_faces(self, faces, n, method, seed, dtype)
        normals = torch.zeros_like(pts)
        for i, face in enumerate(faces):
            normals[idx == i, self.index(face.coord)] = float(face.side)
        return pts, normals

    def sample_initial(self, n: int, method: str, seed: int, dtype: torch.dtype = torch.float64
                       ) -> Points:
        """(n, d) points on the initial slice {t = t0}."""
        from pinnsketch.pde.sampling import sample_initial
        return sample_initial(self, n, method, seed, dtype)

    def evaluation_points(self, n_per_axis: int = 101) -> EvaluationPoints:
        """The tensor grid of ``n_per_axis`` values per coordinate (ends included), with a
        triangulation of its cells when the box is 2-D."""
        from pinnsketch.pde.evaluation import EvaluationPoints
        axes = tuple(torch.linspace(a, b, n_per_axis, dtype=torch.float64)
                     for a, b in zip(self.lo, self.hi))
        return EvaluationPoints.from_grid(self.names, axes)


def interval(**bounds: tuple[float, float]) -> Box:
    """A 1-D interval, e.g. ``interval(x=(-1, 1))``."""
    if len(bounds) != 1:
        raise ValueError(f"interval takes exactly one coordinate, got {tuple(bounds)}")
    return rectangle(**bounds)


def rectangle(**bounds: tuple[float, float]) -> Box:
    """A box over the given coordinates in keyword order, e.g. ``rectangle(x=(0, 1), y=(0, 1))``."""
    names = tuple(bounds)
    return Box(names, tuple(float(b[0]) for b in bounds.values()),
               tuple(float(b[1]) for b in bounds.values()))


def space_time(space, t: tuple[float, float]):
    """The space x time cylinder ``space x [t0, t1]``; time is the last coordinate ``t``.

    A box gives a box; any other spatial domain a
    :class:`~pinnsketch.pde.geometry.GeometryXTime`.
    """
    if space.time is not None:
        raise ValueError("space_time needs a purely spatial domain")
    if not isinstance(space, Box):
        from pinnsketch.pde.geometry import GeometryXTime
        return GeometryXTime(space, float(t[0]), float(t[1]))
    return Box(space.names + ("t",), space.lo + (float(t[0]),), space.hi + (float(t[1]),), time="t")

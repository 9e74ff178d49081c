"""Boundary and initial conditions, each a residual on its own set of points.

A condition says where its points lie (the spatial boundary or a part of it, the initial
slice, a given point set) and what should vanish there. Values ``g`` are either a number or a
function of the :class:`~pinnsketch.pde.derivatives.Derivatives` object (so they can read
``d.x``, ``d.t``).

- :class:`Dirichlet`: u - g = 0 on the boundary;
- :class:`Neumann`: du/dn - g = 0, n the outward unit normal;
- :class:`Robin`: a u + b du/dn - g = 0;
- :class:`Initial`: u(x, t0) - g(x) = 0 on the initial slice;
- :class:`InitialVelocity`: u_t(x, t0) - g(x) = 0 (second order in time);
- :class:`Periodic`: u(lo) - u(hi) = 0 and u_c(lo) - u_c(hi) = 0 across a coordinate c (boxes);
- :class:`PointData`: u(x_i) - u_i = 0 at given points x_i with given values u_i.

Boundary conditions take ``on``: None for the whole spatial boundary, face names of a box
(``("x",)`` both ends of x, ``("x-",)`` only x = lo), or, on any domain, a predicate
``points -> (N,) bool`` that keeps a part of the boundary. Normals come from the domain's
boundary sampler (:mod:`pinnsketch.pde.geometry`), so Neumann and Robin conditions hold on
curved and polygonal boundaries alike.

Each constrains one output field: ``field`` names it (default: the problem's only field; a
problem with several fields must name it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pinnsketch._types import Field, Points
from pinnsketch.checks import is_real
from pinnsketch.pde.derivatives import Derivatives
from pinnsketch.pde.domain import Box, Face
from pinnsketch.pde.sampling import sample_faces

__all__ = ["Condition", "Dirichlet", "Neumann", "Robin", "Initial", "InitialVelocity", "Periodic",
           "PointData", "ConditionPoints"]

Value = float | Callable[[Derivatives], Tensor]
Selector = tuple[str, ...] | Callable[[Points], Tensor] | None


def _value(g: Value, d: Derivatives) -> Field:
    if callable(g):
        return g(d)
    return torch.full_like(d.points[:, 0], float(g))


@dataclass(frozen=True)
class ConditionPoints:
    """Sampled points of one condition with what its residual needs besides the network.

    ``normals`` (N, d) holds outward unit normals (zero where meaningless).
    """

    points: Points
    normals: Points


@dataclass(frozen=True, kw_only=True)
class Condition:
    """Base: ``name`` labels the loss term (default: the class name), ``weight`` scales it
    (its default weight; ``--weight NAME=W`` / ``OptimConfig.weights`` replaces it),
    ``field`` is the output field it constrains (None: the problem's only field)."""

    name: str = ""
    weight: float = 1.0
    field: str | None = None

    def __post_init__(self) -> None:
        w = self.weight
        if not is_real(w) or not math.isfinite(w) or w < 0:
            raise ValueError(f"condition {self.label!r}: weight must be a finite number >= 0, "
                             f"got {w!r}")
        if self.field is not None and (not isinstance(self.field, str) or not self.field):
            raise ValueError(f"condition {self.label!r}: field must be a field name, got "
                             f"{self.field!r}")

    @property
    def label(self) -> str:
        return self.name or type(self).__name__.lower()

    def probe_points(self, domain) -> Points:
        """A few points at which :meth:`residual` can run (to find the derivatives it reads,
        before any training): by default one point at 0.5 in every coordinate."""
        return torch.full((1, domain.dim), 0.5, dtype=torch.float64)

    def field_of(self, d: Derivatives) -> str:
        """The field this condition constrains among ``d.fields``.

        Raises:
            ValueError: no ``field`` with several fields, or a field that is not declared.
        """
        if self.field is None:
            if len(d.fields) != 1:
                raise ValueError(f"condition {self.label!r}: the problem has several fields "
                                 f"{d.fields}; name the one it constrains, e.g. "
                                 f"field={d.fields[0]!r}")
            return d.fields[0]
        if self.field not in d.fields:
            raise ValueError(f"condition {self.label!r}: field {self.field!r} is not a field of "
                             f"the problem; its fields: {', '.join(d.fields)}")
        return self.field

    def value_of(self, d: Derivatives, coords: tuple[int, ...] = ()) -> Field:
        """The constrained field (or its derivative along ``coords``) at the points."""
        return d.key((self.field_of(d), coords))

    def sample(self, domain: Box, n: int, method: str, seed: int, dtype) -> ConditionPoints:
        raise NotImplementedError

    def residual(self, d: Derivatives, normals: Points) -> Field:
        raise NotImplementedError

    def uses_boundary_budget(self) -> bool:
        """True if its points come from the boundary budget, False for the initial one."""
        return True


def _face_points(domain, on, n: int, method: str, seed: int, dtype) -> ConditionPoints:
    """Boundary points and outward normals from the domain's boundary sampler; ``on`` selects
    box faces by name or any domain's boundary part by a predicate."""
    return ConditionPoints(*domain.sample_boundary(n, method, seed, dtype, on=on))


def _normal_derivative(cond: Condition, d: Derivatives, normals: Points) -> Field:
    """du/dn = sum over spatial coordinates c of n_c u_c, u the condition's field."""
    return sum(normals[:, i] * cond.value_of(d, (i,)) for i, c in enumerate(d.domain.names)
               if c != d.domain.time)


@dataclass(frozen=True)
class Dirichlet(Condition):
    """u = g on the boundary part ``on`` (the whole spatial boundary if None).

    ``on`` names box faces by coordinate: ``("x",)`` both ends of x, ``("x-",)`` only x = lo,
    ``("x+", "y")`` x = hi and both ends of y; or is a predicate on points for any domain.
    """

    value: Value = 0.0
    on: Selector = None

    def sample(self, domain, n, method, seed, dtype):
        return _face_points(domain, self.on, n, method, seed, dtype)

    def residual(self, d, normals):
        return self.value_of(d) - _value(self.value, d)


@dataclass(frozen=True)
class Neumann(Condition):
    """du/dn = g on the boundary part ``on`` (as for :class:`Dirichlet`); n is the outward
    unit normal (on a box -e_c on the lower face, +e_c on the upper)."""

    value: Value = 0.0
    on: Selector = None

    def sample(self, domain, n, method, seed, dtype):
        return _face_points(domain, self.on, n, method, seed, dtype)

    def residual(self, d, normals):
        return _normal_derivative(self, d, normals) - _value(self.value, d)


@dataclass(frozen=True)
class Robin(Condition):
    """a u + b du/dn = g on the boundary part ``on`` (as for :class:`Dirichlet`).

    a = 0 is Neumann (times b), b = 0 Dirichlet (times a); not both zero. With a/b > 0 it is
    the heat-transfer (impedance) condition -du/dn = (a/b)(u - g/a).
    """

    a: float = 1.0
    b: float = 1.0
    value: Value = 0.0
    on: Selector = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.a) and math.isfinite(self.b)) or (self.a == 0 and self.b == 0):
            raise ValueError(f"condition {self.label!r}: Robin needs finite a, b, not both zero; "
                             f"got a={self.a}, b={self.b}")

    def sample(self, domain, n, method, seed, dtype):
        return _face_points(domain, self.on, n, method, seed, dtype)

    def residual(self, d, normals):
        return (self.a * self.value_of(d) + self.b * _normal_derivative(self, d, normals)
                - _value(self.value, d))


@dataclass(frozen=True)
class Initial(Condition):
    """u(x, t0) = g(x) on the initial slice of a space-time domain."""

    value: Value = 0.0

    def sample(self, domain, n, method, seed, dtype):
        if domain.time is None:
            raise ValueError(f"condition {self.label!r}: this domain has no time coordinate, "
                             "so it has no initial slice")
        pts = domain.sample_initial(n, method, seed, dtype)
        return ConditionPoints(pts, torch.zeros_like(pts))

    def residual(self, d, normals):
        return self.value_of(d) - _value(self.value, d)

    def uses_boundary_budget(self) -> bool:
        return False


@dataclass(frozen=True)
class InitialVelocity(Initial):
    """u_t(x, t0) = g(x) on the initial slice, the second initial condition of a problem of
    second order in time (the wave equation)."""

    def residual(self, d, normals):
        return self.value_of(d, (d.domain.index(d.domain.time),)) - _value(self.value, d)


@dataclass(frozen=True)
class Periodic(Condition):
    """u and u_c agree on the faces {c = lo} and {c = hi} (n/2 point pairs).

    The points are stacked as [lower-face points; their images on the upper face]; the
    residual is the difference of the two halves, for u and for u_c.
    """

    coord: str = "x"

    def sample(self, domain, n, method, seed, dtype):
        if not isinstance(domain, Box):
            raise ValueError(f"condition {self.label!r}: Periodic pairs opposite faces of a box; "
                             f"this domain is a {type(domain).__name__}")
        half = max(n // 2, 1)
        lo_pts, _ = sample_faces(domain, (Face(self.coord, -1),), half, method, seed, dtype)
        hi_pts = lo_pts.clone()
        hi_pts[:, domain.index(self.coord)] = domain.bounds(self.coord)[1]
        pts = torch.cat([lo_pts, hi_pts])
        return ConditionPoints(pts, torch.zeros_like(pts))

    def residual(self, d, normals):
        half = d.points.shape[0] // 2
        u, du = self.value_of(d), self.value_of(d, (d.domain.index(self.coord),))
        return torch.cat([u[:half] - u[half:], du[:half] - du[half:]])


@dataclass(frozen=True, eq=False)
class PointData(Condition):
    """u(x_i) = u_i at given points x_i (N, d) with given values u_i (N,): data on an
    arbitrary point set (measurements, a Dirichlet condition off any grid).

    Every point is used in every batch (``n`` and the sampler are ignored). The residual looks
    each evaluated point's value up by its coordinates (nearest given point; a point farther
    than 1e-6 of the data's extent from every data point is an error), so it is right for any
    subset and order of the points, as chunked or sharded training evaluates them.
    """

    points: Points | np.ndarray | None = None
    values: Field | np.ndarray | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.points is None or self.values is None:
            raise ValueError(f"condition {self.label!r}: PointData needs points (N, d) and values (N,)")
        pts = torch.as_tensor(np.asarray(self.points, dtype=np.float64))
        vals = torch.as_tensor(np.asarray(self.values, dtype=np.float64)).reshape(-1)
        if pts.ndim != 2 or pts.shape[0] == 0 or pts.shape[0] != vals.shape[0]:
            raise ValueError(f"condition {self.label!r}: need points (N, d) and values (N,) with "
                             f"N >= 1, got shapes {tuple(pts.shape)} and {tuple(vals.shape)}")
        for what, t in (("points", pts), ("values", vals)):
            bad = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(1)
            if bool(bad.any()):
                raise ValueError(f"condition {self.label!r}: {int(bad.sum())} of the {what} are "
                                 f"NaN or infinite (first at row {int(bad.nonzero()[0])})")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "values", vals)
        from scipy.spatial import cKDTree
        object.__setattr__(self, "_tree", cKDTree(pts.numpy()))
        extent = float((pts.max(0).values - pts.min(0).values).max())
        object.__setattr__(self, "_match_tol", 1e-6 * max(extent, 1.0))

    def sample(self, domain, n, method, seed, dtype):
        if self.points.shape[1] != domain.dim:
            raise ValueError(f"condition {self.label!r}: the points have {self.points.shape[1]} "
                             f"coordinates, the domain {domain.dim} {domain.names}")
        outside = ~domain.inside(self.points)
        if bool(outside.any()):
            first = self.points[outside][0].tolist()
            raise ValueError(f"condition {self.label!r}: {int(outside.sum())} of the "
                             f"{self.points.shape[0]} data points lie outside the domain "
                             f"(first: {first})")
        pts = self.points.to(dtype)
        return ConditionPoints(pts, torch.zeros_like(pts))

    def probe_points(self, domain) -> Points:
        """Its first data point: the residual runs only at data points."""
        return self.points[:1].to(torch.float64)

    def data_values(self, points: Points) -> Field:
        """The given value at each of ``points`` (which must be data points)."""
        dist, idx = self._tree.query(points.detach().cpu().double().numpy())
        far = dist > self._match_tol
        if far.any():
            raise ValueError(f"condition {self.label!r}: point {points[int(np.argmax(far))].tolist()} "
                             "is not one of its data points")
        return self.values[torch.from_numpy(idx)].to(points.dtype).to(points.device)

    def residual(self, d, normals):
        return self.value_of(d) - self.data_values(d.points)

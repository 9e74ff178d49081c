"""Boundary and initial conditions, each a residual on its own set of points.

A condition says where its points lie (faces of the spatial boundary, the initial slice)
and what should vanish there. Values ``g`` are either a number or a function of the
:class:`~pinnsketch.pde.derivatives.Derivatives` object (so they can read ``d.x``, ``d.t``).

- :class:`Dirichlet`: u - g = 0 on the chosen faces;
- :class:`Neumann`: du/dn - g = 0, n the outward unit normal of each face;
- :class:`Initial`: u(x, t0) - g(x) = 0 on the initial slice;
- :class:`Periodic`: u(lo) - u(hi) = 0 and u_c(lo) - u_c(hi) = 0 across a coordinate c.

Each constrains one output field: ``field`` names it (default: the problem's only field; a
problem with several fields must name it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from pinnsketch._types import Field, Points
from pinnsketch.pde.derivatives import Derivatives
from pinnsketch.pde.domain import Box, Face
from pinnsketch.pde.sampling import sample_faces, sample_initial

__all__ = ["Condition", "Dirichlet", "Neumann", "Initial", "Periodic", "ConditionPoints"]

Value = float | Callable[[Derivatives], Tensor]


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
    """Base: ``name`` labels the loss term (default: the class name), ``weight`` scales it,
    ``field`` is the output field it constrains (None: the problem's only field)."""

    name: str = ""
    weight: float = 1.0
    field: str | None = None

    def __post_init__(self) -> None:
        if not (self.weight >= 0.0):
            raise ValueError(f"condition {self.label!r}: weight must be >= 0, got {self.weight}")
        if self.field is not None and (not isinstance(self.field, str) or not self.field):
            raise ValueError(f"condition {self.label!r}: field must be a field name, got "
                             f"{self.field!r}")

    @property
    def label(self) -> str:
        return self.name or type(self).__name__.lower()

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


def _face_points(domain: Box, on: tuple[str, ...] | None, n: int, method: str, seed: int,
                 dtype) -> ConditionPoints:
    faces = domain.faces(on)
    pts, idx = sample_faces(domain, faces, n, method, seed, dtype)
    normals = torch.zeros_like(pts)
    for i, face in enumerate(faces):
        normals[idx == i, domain.index(face.coord)] = float(face.side)
    return ConditionPoints(pts, normals)


@dataclass(frozen=True)
class Dirichlet(Condition):
    """u = g on the faces ``on`` (all spatial faces if None).

    ``on`` names faces by coordinate: ``("x",)`` both ends of x, ``("x-",)`` only x = lo,
    ``("x+", "y")`` x = hi and both ends of y.
    """

    value: Value = 0.0
    on: tuple[str, ...] | None = None

    def sample(self, domain, n, method, seed, dtype):
        return _face_points(domain, self.on, n, method, seed, dtype)

    def residual(self, d, normals):
        return self.value_of(d) - _value(self.value, d)


@dataclass(frozen=True)
class Neumann(Condition):
    """du/dn = g on the faces ``on`` (as for :class:`Dirichlet`); n is the outward normal
    (-e_c on the lower face, +e_c on the upper)."""

    value: Value = 0.0
    on: tuple[str, ...] | None = None

    def sample(self, domain, n, method, seed, dtype):
        return _face_points(domain, self.on, n, method, seed, dtype)

    def residual(self, d, normals):
        du_dn = sum(normals[:, i] * self.value_of(d, (i,)) for i, c in enumerate(d.domain.names)
                    if c != d.domain.time)
        return du_dn - _value(self.value, d)


@dataclass(frozen=True)
class Initial(Condition):
    """u(x, t0) = g(x) on the initial slice of a space-time domain."""

    value: Value = 0.0

    def sample(self, domain, n, method, seed, dtype):
        pts = sample_initial(domain, n, method, seed, dtype)
        return ConditionPoints(pts, torch.zeros_like(pts))

    def residual(self, d, normals):
        return self.value_of(d) - _value(self.value, d)

    def uses_boundary_budget(self) -> bool:
        return False


@dataclass(frozen=True)
class Periodic(Condition):
    """u and u_c agree on the faces {c = lo} and {c = hi} (n/2 point pairs).

    The points are stacked as [lower-face points; their images on the upper face]; the
    residual is the difference of the two halves, for u and for u_c.
    """

    coord: str = "x"

    def sample(self, domain, n, method, seed, dtype):
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

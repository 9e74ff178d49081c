"""Axis-aligned domains: intervals, rectangles, boxes, optionally with a time axis.

A domain is a box  prod_i [lo_i, hi_i]  over named coordinates (single letters, e.g.
``("x", "t")``). One coordinate may be marked as time; its lower end is the initial slice
and it has no boundary faces. The spatial boundary is the union of the faces
{x_i = lo_i} and {x_i = hi_i} of the spatial coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pinnsketch._types import Points

__all__ = ["Box", "Face", "interval", "rectangle", "space_time"]


@dataclass(frozen=True)
class Face:
    """One face {coord = lo} (side -1) or {coord = hi} (side +1) of a box; outward normal side*e_coord."""

    coord: str
    side: int

    def __post_init__(self) -> None:
        if self.side not in (-1, 1):
            raise ValueError(f"Face.side must be -1 (lower end) or +1 (upper end), got {self.side!r}")


@dataclass(frozen=True)
class Box:
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
        if not self.names:
            raise ValueError("a domain needs at least one coordinate")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"coordinate names must be distinct, got {self.names}")
        for name in self.names:
            if not (len(name) == 1 and name.isalpha() and name.islower()) or name == "u":
                raise ValueError(
                    f"coordinate name {name!r} must be a single lower-case letter other than 'u' "
                    "(derivatives are named u_<letters>, e.g. u_xt)"
                )
        if not (len(self.lo) == len(self.hi) == len(self.names)):
            raise ValueError("lo and hi need one value per coordinate")
        for name, a, b in zip(self.names, self.lo, self.hi):
            if not (math.isfinite(a) and math.isfinite(b) and a < b):
                raise ValueError(f"coordinate {name!r}: need finite lo < hi, got [{a}, {b}]")
        if self.time is not None and self.time not in self.names:
            raise ValueError(f"time coordinate {self.time!r} is not one of {self.names}")

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def spatial(self) -> tuple[str, ...]:
        """The coordinates that are not time."""
        return tuple(n for n in self.names if n != self.time)

    @property
    def volume(self) -> float:
        return math.prod(b - a for a, b in zip(self.lo, self.hi))

    def index(self, name: str) -> int:
        """Column of coordinate ``name`` in a (N, d) points tensor."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown coordinate {name!r}; this domain has {self.names}") from None

    def bounds(self, name: str) -> tuple[float, float]:
        i = self.index(name)
        return self.lo[i], self.hi[i]

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


def space_time(space: Box, t: tuple[float, float]) -> Box:
    """The space x time cylinder ``space x [t0, t1]``; time is the last coordinate ``t``."""
    if space.time is not None:
        raise ValueError("space_time needs a purely spatial domain")
    return Box(space.names + ("t",), space.lo + (float(t[0]),), space.hi + (float(t[1]),), time="t")

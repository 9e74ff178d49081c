"""The Problem API: a PDE as a small frozen dataclass.

Subclass :class:`Problem` with ``@dataclass(frozen=True)``; PDE parameters are fields.
Provide the domain, the residual (written against named derivatives, see
:mod:`pinnsketch.pde.derivatives`), the conditions, and a reference solution::

    @dataclass(frozen=True)
    class Heat(Problem):
        '''u_t = alpha u_xx on [0, 1] x [0, 1].'''
        name: ClassVar[str] = "heat"
        equation: ClassVar[str] = "u_t = alpha u_xx"
        alpha: float = 0.1

        @property
        def domain(self):
            return space_time(interval(x=(0.0, 1.0)), t=(0.0, 1.0))

        def residual(self, d):
            return d.u_t - self.alpha * d.u_xx

        def conditions(self):
            return (Dirichlet(0.0), Initial(lambda d: torch.sin(torch.pi * d.x)))

        def reference(self, points):
            ...

No sampled points and no caches live on a problem.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from pinnsketch._types import Field, Points
from pinnsketch.pde.conditions import Condition
from pinnsketch.pde.constraints import OutputTransform
from pinnsketch.pde.derivatives import Derivatives
from pinnsketch.pde.domain import Box

__all__ = ["Problem", "EvaluationGrid", "uniform_grid"]


@dataclass(frozen=True)
class EvaluationGrid:
    """A tensor-product grid over the domain's coordinates, for errors and plots.

    ``axes[i]`` are the values of coordinate ``names[i]``; points are ordered as
    ``meshgrid(*axes, indexing="ij")`` so fields reshape to ``shape``.
    """

    names: tuple[str, ...]
    axes: tuple[torch.Tensor, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)

    def points(self) -> Points:
        """(prod(shape), d) float64 points."""
        mesh = torch.meshgrid(*[a.to(torch.float64) for a in self.axes], indexing="ij")
        return torch.stack([m.reshape(-1) for m in mesh], dim=1)


DEFAULT_GRID_POINTS = 10**5
"""About how many points the default evaluation grid holds, whatever the dimension."""


def default_points_per_axis(dim: int) -> int:
    """101 per axis in 1-D and 2-D, fewer above so the grid stays near 10^5 points
    (3-D: 47^3 = 103,823; 4-D: 19^4 = 130,321).

    >>> [default_points_per_axis(d) for d in (1, 2, 3, 4)]
    [101, 101, 47, 19]
    """
    return min(101, int(round(DEFAULT_GRID_POINTS ** (1.0 / dim))) + 1)


def uniform_grid(domain: Box, n_per_axis: int | None = None) -> EvaluationGrid:
    """``n_per_axis`` equispaced values per coordinate, ends included (default:
    :func:`default_points_per_axis`)."""
    if n_per_axis is None:
        n_per_axis = default_points_per_axis(domain.dim)
    axes = tuple(torch.linspace(a, b, n_per_axis, dtype=torch.float64)
                 for a, b in zip(domain.lo, domain.hi))
    return EvaluationGrid(domain.names, axes)


@dataclass(frozen=True)
class Problem:
    """Base class of a PDE problem. Subclasses are frozen dataclasses.

    Class attributes: ``name`` (registry name), ``equation`` (one line, shown by
    ``pinnsketch list``), ``fields`` (the names of the unknown fields, default ``("u",)``:
    one network output each, read in a residual as ``d.u``, ``d.v_x``, ``d.p``, ...).
    """

    name: ClassVar[str] = "problem"
    equation: ClassVar[str] = ""
    fields: ClassVar[tuple[str, ...]] = ("u",)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{type(self).__name__}.{f.name} must be finite, got {value}")
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming a bad parameter; override to add checks."""

    @property
    def domain(self) -> Box:
        raise NotImplementedError(f"{type(self).__name__} must define the property 'domain'")

    def residual(self, d: Derivatives) -> Field:
        """The PDE residual, zero for the exact solution."""
        raise NotImplementedError(f"{type(self).__name__} must define residual(d)")

    def conditions(self) -> tuple[Condition, ...]:
        """Boundary and initial conditions."""
        return ()

    def output_transforms(self) -> tuple[OutputTransform, ...]:
        """Hard constraints u = g + phi N (at most one per field); the conditions each one
        names in ``satisfies`` leave the loss. None by default."""
        return ()

    def reference(self, points: Points) -> Field:
        """The reference solution at (N, d) float64 points, as an (N,) float64 tensor."""
        raise NotImplementedError(f"{type(self).__name__} has no reference solution")

    def has_reference(self) -> bool:
        return type(self).reference is not Problem.reference

    def evaluation_grid(self) -> EvaluationGrid:
        """The grid on which the headline L2 relative error is measured."""
        return uniform_grid(self.domain)

    def parameters(self) -> dict[str, object]:
        """The PDE parameters (dataclass fields) by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

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

from pinnsketch._types import Field, Points
from pinnsketch.pde.conditions import Condition
from pinnsketch.pde.constraints import OutputTransform
from pinnsketch.pde.derivatives import Derivatives
from pinnsketch.pde.domain import Box
from pinnsketch.pde.evaluation import EvaluationGrid, EvaluationSet, uniform_grid
from pinnsketch.pde.evaluation import default_points_per_axis as _points_per_axis
from pinnsketch.pde.observations import Observations
from pinnsketch.pde.unknowns import Unknown, unknown_fields, with_values

__all__ = ["Problem", "EvaluationGrid", "uniform_grid"]


@dataclass(frozen=True)
class Problem:
    """Base class of a PDE problem. Subclasses are frozen dataclasses.

    Class attributes: ``name`` (registry name), ``equation`` (one line, shown by
    ``pinnsketch list``), ``fields`` (the names of the unknown fields, default ``("u",)``:
    one network output each, read in a residual as ``d.u``, ``d.v_x``, ``d.p``, ...),
    ``equations`` (optional: the names of a system's equations, which ``residual`` must then
    return as a dict; see :mod:`pinnsketch.pde.equations`).

    A field holding an :class:`~pinnsketch.pde.unknowns.Unknown` is a parameter learnt with
    the network (an inverse problem, :mod:`pinnsketch.pde.unknowns`).
    """

    name: ClassVar[str] = "problem"
    equation: ClassVar[str] = ""
    fields: ClassVar[tuple[str, ...]] = ("u",)
    equations: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{type(self).__name__}.{f.name} must be finite, got {value}")
        # validate() sees an unknown's initial guess (it must be a valid value too)
        with_values(self, {k: u.guess for k, u in self.unknowns().items()}).validate()

    def validate(self) -> None:
        """Raise ValueError naming a bad parameter; override to add checks."""

    @property
    def domain(self) -> Box:
        raise NotImplementedError(f"{type(self).__name__} must define the property 'domain'")

    def residual(self, d: Derivatives) -> Field | dict[str, Field] | tuple[Field, ...]:
        """The PDE residual, zero for the exact solution: one (N,) tensor, or a system (a dict
        name -> (N,) tensor, or a tuple), each equation its own loss term."""
        raise NotImplementedError(f"{type(self).__name__} must define residual(d)")

    def conditions(self) -> tuple[Condition, ...]:
        """Boundary and initial conditions."""
        return ()

    def output_transforms(self) -> tuple[OutputTransform, ...]:
        """Hard constraints u = g + phi N (at most one per field); the conditions each one
        names in ``satisfies`` leave the loss. None by default."""
        return ()

    def reference(self, points: Points) -> Field:
        """The reference solution at (N, d) float64 points: an (N,) float64 tensor, or (N, F)
        with one column per field (in ``fields`` order) for several fields."""
        raise NotImplementedError(f"{type(self).__name__} has no reference solution")

    def has_reference(self) -> bool:
        return type(self).reference is not Problem.reference

    def evaluation_grid(self) -> EvaluationSet:
        """The evaluation set on which the headline L2 relative error is measured (and the
        fields saved and plotted): a uniform grid on a box
        (:class:`~pinnsketch.pde.evaluation.EvaluationGrid`), the domain's own evaluation
        points elsewhere (:meth:`~pinnsketch.pde.geometry.Domain.evaluation_points`: a grid
        kept inside, boundary points and a triangulation). Override to give another grid or
        point set."""
        if isinstance(self.domain, Box):
            return uniform_grid(self.domain)
        return self.domain.evaluation_points(_points_per_axis(self.domain.dim))

    def unknowns(self) -> dict[str, Unknown]:
        """The unknown parameters (fields holding an Unknown), by name."""
        return unknown_fields(self)

    def true_values(self) -> dict[str, float]:
        """The true values of unknown parameters where the problem knows them (it made its own
        observations from them): reported beside the learnt values. None by default."""
        return {}

    def observations(self, seed: int) -> Observations | None:
        """Observations the problem generates itself (a synthetic inverse problem), from
        ``seed``; ``--data FILE`` replaces them. None by default."""
        return None

    def parameters(self) -> dict[str, object]:
        """The PDE parameters (dataclass fields) by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

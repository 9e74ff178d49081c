"""Evaluation sets: the points on which a run measures its error, saves and plots its fields.

One small protocol, :class:`EvaluationSet`, with two implementations:

- :class:`EvaluationGrid`: a tensor-product grid (boxes; Burgers' published 256 x 100 grid);
  fields are stored grid-shaped and plotted as images;
- :class:`EvaluationPoints`: any point set, with a triangulation of a plane when the set is
  (space or space-time over) a 2-D region (a disk, a polygon, their combinations:
  :meth:`Domain.evaluation_points`); fields are stored as flat arrays beside the triangles and
  plotted on the triangulation (``matplotlib.tri``).

The PINN task evaluates the fields at :meth:`EvaluationSet.coordinates`; the HDF5 writer
stores values through :meth:`EvaluationSet.arrange` beside :meth:`EvaluationSet.layout`;
the plots dispatch on the kind (:func:`pinnsketch.plots.plot_on`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from pinnsketch._types import Points

__all__ = ["EvaluationSet", "EvaluationGrid", "EvaluationPoints", "uniform_grid",
           "default_points_per_axis", "DEFAULT_GRID_POINTS"]

F64 = torch.float64


@runtime_checkable
class EvaluationSet(Protocol):
    """What the task, the HDF5 writer and the plots ask of an evaluation set."""

    names: tuple[str, ...]

    def coordinates(self) -> Points:
        """(N, d) float64 points, columns in the order of ``names``."""
        ...

    def arrange(self, values: np.ndarray) -> np.ndarray:
        """(N,) values at the points as stored in result.h5 (grid-shaped for a grid)."""
        ...

    def layout(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(datasets, attributes) of result.h5 that say where the points lie: ``grid/<name>``
        axes for a grid; ``triangles`` (and ``times``) for a point set."""
        ...


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
        mesh = torch.meshgrid(*[a.to(F64) for a in self.axes], indexing="ij")
        return torch.stack([m.reshape(-1) for m in mesh], dim=1)

    def coordinates(self) -> Points:
        return self.points()

    def arrange(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values).reshape(self.shape)

    def layout(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return ({f"grid/{n}": a.numpy() for n, a in zip(self.names, self.axes)},
                {"evaluation": "grid"})


DEFAULT_GRID_POINTS = 10**5
"""About how many points the default evaluation grid holds, whatever the dimension."""


def default_points_per_axis(dim: int) -> int:
    """101 per axis in 1-D and 2-D, fewer above so the grid stays near 10^5 points
    (3-D: 47^3 = 103,823; 4-D: 19^4 = 130,321).

    >>> [default_points_per_axis(d) for d in (1, 2, 3, 4)]
    [101, 101, 47, 19]
    """
    return min(101, int(round(DEFAULT_GRID_POINTS ** (1.0 / dim))) + 1)


def uniform_grid(domain, n_per_axis: int | None = None) -> EvaluationGrid:
    """``n_per_axis`` equispaced values per coordinate, ends included (default:
    :func:`default_points_per_axis`)."""
    if n_per_axis is None:
        n_per_axis = default_points_per_axis(domain.dim)
    axes = tuple(torch.linspace(a, b, n_per_axis, dtype=F64)
                 for a, b in zip(domain.lo, domain.hi))
    return EvaluationGrid(domain.names, axes)


@dataclass(frozen=True, eq=False)
class EvaluationPoints:
    """Points for errors and plots, with a triangulation of a plane for non-grid sets.

    ``points`` (N, d) float64. ``triangles`` (M, 3) long indexes the first ``block`` points in
    the plane of coordinates ``plane``; the points are ``N / block`` such blocks (one per time
    value ``times[k]`` for a space-time domain), or ``triangles`` is None when no plane plot
    applies (1-D or 3-D spatial sets).
    """

    names: tuple[str, ...]
    points: Points
    triangles: Tensor | None = None
    plane: tuple[str, str] | None = None
    block: int = 0
    times: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.points.shape[0]
        if self.points.ndim != 2 or self.points.shape[1] != len(self.names):
            raise ValueError(f"points must be (N, {len(self.names)}), got {tuple(self.points.shape)}")
        if self.triangles is not None:
            if self.plane is None or not 0 < self.block <= n or n % self.block:
                raise ValueError("a triangulation needs its plane and a block size dividing N")
            if self.triangles.numel() and int(self.triangles.max()) >= self.block:
                raise ValueError("triangles index past the first block of points")

    @classmethod
    def from_grid(cls, names: tuple[str, ...], axes: tuple[Tensor, ...]) -> EvaluationPoints:
        """The tensor grid ``meshgrid(*axes, indexing="ij")`` (the ordering of
        :class:`EvaluationGrid`); two triangles per cell when 2-D."""
        mesh = torch.meshgrid(*[a.to(F64) for a in axes], indexing="ij")
        points = torch.stack([m.reshape(-1) for m in mesh], dim=1)
        if len(axes) != 2:
            return cls(names, points)
        n0, n1 = len(axes[0]), len(axes[1])
        i, j = torch.meshgrid(torch.arange(n0 - 1), torch.arange(n1 - 1), indexing="ij")
        a = (i * n1 + j).reshape(-1)  # corner (i, j); (i+1, j) = a + n1; (i, j+1) = a + 1
        tri = torch.cat([torch.stack([a, a + n1, a + n1 + 1], 1), torch.stack([a, a + n1 + 1, a + 1], 1)])
        return cls(names, points, tri, (names[0], names[1]), points.shape[0])

    def coordinates(self) -> Points:
        return self.points.to(F64)

    def arrange(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values).reshape(-1)

    def layout(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        datasets: dict[str, np.ndarray] = {}
        attrs: dict[str, Any] = {"evaluation": "points"}
        if self.triangles is not None:
            datasets["triangles"] = self.triangles.numpy()
            attrs.update(triangle_plane=",".join(self.plane), triangle_block=int(self.block))
        if self.times is not None:
            datasets["times"] = self.times.numpy()
        return datasets, attrs

"""PNG plots of a run: solution, reference, absolute error, and training curves.

Uses matplotlib's non-interactive Agg backend through the object API (no pyplot state).
A 1-D field is a line; a 2-D field an image over the two coordinates; a 3-D field is
shown on its middle slice of the last coordinate. A field on a non-grid point set (a disk, a
polygon, their combinations) is drawn on a triangulation of the points
(:func:`plot_triangulated`, ``matplotlib.tri``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pinnsketch.results import atomic_write

__all__ = ["plot_field", "plot_triangulated", "plot_on", "plot_history", "plot_columns",
           "plot_parameters", "new_figure", "save_png"]


def new_figure(figsize=(6.0, 4.0)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))


def plot_field(path: Path, names: tuple[str, ...], axes: list[np.ndarray], values: np.ndarray,
               title: str, cmap: str = "RdBu_r") -> None:
    """Plot a grid-shaped field ``values`` (shape = lengths of ``axes``)."""
    values = values.reshape(tuple(len(a) for a in axes))
    while values.ndim > 2:  # middle slice of the last coordinate
        mid = values.shape[-1] // 2
        title = f"{title} ({names[-1]} = {axes[-1][mid]:.3g})"
        values, axes, names = values[..., mid], axes[:-1], names[:-1]
    fig = new_figure()
    ax = fig.add_subplot()
    if values.ndim == 1:
        ax.plot(axes[0], values)
        ax.set_xlabel(names[0])
    else:
        # first coordinate on the vertical axis for space-time (x, t): time runs left to right
        mesh = ax.pcolormesh(axes[1], axes[0], values, shading="auto", cmap=cmap)
        fig.colorbar(mesh, ax=ax)
        ax.set_xlabel(names[1])
        ax.set_ylabel(names[0])
    ax.set_title(title)
    save_png(fig, path)


def plot_triangulated(path: Path, points: np.ndarray, triangles: np.ndarray | None,
                      values: np.ndarray, title: str, labels: tuple[str, str] = ("x", "y"),
                      cmap: str = "RdBu_r") -> None:
    """Plot ``values`` (N,) at scattered 2-D ``points`` (N, 2), shaded linearly (Gouraud) over
    ``triangles`` (M, 3) indices into the points (a Delaunay triangulation when None; for a
    non-convex set pass its own, e.g. ``EvaluationPoints.triangles``, so that no triangle
    bridges a notch or a hole). Errors and fields alike: pass ``cmap="magma"`` for |error|."""
    from matplotlib.tri import Triangulation

    points = np.asarray(points, dtype=float)
    values = np.asarray(values, dtype=float).reshape(-1)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] != values.shape[0]:
        raise ValueError(f"need points (N, 2) and values (N,), got {points.shape} and {values.shape}")
    path = Path(path)
    tri = Triangulation(points[:, 0], points[:, 1],
                        None if triangles is None else np.asarray(triangles, dtype=np.int64))
    fig = new_figure()
    ax = fig.add_subplot()
    mesh = ax.tripcolor(tri, values, shading="gouraud", cmap=cmap)
    fig.colorbar(mesh, ax=ax)
    ax.set_aspect("equal")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title)
    save_png(fig, path)


def plot_on(path: Path, ev, values: np.ndarray, title: str, cmap: str = "RdBu_r") -> bool:
    """Plot ``values`` (N,) given at the points of an evaluation set ``ev``
    (:mod:`pinnsketch.pde.evaluation`): an image for a grid (:func:`plot_field`), the
    triangulated field for a point set with a triangulation (on its middle time slice for a
    space-time set), a line for 1-D points. Returns False (and writes nothing) for a point set
    that has no plane plot (3-D spatial sets)."""
    from pinnsketch.pde.evaluation import EvaluationGrid

    values = np.asarray(values, dtype=float).reshape(-1)
    if isinstance(ev, EvaluationGrid):
        plot_field(path, ev.names, [a.numpy() for a in ev.axes], values, title, cmap=cmap)
        return True
    points = ev.coordinates().numpy()
    if ev.triangles is not None:
        cols = [ev.names.index(c) for c in ev.plane]
        rows = slice(0, ev.block)
        if ev.times is not None and ev.block < points.shape[0]:
            k = (points.shape[0] // ev.block) // 2
            rows = slice(k * ev.block, (k + 1) * ev.block)
            title = f"{title} (t = {float(ev.times[k]):.3g})"
        plot_triangulated(path, points[rows][:, cols], ev.triangles.numpy(), values[rows], title,
                          labels=tuple(ev.plane), cmap=cmap)
        return True
    if points.shape[1] == 1:
        order = np.argsort(points[:, 0])
        fig = new_figure()
        ax = fig.add_subplot()
        ax.plot(points[order, 0], values[order])
        ax.set_xlabel(ev.names[0])
        ax.set_title(title)
        save_png(fig, path)
        return True
    return False


def plot_parameters(path: Path, history: list[dict[str, Any]], truths: dict[str, float]) -> None:
    """The learnt parameters (history columns ``param:<name>``) against the iteration, one
    panel each, with the true value (dashed) where it is known; nothing if there are none."""
    names = sorted({k[6:] for row in history for k in row if k.startswith("param:")})
    if not names:
        return
    fig = new_figure((7.0, 2.4 * len(names) + 0.6))
    for i, name in enumerate(names):
        ax = fig.add_subplot(len(names), 1, i + 1)
        pts = [(row["step"], row[f"param:{name}"]) for row in history
               if row.get(f"param:{name}") is not None]
        x, y = np.array(pts, dtype=float).T
        ax.plot(x, y, lw=1.2, label=f"{name} (learnt)")
        if name in truths:
            ax.axhline(truths[name], color="k", ls="--", lw=1, label=f"true {truths[name]:.4g}")
        ax.set_ylabel(name)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        if i == len(names) - 1:
            ax.set_xlabel("iteration")
    save_png(fig, path)


def plot_history(path: Path, history: list[dict[str, Any]], term_names: tuple[str, ...]) -> None:
    """Loss terms and L2 error against the iteration count (log scale)."""
    fig = new_figure((7.0, 4.5))
    ax = fig.add_subplot()
    steps = np.array([row["step"] for row in history], dtype=float)
    for name in ("loss",) + tuple(term_names):
        vals = np.array([np.nan if row.get(name) is None else row[name] for row in history], float)
        if np.isfinite(vals).any():
            ax.semilogy(steps, vals, label=name, lw=1.0 if name != "loss" else 1.6)
    l2 = np.array([np.nan if row.get("l2_relative_error") is None else row["l2_relative_error"]
                   for row in history], float)
    ok = np.isfinite(l2)
    if ok.any():
        ax.semilogy(steps[ok], l2[ok], "k.-", label="L2 relative error")
    lbfgs = [row["step"] for row in history if row.get("phase") == "lbfgs"]
    if lbfgs:
        ax.axvline(min(lbfgs), color="grey", ls=":", lw=1)
        ax.text(min(lbfgs), ax.get_ylim()[1], " L-BFGS", va="top", fontsize=8, color="grey")
    ax.set_xlabel("iteration")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    save_png(fig, path)


def plot_columns(path: Path, history: list[dict[str, Any]], prefix: str, title: str,
                 logy: bool = False) -> None:
    """Every history column starting with ``prefix`` against the step; nothing if none.

    Columns ``<prefix>exact_<L>`` are drawn as dots, the others as lines.
    """
    cols = sorted({k for row in history for k in row if k.startswith(prefix)})
    if not cols:
        return
    fig = new_figure((7.0, 4.5))
    ax = fig.add_subplot()
    for col in cols:
        pts = [(row["step"], row[col]) for row in history if row.get(col) is not None]
        if not pts:
            continue
        x, y = np.array(pts, dtype=float).T
        if "relerr" in col:
            continue
        style = "." if "exact" in col else "-"
        (ax.semilogy if logy else ax.plot)(x, y, style, label=col[len(prefix):], lw=1.0, ms=3)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, alpha=0.3)
    save_png(fig, path)

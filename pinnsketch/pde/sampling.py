"""Pure collocation samplers: (domain, n, method, seed) -> points.

Same arguments, same points; no global random state is read or changed. Methods:

- ``uniform``: i.i.d. uniform (``torch.Generator`` seeded explicitly);
- ``sobol``: scrambled Sobol' sequence (``torch.quasirandom.SobolEngine``);
- ``lhs``: Latin hypercube (``scipy.stats.qmc.LatinHypercube``);
- ``halton``: scrambled Halton sequence (``scipy.stats.qmc.Halton``).

Each draws from the unit cube [0, 1)^d and maps it affinely onto the target set.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import qmc

from pinnsketch._types import Points
from pinnsketch.pde.domain import Box, Face
from pinnsketch.seeds import derive_seed

__all__ = ["SAMPLERS", "unit_cube", "sample_interior", "sample_faces",
           "sample_initial"]

SAMPLERS = ("uniform", "sobol", "lhs", "halton")


def check_sampler(method: str) -> None:
    if method not in SAMPLERS:
        raise ValueError(f"unknown sampler {method!r}; valid samplers: {', '.join(SAMPLERS)}")


def unit_cube(method: str, n: int, dim: int, seed: int, dtype=torch.float64,
              rows: slice | None = None) -> Points:
    """n points in [0, 1)^dim drawn by ``method`` from ``seed``; with ``rows``, only those
    rows of that set (a data-parallel process's share; equal to slicing the whole set).

    The sequences (sobol, halton) skip ahead to ``rows.start`` and draw only the rows asked
    for; ``uniform`` and ``lhs`` (a Latin hypercube is a property of the whole set) draw the
    set and slice it.

    >>> a = unit_cube("sobol", 8, 2, seed=3); b = unit_cube("sobol", 8, 2, seed=3)
    >>> bool((a == b).all()), tuple(a.shape)
    (True, (8, 2))
    >>> bool((unit_cube("sobol", 8, 2, seed=3, rows=slice(5, 8)) == a[5:]).all())
    True
    """
    check_sampler(method)
    if n < 0 or dim < 0:
        raise ValueError(f"need n >= 0 and dim >= 0, got n={n}, dim={dim}")
    start, stop, step = (rows or slice(0, n)).indices(n)
    if step != 1:
        raise ValueError(f"rows must be a contiguous slice, got step {step}")
    count = max(stop - start, 0)
    if count == 0 or dim == 0:
        return torch.zeros(count, dim, dtype=dtype)
    if method == "uniform":
        gen = torch.Generator().manual_seed(int(seed))
        return torch.rand(n, dim, generator=gen, dtype=torch.float64)[start:stop].to(dtype)
    if method == "sobol":
        engine = torch.quasirandom.SobolEngine(dim, scramble=True, seed=int(seed))
        engine.fast_forward(start)
        return engine.draw(count, dtype=torch.float64).to(dtype)
    rng = np.random.default_rng(int(seed))
    if method == "lhs":
        return torch.from_numpy(qmc.LatinHypercube(d=dim, rng=rng).random(n)[start:stop]).to(dtype)
    engine = qmc.Halton(d=dim, rng=rng)
    engine.fast_forward(start)
    return torch.from_numpy(engine.random(count)).to(dtype)


def _affine(unit: Points, lo: list[float], hi: list[float]) -> Points:
    lo_t = torch.tensor(lo, dtype=unit.dtype)
    hi_t = torch.tensor(hi, dtype=unit.dtype)
    return lo_t + unit * (hi_t - lo_t)


def sample_interior(domain: Box, n: int, method: str, seed: int, dtype=torch.float64,
                    rows: slice | None = None) -> Points:
    """(n, d) points in the box (space x time when the domain has a time axis); with
    ``rows``, only those rows of the same set (see :func:`unit_cube`). Any other domain of
    the protocol (:mod:`pinnsketch.pde.geometry`) samples itself."""
    if not isinstance(domain, Box):
        return domain.sample_interior(n, method, seed, dtype, rows)
    unit = unit_cube(method, n, domain.dim, seed, dtype, rows)
    return _affine(unit, list(domain.lo), list(domain.hi))


def sample_faces(domain: Box, faces: tuple[Face, ...], n: int, method: str, seed: int,
                 dtype=torch.float64) -> tuple[Points, torch.Tensor]:
    """n points on a union of faces, split in proportion to face measure.

    Returns (points (n, d), face_index (n,) long): which entry of ``faces`` each point is on.
    Every face gets at least one point when n >= len(faces).
    """
    if not faces:
        raise ValueError("sample_faces needs at least one face")
    measures = np.array([domain.face_measure(f) for f in faces], dtype=float)
    counts = _split(n, measures)
    pts, idx = [], []
    for i, (face, count) in enumerate(zip(faces, counts)):
        free = [nm for nm in domain.names if nm != face.coord]
        unit = unit_cube(method, count, len(free), derive_seed(seed, i), dtype)
        block = torch.empty(count, domain.dim, dtype=dtype)
        for j, nm in enumerate(free):
            a, b = domain.bounds(nm)
            block[:, domain.index(nm)] = a + unit[:, j] * (b - a)
        a, b = domain.bounds(face.coord)
        block[:, domain.index(face.coord)] = a if face.side < 0 else b
        pts.append(block)
        idx.append(torch.full((count,), i, dtype=torch.long))
    return torch.cat(pts), torch.cat(idx)


def sample_initial(domain: Box, n: int, method: str, seed: int, dtype=torch.float64) -> Points:
    """(n, d) points on the initial slice {t = t0} of a space-time domain."""
    if not isinstance(domain, Box):
        return domain.sample_initial(n, method, seed, dtype)
    if domain.time is None:
        raise ValueError("this domain has no time coordinate, so it has no initial slice")
    space = [nm for nm in domain.names if nm != domain.time]
    unit = unit_cube(method, n, len(space), seed, dtype)
    out = torch.empty(n, domain.dim, dtype=dtype)
    for j, nm in enumerate(space):
        a, b = domain.bounds(nm)
        out[:, domain.index(nm)] = a + unit[:, j] * (b - a)
    out[:, domain.index(domain.time)] = domain.bounds(domain.time)[0]
    return out


def _split(n: int, weights: np.ndarray) -> list[int]:
    """Largest-remainder split of n into parts proportional to weights.

    Exact when the shares are integers; when n >= len(weights) every part gets at least one
    point (taken from the largest parts).
    """
    share = weights / weights.sum() * n
    counts = np.floor(share).astype(int)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    if n >= len(weights):
        for i in np.flatnonzero(counts == 0):
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    return [int(c) for c in counts]

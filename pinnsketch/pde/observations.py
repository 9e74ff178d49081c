"""Observations of a problem's fields: measured values at given points, and the data term.

An :class:`Observations` holds points (N, d) and, for each observed field, N values (every
observed field at every point), and optionally each field's noise level sigma. The PINN task
adds one loss term per observed field, ``"data:<field>"`` = mean over the points of
(u_field(x_i) - y_i)^2 (a mean square like every other term, weight 1 by default,
``--weight data:u=W`` or ``--weight data=W`` for all).

Noise levels weight the fields against each other as a Gaussian likelihood does, by inverse
variance: field f's default weight is (sigma_min / sigma_f)^2, sigma_min the smallest given
level, so the most precise field keeps weight 1. The absolute 1/sigma^2 is not used: at 1 %
noise it would weigh the data 10^4 times the PDE residual, and the residual, which carries
the unknown parameters, would barely count. A field without a level (when others have one)
gets weight 1.

Files (``pinnsketch solve P --data FILE``, :func:`load_observations`):

- CSV: a header row naming the columns, one row per point; the columns are the domain's
  coordinates (all of them) and the observed fields (at least one), in any order;
- NPZ (``numpy.savez``) or HDF5 (``.h5``/``.hdf5``, datasets at the top level): one 1-D
  array per coordinate and per observed field, named by it, all of one length.

Everything is checked before any work (:meth:`Observations.check`): missing coordinates, a
column that is neither a coordinate nor a field, NaN or infinite values, points outside the
domain, no observed field; each error names the file, what is wrong and the fix.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pinnsketch._types import Points
from pinnsketch.checks import is_real

__all__ = ["Observations", "load_observations", "DATA_SUFFIXES"]

F64 = torch.float64
DATA_SUFFIXES = (".csv", ".npz", ".h5", ".hdf5")


@dataclass(frozen=True, eq=False)
class Observations:
    """Observed values of some fields at points.

    Args:
        points: (N, d) coordinates, columns in the domain's coordinate order.
        values: field name -> (N,) observed values.
        noise: field name -> sigma > 0, the noise level (module doc: relative weights).
        source: where they come from (a file name, "problem.observations(seed=0)"), named in
            error messages.

    Raises:
        ValueError: shapes that do not match, no fields, a bad noise level.
    """

    points: Points
    values: Mapping[str, Tensor]
    noise: Mapping[str, float] = field(default_factory=dict)
    source: str = "observations"

    def __post_init__(self) -> None:
        pts = torch.as_tensor(np.asarray(self.points, dtype=np.float64))
        if pts.ndim != 2 or pts.shape[0] == 0:
            raise ValueError(f"{self.source}: points must be an (N, d) array with N >= 1, got "
                             f"shape {tuple(pts.shape)}")
        if not self.values:
            raise ValueError(f"{self.source}: no observed field; give the values of at least "
                             "one field")
        vals = {}
        for name, v in self.values.items():
            t = torch.as_tensor(np.asarray(v, dtype=np.float64)).reshape(-1)
            if t.shape[0] != pts.shape[0]:
                raise ValueError(f"{self.source}: field {name!r} has {t.shape[0]} values for "
                                 f"{pts.shape[0]} points; give one value per point")
            vals[str(name)] = t
        noise = {}
        for name, s in dict(self.noise).items():
            if name not in vals:
                raise ValueError(f"{self.source}: a noise level for {name!r}, which is not "
                                 f"observed; observed fields: {', '.join(vals)}")
            if not is_real(s) or not (
                    math.isfinite(s) and s > 0):
                raise ValueError(f"{self.source}: the noise level of {name!r} must be a finite "
                                 f"number > 0, got {s!r}")
            noise[name] = float(s)
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "values", vals)
        object.__setattr__(self, "noise", noise)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.values)

    def __len__(self) -> int:
        return self.points.shape[0]

    def weights(self) -> dict[str, float]:
        """Each observed field's default weight, (sigma_min / sigma_f)^2 (module doc).

        >>> Observations(torch.zeros(2, 1), {"u": [0, 1], "v": [1, 2]},
        ...              noise={"u": 0.01, "v": 0.02}).weights()
        {'u': 1.0, 'v': 0.25}
        """
        if not self.noise:
            return {f: 1.0 for f in self.values}
        low = min(self.noise.values())
        return {f: (low / self.noise[f]) ** 2 if f in self.noise else 1.0 for f in self.values}

    def table(self) -> Tensor:
        """(N, F) the observed values, one column per field in ``fields`` order."""
        return torch.stack([self.values[f] for f in self.fields], dim=1)

    def check(self, domain, fields: Sequence[str]) -> None:
        """Refuse observations this problem cannot use, before any work.

        Raises:
            ValueError: a point dimension other than the domain's, an observed name that is
                not a field, NaN or infinite values, points outside the domain.
        """
        src = self.source
        if self.points.shape[1] != domain.dim:
            raise ValueError(f"{src}: the points have {self.points.shape[1]} coordinates, the "
                             f"domain has {domain.dim} {domain.names}")
        unknown = [f for f in self.values if f not in fields]
        if unknown:
            raise ValueError(f"{src}: {', '.join(map(repr, unknown))} is not a field of the "
                             f"problem; its fields: {', '.join(fields)} (rename the column, or "
                             "drop it)")
        for what, t in [("coordinates", self.points)] + [(f"field {f!r}", v)
                                                          for f, v in self.values.items()]:
            bad = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(1)
            if bool(bad.any()):
                row = int(bad.nonzero()[0])
                raise ValueError(f"{src}: {int(bad.sum())} of the {len(self)} rows have NaN or "
                                 f"infinite {what} (first: row {row}); remove or fix those rows")
        outside = ~domain.inside(self.points)
        if bool(outside.any()):
            row = int(outside.nonzero()[0])
            lo = ", ".join(f"{n} in [{a:g}, {b:g}]" for n, a, b in zip(domain.names, domain.lo,
                                                                        domain.hi))
            raise ValueError(f"{src}: {int(outside.sum())} of the {len(self)} points lie outside "
                             f"the domain (first: row {row}, {self.points[row].tolist()}); the "
                             f"domain's bounding box is {lo}: remove those rows or check the "
                             "column order")


def _read_columns(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
        rows = [r for r in rows if any(c.strip() for c in r)]
        if not rows:
            raise ValueError(f"{str(path)!r} is empty; a data CSV has a header row naming its "
                             "columns (coordinates and fields) and one row per point")
        header = [h.strip() for h in rows[0]]
        if len(set(header)) != len(header):
            raise ValueError(f"{str(path)!r}: the header repeats a column name: {header}")
        if len(rows) < 2:
            raise ValueError(f"{str(path)!r} has a header but no data rows")
        cols: dict[str, list[float]] = {h: [] for h in header}
        for i, row in enumerate(rows[1:], start=2):
            if len(row) != len(header):
                raise ValueError(f"{str(path)!r}, line {i}: {len(row)} values for the "
                                 f"{len(header)} columns {header}")
            for h, cell in zip(header, row):
                try:
                    cols[h].append(float(cell))
                except ValueError:
                    raise ValueError(f"{str(path)!r}, line {i}, column {h!r}: {cell!r} is not a "
                                     "number (the first row must be the header)") from None
        return {h: np.asarray(v, dtype=np.float64) for h, v in cols.items()}
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            return {k: np.asarray(f[k]) for k in f.keys() if isinstance(f[k], h5py.Dataset)}
    raise ValueError(f"{str(path)!r}: unknown data format {suffix!r}; use one of "
                     f"{', '.join(DATA_SUFFIXES)}")


def load_observations(path: str | Path, domain, fields: Sequence[str],
                      noise: Mapping[str, float] | None = None) -> Observations:
    """Observations from a CSV, NPZ or HDF5 file (module doc), checked against the domain
    and the fields.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unreadable file, missing coordinate columns, a column that is neither
            a coordinate nor a field, arrays of different lengths, NaNs, points outside the
            domain; the message names the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    try:
        cols = _read_columns(path)
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, ValueError) and str(path) in str(exc):
            raise
        raise ValueError(f"data file {str(path)!r} could not be read ({type(exc).__name__}: "
                         f"{exc})") from None
    src = f"data file {str(path)!r}"
    missing = [n for n in domain.names if n not in cols]
    if missing:
        raise ValueError(f"{src} lacks the coordinate column(s) {', '.join(missing)}; it needs "
                         f"one column per coordinate {domain.names} and one per observed field "
                         f"(fields: {', '.join(fields)}); its columns: {', '.join(cols)}")
    extra = [n for n in cols if n not in domain.names and n not in fields]
    if extra:
        raise ValueError(f"{src}: column(s) {', '.join(extra)} are neither coordinates "
                         f"{domain.names} nor fields ({', '.join(fields)}); rename or drop them")
    observed = [f for f in fields if f in cols]
    if not observed:
        raise ValueError(f"{src} has no field column; add one per observed field (fields: "
                         f"{', '.join(fields)})")
    shapes = {n: np.asarray(cols[n]).shape for n in list(domain.names) + observed}
    bad = {n: s for n, s in shapes.items() if len(s) != 1}
    if bad or len({s[0] for s in shapes.values()}) != 1:
        raise ValueError(f"{src}: every coordinate and field must be a 1-D array of one length, "
                         f"got shapes {shapes}")
    try:
        points = np.stack([np.asarray(cols[n], dtype=np.float64) for n in domain.names], 1)
        values = {f: np.asarray(cols[f], dtype=np.float64) for f in observed}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{src}: the arrays must hold numbers ({exc})") from None
    obs = Observations(points, values, dict(noise or {}), source=src)
    obs.check(domain, fields)
    return obs

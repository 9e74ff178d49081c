"""Named derivatives of the network's output fields, independent of how they are computed.

A residual is written once against a :class:`Derivatives` object::

    def residual(self, d):
        return d.u_t + d.u * d.u_x - self.nu * d.u_xx

Names: a field (``u``, or ``v``, ``p``, ... for a problem declaring ``fields``), the field's
partial derivatives ``<field>_<letters>`` (``u_x``, ``v_yy``, ``u_xt`` = d2u/dx dt; letter
order does not matter), ``laplacian`` (of the single field; ``laplacian_<field>`` names the
field when there are several: the sum of its second derivatives over the spatial
coordinates), and the bare coordinate names (``d.x``, ``d.t``) for the points themselves.
Every value is an (N,) tensor.

A derivative key is ``(field, coordinate indices)``, e.g. ``("u", (0, 1))``; a network with a
single field also accepts the bare coordinate indices (``(0, 1)``).

Two engines provide the values: nested autograd (:func:`autograd_derivatives`, any order,
the reference) and Taylor-mode jets (``pinnsketch.storage``, orders <= 2). Which
derivatives a residual needs is found once by :func:`required_derivatives`, which runs it on
a recorder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

from pinnsketch._types import Field, Points
from pinnsketch.pde.domain import Box

__all__ = ["Derivatives", "DerivativeKey", "CoordKey", "parse_name", "key_name",
           "normalize_key", "check_fields", "autograd_derivatives", "required_derivatives",
           "record_derivatives"]

CoordKey = tuple[int, ...]
"""Sorted coordinate indices of a partial derivative: () the value, (0,) d/dx_0, (0, 1) ..."""
DerivativeKey = tuple[str, CoordKey]
"""(field, sorted coordinate indices): ("u", ()) is u, ("u", (0,)) u_x, ("v", (0, 1)) v_xt."""

_FIELD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def check_fields(fields: Sequence[str], domain: Box | None = None) -> tuple[str, ...]:
    """Refuse an empty, repeated or malformed list of field names; return it as a tuple.

    A field name is a letter followed by letters or digits (no ``_``: ``v_x`` names the
    derivative of v along x), not ``laplacian...`` and, with ``domain``, not a coordinate.

    >>> check_fields(["u", "v", "p"])
    ('u', 'v', 'p')
    """
    if isinstance(fields, str):
        raise ValueError(f"fields must be a tuple of names, e.g. ({fields!r},), not a string")
    fields = tuple(fields)
    if not fields:
        raise ValueError("fields is empty; name at least one output field, e.g. ('u',)")
    if len(set(fields)) != len(fields):
        raise ValueError(f"field names must be distinct, got {fields}")
    for f in fields:
        if not isinstance(f, str) or not _FIELD_RE.match(f) or f.startswith("laplacian"):
            raise ValueError(f"field name {f!r} must be a letter followed by letters or digits "
                             "(no '_': v_x names a derivative) and not 'laplacian', e.g. 'u', "
                             "'v', 'p'")
        if domain is not None and f in domain.names:
            raise ValueError(f"field name {f!r} collides with the coordinate {f!r} of the "
                             f"domain {domain.names}; rename the field")
    return fields


def normalize_key(key: DerivativeKey | CoordKey, fields: Sequence[str]) -> DerivativeKey:
    """``(field, coords)`` with sorted coords; bare ``coords`` only with a single field.

    >>> normalize_key((1, 0), ("u",)), normalize_key(("v", (1, 0)), ("u", "v"))
    (('u', (0, 1)), ('v', (0, 1)))
    """
    if len(key) == 2 and isinstance(key[0], str):
        field, coords = key
        if field not in fields:
            raise ValueError(f"derivative key {key}: unknown field {field!r}; fields: "
                             f"{', '.join(fields)}")
        return field, tuple(sorted(int(i) for i in coords))
    if len(fields) != 1:
        raise ValueError(f"derivative key {key} has no field, and there are several fields "
                         f"{tuple(fields)}: write (field, {tuple(key)})")
    return fields[0], tuple(sorted(int(i) for i in key))


def parse_name(name: str, domain: Box, fields: Sequence[str] = ("u",)) -> DerivativeKey:
    """``"u_tx"`` -> ("u", (0, 1)) on a domain ("x", "t"); ``"v"`` -> ("v", ())."""
    field, sep, coords = name.partition("_")
    if field not in fields or (sep and not coords):
        raise AttributeError(
            f"unknown derivative {name!r}: use a field {tuple(fields)}, '<field>_<coords>' "
            f"(e.g. {fields[0]}_x, {fields[0]}_xx, {fields[0]}_xt), 'laplacian' or a "
            f"coordinate {domain.names}")
    try:
        return field, tuple(sorted(domain.index(c) for c in coords))
    except ValueError:
        raise AttributeError(
            f"derivative {name!r} names a coordinate this domain lacks; coordinates: {domain.names}"
        ) from None


def key_name(key: DerivativeKey | CoordKey, domain: Box) -> str:
    """("u", (0, 1)) -> ``"u_xt"`` on a domain ("x", "t") (a bare coordinate key names u)."""
    field, coords = key if key and isinstance(key[0], str) else ("u", tuple(key))
    return field if not coords else field + "_" + "".join(domain.names[i] for i in coords)


class Derivatives:
    """Lazy, cached access to named derivatives of the fields at a batch of points.

    Args:
        domain: gives the coordinate names.
        points: (N, d) the points.
        compute: (field, coords) key -> (N,) tensor; called at most once per key.
        fields: the output field names (default ``("u",)``).
        cache: the dict the values are kept in (default a new one); ``compute`` may fill it
            with keys it computes on the way.
    """

    __slots__ = ("_domain", "_points", "_compute", "_cache", "_fields")

    def __init__(self, domain: Box, points: Points, compute: Callable[[DerivativeKey], Field],
                 fields: Sequence[str] = ("u",),
                 cache: dict[DerivativeKey, Field] | None = None):
        self._domain = domain
        self._points = points
        self._compute = compute
        self._cache: dict[DerivativeKey, Field] = {} if cache is None else cache
        self._fields = tuple(fields)

    @property
    def domain(self) -> Box:
        return self._domain

    @property
    def points(self) -> Points:
        return self._points

    @property
    def fields(self) -> tuple[str, ...]:
        return self._fields

    def key(self, key: DerivativeKey | CoordKey) -> Field:
        """The derivative ``(field, coords)`` (or bare ``coords`` with a single field)."""
        key = normalize_key(key, self._fields)
        if key not in self._cache:
            self._cache[key] = self._compute(key)
        return self._cache[key]

    def laplacian_of(self, field: str) -> Field:
        """Sum of the field's second derivatives over the spatial coordinates."""
        terms = [self.key((field, (i, i))) for i, n in enumerate(self._domain.names)
                 if n != self._domain.time]
        return torch.stack(terms).sum(0)

    def __getitem__(self, name: str) -> Field:
        if name == "laplacian":
            if len(self._fields) != 1:
                raise AttributeError(f"'laplacian' is ambiguous with several fields "
                                     f"{self._fields}: use laplacian_{self._fields[0]}")
            return self.laplacian_of(self._fields[0])
        if name.startswith("laplacian_") and name[10:] in self._fields:
            return self.laplacian_of(name[10:])
        if name in self._domain.names:
            return self._points[:, self._domain.index(name)]
        return self.key(parse_name(name, self._domain, self._fields))

    def __getattr__(self, name: str) -> Field:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]


def autograd_derivatives(domain: Box, points: Points, u_fn: Callable[[Points], Tensor],
                         create_graph: bool = True, fields: Sequence[str] = ("u",)
                         ) -> Derivatives:
    """Derivatives of ``u_fn`` at ``points`` by nested reverse-mode autograd (any order).

    ``u_fn`` returns (N,) values (one field) or (N, F) (one column per field). ``points``
    must require grad (a leaf or not). Each first-order call differentiates all coordinates
    at once and caches them: d(u_K)/dx = grad(sum(u_K), x).
    """
    if not points.requires_grad:
        raise ValueError("autograd_derivatives needs points.requires_grad=True")
    fields = tuple(fields)
    u = u_fn(points)
    u = u.reshape(u.shape[0], -1) if u.dim() != 1 else u.unsqueeze(1)
    if u.shape[1] != len(fields):
        raise ValueError(f"the network returns {u.shape[1]} outputs per point but there are "
                         f"{len(fields)} fields {fields}")
    # compute() shares the Derivatives' cache but never refers to the Derivatives: a cycle
    # through it would keep each batch's graph alive until the garbage collector ran
    # (scoring a 50,000-point pool on a 4 x 256 modified MLP in 8,192-point chunks: peak
    # 12.1 GB with the cycle, 8.4 GB without).
    cache: dict[DerivativeKey, Field] = {}

    def compute(key: DerivativeKey) -> Field:  # not recursive: a self-reference is a cycle
        field, coords = key
        value = u[:, fields.index(field)]
        for n in range(1, len(coords) + 1):
            known = cache.get((field, coords[:n]))
            if known is None:
                (g,) = torch.autograd.grad(value.sum(), points, create_graph=create_graph)
                for c in range(domain.dim):
                    cache.setdefault((field, tuple(sorted(coords[:n - 1] + (c,)))), g[:, c])
                known = g[:, coords[n - 1]]
            value = known
        return value

    return Derivatives(domain, points, compute, fields, cache)


class _Recorder(Derivatives):
    __slots__ = ("seen",)

    def __init__(self, domain: Box, fields: Sequence[str], probe: Tensor | None = None):
        probe = torch.full((1, domain.dim), 0.5, dtype=torch.float64) if probe is None else probe
        n = probe.shape[0]
        super().__init__(domain, probe, lambda key: torch.full((n,), 0.5, dtype=torch.float64),
                         fields)
        self.seen: set[DerivativeKey] = set()

    def key(self, key: DerivativeKey | CoordKey) -> Field:
        key = normalize_key(key, self._fields)
        self.seen.add(key)
        return super().key(key)


def record_derivatives(fns: Iterable[Callable[[Derivatives], Tensor]], domain: Box,
                       fields: Sequence[str] = ("u",), probe: Tensor | None = None
                       ) -> set[DerivativeKey]:
    """The derivative keys that the functions read, exactly (found by running them once at
    ``probe`` (n, d), default one point at 0.5 in every coordinate).

    Raises:
        AttributeError: a function reads a name that is not a declared field, a derivative
            of one, ``laplacian`` or a coordinate (the message lists the valid names).
    """
    rec = _Recorder(domain, fields, probe)
    for fn in fns:
        fn(rec)
    return rec.seen


def required_derivatives(fns: Iterable[Callable[[Derivatives], Tensor]], domain: Box,
                         fields: Sequence[str] = ("u",), probe: Tensor | None = None
                         ) -> tuple[DerivativeKey, ...]:
    """The derivative keys that the residual functions read (run at ``probe``, as for
    :func:`record_derivatives`), plus every field's value.

    Sorted by field (in ``fields`` order), then order, then coordinates.

    >>> from pinnsketch.pde.domain import interval, space_time
    >>> required_derivatives([lambda d: d.u_t - d.u_xx], space_time(interval(x=(0, 1)), (0, 1)))
    (('u', ()), ('u', (1,)), ('u', (0, 0)))
    """
    fields = tuple(fields)
    seen = record_derivatives(fns, domain, fields, probe) | {(f, ()) for f in fields}
    return tuple(sorted(seen, key=lambda k: (fields.index(k[0]), len(k[1]), k[1])))

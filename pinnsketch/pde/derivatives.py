"""Named derivatives of the network output, independent of how they are computed.

A residual is written once against a :class:`Derivatives` object::

    def residual(self, d):
        return d.u_t + d.u * d.u_x - self.nu * d.u_xx

Names: ``u`` (the value), ``u_<letters>`` for partial derivatives (``u_x``, ``u_xx``,
``u_xt`` = d2u/dx dt; letter order does not matter), ``laplacian`` (sum of u_cc over the
spatial coordinates), and the bare coordinate names (``d.x``, ``d.t``) for the points
themselves. Every value is an (N,) tensor.

Two engines provide the values: nested autograd (:func:`autograd_derivatives`, any order,
the reference) and Taylor-mode jets (``pinnsketch.storage``, orders <= 2). Which
derivatives a residual needs is found once by :func:`required_derivatives`, which runs it on
a recorder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from pinnsketch._types import Field, Points
from pinnsketch.pde.domain import Box

__all__ = ["Derivatives", "DerivativeKey", "parse_name", "key_name", "autograd_derivatives",
           "required_derivatives"]

DerivativeKey = tuple[int, ...]
"""Sorted coordinate indices of a partial derivative: () is u, (0,) u_x, (0, 1) u_xt."""


def parse_name(name: str, domain: Box) -> DerivativeKey:
    """``"u_tx"`` -> (0, 1) on a domain ("x", "t"); ``"u"`` -> ()."""
    if name == "u":
        return ()
    if not name.startswith("u_") or len(name) < 3:
        raise AttributeError(
            f"unknown derivative {name!r}: use 'u', 'u_<coords>' (e.g. u_x, u_xx, u_xt), "
            f"'laplacian' or a coordinate {domain.names}"
        )
    try:
        return tuple(sorted(domain.index(c) for c in name[2:]))
    except ValueError:
        raise AttributeError(
            f"derivative {name!r} names a coordinate this domain lacks; coordinates: {domain.names}"
        ) from None


def key_name(key: DerivativeKey, domain: Box) -> str:
    """(0, 1) -> ``"u_xt"`` on a domain ("x", "t")."""
    return "u" if not key else "u_" + "".join(domain.names[i] for i in key)


class Derivatives:
    """Lazy, cached access to named derivatives of u at a batch of points.

    Args:
        domain: gives the coordinate names.
        points: (N, d) the points.
        compute: key -> (N,) tensor; called at most once per key.
    """

    __slots__ = ("_domain", "_points", "_compute", "_cache")

    def __init__(self, domain: Box, points: Points, compute: Callable[[DerivativeKey], Field]):
        self._domain = domain
        self._points = points
        self._compute = compute
        self._cache: dict[DerivativeKey, Field] = {}

    @property
    def domain(self) -> Box:
        return self._domain

    @property
    def points(self) -> Points:
        return self._points

    def key(self, key: DerivativeKey) -> Field:
        """The derivative with sorted coordinate indices ``key``."""
        key = tuple(sorted(key))
        if key not in self._cache:
            self._cache[key] = self._compute(key)
        return self._cache[key]

    def __getitem__(self, name: str) -> Field:
        if name == "laplacian":
            terms = [self.key((i, i)) for i, n in enumerate(self._domain.names)
                     if n != self._domain.time]
            return torch.stack(terms).sum(0)
        if name in self._domain.names:
            return self._points[:, self._domain.index(name)]
        return self.key(parse_name(name, self._domain))

    def __getattr__(self, name: str) -> Field:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]


def autograd_derivatives(domain: Box, points: Points, u_fn: Callable[[Points], Tensor],
                         create_graph: bool = True) -> Derivatives:
    """Derivatives of ``u_fn`` at ``points`` by nested reverse-mode autograd (any order).

    ``points`` must require grad (a leaf or not). Each first-order call differentiates all
    coordinates at once and caches them: d(u_K)/dx = grad(sum(u_K), x).
    """
    if not points.requires_grad:
        raise ValueError("autograd_derivatives needs points.requires_grad=True")
    u = u_fn(points).reshape(-1)
    cache_ref: list[Derivatives] = []

    def compute(key: DerivativeKey) -> Field:
        if not key:
            return u
        d = cache_ref[0]
        parent = d.key(key[:-1])
        (g,) = torch.autograd.grad(parent.sum(), points, create_graph=create_graph)
        for c in range(domain.dim):
            child = tuple(sorted(key[:-1] + (c,)))
            d._cache.setdefault(child, g[:, c])
        return g[:, key[-1]]

    d = Derivatives(domain, points, compute)
    cache_ref.append(d)
    return d


class _Recorder(Derivatives):
    __slots__ = ("seen",)

    def __init__(self, domain: Box):
        probe = torch.full((1, domain.dim), 0.5, dtype=torch.float64)
        super().__init__(domain, probe, lambda key: torch.full((1,), 0.5, dtype=torch.float64))
        self.seen: set[DerivativeKey] = set()

    def key(self, key: DerivativeKey) -> Field:
        key = tuple(sorted(key))
        self.seen.add(key)
        return super().key(key)


def required_derivatives(fns: Iterable[Callable[[Derivatives], Tensor]], domain: Box
                         ) -> tuple[DerivativeKey, ...]:
    """The derivative keys that the residual functions read, found by running them once.

    Always includes () (u). Sorted by order, then lexicographically.
    """
    rec = _Recorder(domain)
    for fn in fns:
        fn(rec)
    return tuple(sorted(rec.seen | {()}, key=lambda k: (len(k), k)))

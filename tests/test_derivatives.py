"""Named derivatives by nested autograd against closed forms, in float64.

Tolerance 1e-12 absolute: the functions and their derivatives are O(1) on these domains, and
autograd evaluates the same closed forms (cos, sin, products) in float64, so the difference
is a few ulps.
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from pinnsketch import Derivatives, rectangle, space_time
from pinnsketch.pde.derivatives import (
    autograd_derivatives,
    key_name,
    parse_name,
    required_derivatives,
)
from pinnsketch.pde.registry import make_problem, resolve_problem

F64 = torch.float64
TOL = 1e-12
XT = space_time(rectangle(x=(-1.0, 2.0)), t=(0.0, 1.0))
XYT = space_time(rectangle(x=(-1.0, 2.0), y=(0.0, 1.0)), t=(0.0, 1.0))


def _points(domain, n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(domain.lo, dtype=F64), torch.tensor(domain.hi, dtype=F64)
    return (lo + torch.rand(n, domain.dim, generator=g, dtype=F64) * (hi - lo)).requires_grad_(True)


def _close(a, b):
    assert a.shape == b.shape
    assert float((a.detach() - b.detach()).abs().max()) <= TOL


def test_first_and_second_order():
    p = _points(XT)
    d = autograd_derivatives(XT, p, lambda q: torch.sin(q[:, 0]) * q[:, 1] ** 2)
    x, t = p[:, 0].detach(), p[:, 1].detach()
    _close(d.u, torch.sin(x) * t**2)
    _close(d.u_x, torch.cos(x) * t**2)
    _close(d.u_t, 2 * torch.sin(x) * t)
    _close(d.u_xx, -torch.sin(x) * t**2)
    _close(d.u_tt, 2 * torch.sin(x))
    _close(d.u_xt, 2 * torch.cos(x) * t)
    _close(d["u_tx"], 2 * torch.cos(x) * t)  # letter order does not matter
    _close(d.u_xxt, -2 * torch.sin(x) * t)  # third order
    _close(d.key((1, 0)), d.u_xt)


def test_laplacian_is_spatial_only():
    p = _points(XYT)
    d = autograd_derivatives(
        XYT, p, lambda q: torch.sin(q[:, 0]) * torch.cos(2 * q[:, 1]) * q[:, 2] ** 2)
    x, y, t = (p[:, i].detach() for i in range(3))
    u = torch.sin(x) * torch.cos(2 * y) * t**2
    _close(d.laplacian, -5 * u)  # u_xx + u_yy; u_tt = 2 sin x cos 2y is excluded
    _close(d.laplacian, d.u_xx + d.u_yy)


def test_laplacian_without_time_axis_uses_all_coordinates():
    dom = rectangle(x=(0.0, 1.0), y=(0.0, 1.0))
    p = _points(dom)
    d = autograd_derivatives(dom, p, lambda q: q[:, 0] ** 2 * q[:, 1] ** 3)
    x, y = p[:, 0].detach(), p[:, 1].detach()
    _close(d.laplacian, 2 * y**3 + 6 * x**2 * y)


def test_coordinate_access():
    p = _points(XT)
    d = autograd_derivatives(XT, p, lambda q: q.sum(1))
    assert torch.equal(d.x, p[:, 0]) and torch.equal(d.t, p[:, 1])
    assert d.points is p and d.domain is XT


def test_unknown_names():
    p = _points(XT)
    d = autograd_derivatives(XT, p, lambda q: q.sum(1))
    with pytest.raises(AttributeError, match=r"'u_y'.*coordinates: \('x', 't'\)"):
        _ = d.u_y
    with pytest.raises(AttributeError, match=r"unknown derivative 'v'.*\('x', 't'\)"):
        _ = d.v
    with pytest.raises(AttributeError):
        _ = d.u_
    assert not hasattr(d, "_private")


def test_points_must_require_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        autograd_derivatives(XT, _points(XT).detach(), lambda q: q.sum(1))


def test_derivatives_are_freed_without_the_garbage_collector():
    """A batch's derivatives and their graph go when the last reference does: no reference
    cycle keeps them until a collection (regression: a RAD pool on 4 x 256 grew to 24 GB)."""
    p = _points(XT)
    gc.disable()
    try:
        d = autograd_derivatives(XT, p, lambda q: torch.sin(q[:, 0]) * q[:, 1] ** 2)
        second = weakref.ref(d.u_xx)
        first = weakref.ref(d.u_x)
        del d
        assert second() is None and first() is None
    finally:
        gc.enable()


def test_cached_once_per_key():
    calls = []

    def compute(key):
        calls.append(key)
        return torch.zeros(3, dtype=F64)

    d = Derivatives(XT, torch.zeros(3, 2, dtype=F64), compute)
    d.u_xt, d.u_tx, d.key((1, 0)), d.u_xt
    assert calls == [("u", (0, 1))]


def test_names_round_trip():
    assert parse_name("u", XT) == ("u", ())
    assert parse_name("u_tx", XT) == ("u", (0, 1))
    assert parse_name("p_x", XT, ("u", "p")) == ("p", (0,))
    assert key_name(("u", (0, 1)), XT) == "u_xt"
    assert key_name(("v", ()), XT) == "v"
    assert key_name((0, 1), XT) == "u_xt"  # a bare coordinate key names the single field


def test_required_derivatives_burgers():
    problem = make_problem(resolve_problem("burgers"))
    keys = required_derivatives([problem.residual], problem.domain)
    assert {key_name(k, problem.domain) for k in keys} == {"u", "u_t", "u_x", "u_xx"}
    assert keys == (("u", ()), ("u", (0,)), ("u", (1,)), ("u", (0, 0)))  # by order, then index


def test_required_derivatives_laplacian_and_coordinates():
    problem = make_problem(resolve_problem("poisson"))
    keys = required_derivatives([problem.residual], problem.domain)
    assert keys == (("u", ()), ("u", (0, 0)), ("u", (1, 1)))  # reading d.x, d.y adds nothing

"""Kovasznay flow satisfies steady incompressible Navier-Stokes to round-off (autograd, float64).

The residuals are sums of terms of size up to ~|lambda|^2 e^{2 lambda x} ~ 30 on the benchmark
domain that cancel analytically; evaluated in float64 through exp/sin/cos and autograd they
cancel to a few ulps of the largest term, so we allow 1e-13 of the term scale (~500 ulps).
"""

from __future__ import annotations

import math

import pytest
import torch

from pinnsketch.pde.kovasznay import KOVASZNAY_BOUNDS, kovasznay_flow, kovasznay_lambda

F64 = torch.float64


def _grad(f, pts):
    (g,) = torch.autograd.grad(f.sum(), pts, create_graph=True)
    return g[:, 0], g[:, 1]


@pytest.mark.parametrize("re", [20.0, 1.0, 100.0])
def test_navier_stokes_residuals_vanish(re):
    gen = torch.Generator().manual_seed(0)
    (x0, x1), (y0, y1) = KOVASZNAY_BOUNDS["x"], KOVASZNAY_BOUNDS["y"]
    pts = torch.stack([x0 + (x1 - x0) * torch.rand(500, generator=gen, dtype=F64),
                       y0 + (y1 - y0) * torch.rand(500, generator=gen, dtype=F64)], 1)
    pts.requires_grad_(True)
    u, v, p = kovasznay_flow(pts, re)
    u_x, u_y = _grad(u, pts)
    v_x, v_y = _grad(v, pts)
    p_x, p_y = _grad(p, pts)
    u_xx, _ = _grad(u_x, pts)
    _, u_yy = _grad(u_y, pts)
    v_xx, _ = _grad(v_x, pts)
    _, v_yy = _grad(v_y, pts)
    momentum_x = [u * u_x, v * u_y, p_x, -(u_xx + u_yy) / re]
    momentum_y = [u * v_x, v * v_y, p_y, -(v_xx + v_yy) / re]
    continuity = [u_x, v_y]
    for terms in (momentum_x, momentum_y, continuity):
        scale = max(float(t.detach().abs().max()) for t in terms)
        assert scale > 0.01  # not vacuous
        residual = float(sum(terms).detach().abs().max())
        assert residual <= 1e-13 * scale, (re, residual, scale)


def test_lambda_and_refusals():
    assert kovasznay_lambda(20.0) == pytest.approx(10 - math.sqrt(100 + 4 * math.pi**2), rel=1e-15)
    with pytest.raises(ValueError, match="Reynolds"):
        kovasznay_lambda(0.0)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        kovasznay_flow(torch.zeros(3, 3, dtype=F64))

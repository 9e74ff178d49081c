"""Helpers shared by the storage-policy tests (test_storage.py, test_storage_baselines.py)."""

from __future__ import annotations

import torch

from pinnsketch.memory import HeldBytes
from pinnsketch.storage import make_engine

F64 = torch.float64


def random_points(domain, n, seed=1, dtype=F64):
    """n uniform points in the domain's box, from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(domain.lo, dtype=F64), torch.tensor(domain.hi, dtype=F64)
    return (lo + torch.rand(n, domain.dim, generator=g, dtype=F64) * (hi - lo)).to(dtype)


def layer_inputs(plan, n, w_in, w_out, seed=0):
    """Random float64 (Z (J, n, w_in), W (w_out, w_in), b (w_out,)) requiring grad."""
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(plan.num_components, n, w_in, generator=g, dtype=F64, requires_grad=True)
    W = torch.randn(w_out, w_in, generator=g, dtype=F64, requires_grad=True)
    b = torch.randn(w_out, generator=g, dtype=F64, requires_grad=True)
    return Z, W, b


def loss_gradient(net, problem, keys, pts, config, engine=None):
    """Flat parameter gradient of mean(residual^2) computed through a storage engine."""
    engine = engine or make_engine(net, problem.domain, keys, config)
    loss = problem.residual(engine(pts)).square().mean()
    grads = torch.autograd.grad(loss, list(net.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


def held_bytes(net, problem, keys, pts, config):
    """Bytes held for backward by one forward of the engine with every derivative read."""
    eng = make_engine(net, problem.domain, keys, config)
    with HeldBytes(exclude=net.parameters()) as held:
        d = eng(pts)
        for k in eng.keys:
            d.key(k)
    return held.bytes


def relative_error(a, b):
    return float((a - b).norm() / b.norm())

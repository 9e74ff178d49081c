"""Storage policies: fused Functions, sketched gradients, held bytes, configuration.

Tolerances: gradcheck uses its float64 defaults; "exact up to round-off" comparisons use
1e-9 relative: float64 round-off (2.2e-16) amplified by the condition numbers of the
reconstruction (at full rank the three-sketch solves with square Gaussian test-matrix
products, condition number ~ width, here <= 1e3 each), so the bound is ~1e-10 with margin.
"""

from __future__ import annotations

import pytest
import torch
from storage_helpers import held_bytes as _held
from storage_helpers import layer_inputs
from storage_helpers import loss_gradient as _loss_grad
from storage_helpers import random_points as _points
from storage_helpers import relative_error as _rel

from pinnsketch.activations import get_activation
from pinnsketch.memory import (
    HeldBytes,
    expected_exact_bytes,
    expected_sketch_bytes,
    held_bytes,
    peak_rss_bytes,
)
from pinnsketch.model import MLP
from pinnsketch.pde.derivatives import required_derivatives
from pinnsketch.pde.registry import make_problem, resolve_problem
from pinnsketch.sketch import SKETCH_METHODS
from pinnsketch.storage import (
    ActLinear,
    InputLinear,
    JetPlan,
    SketchedActLinear,
    SketchOptions,
    StorageConfig,
    make_engine,
)

F64 = torch.float64
ROUNDOFF = 1e-9


@pytest.fixture(scope="module")
def burgers():
    problem = make_problem(resolve_problem("burgers"))
    return problem, required_derivatives([problem.residual], problem.domain)


def _net(domain, width=16, depth=3, dtype=F64, seed=0, activation="tanh"):
    g = torch.Generator().manual_seed(seed)
    net = MLP(domain.lo, domain.hi, width=width, depth=depth, activation=activation,
              generator=g, dtype=dtype)
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.copy_(0.3 * torch.randn(layer.bias.shape, generator=g, dtype=F64))
    return net








# --- the fused Functions -----------------------------------------------------------------

PLAN = JetPlan.from_keys([(0,), (1,), (0, 1), (1, 1)], dim=2)  # J = 5, a mixed second


def _small_inputs(w_in=3, w_out=2, n=4, seed=0):
    return layer_inputs(PLAN, n, w_in, w_out, seed)


@pytest.mark.parametrize("activation", ["tanh", "sin", "silu"])
def test_gradcheck_act_linear(activation):
    act = get_activation(activation)
    Z, W, b = _small_inputs()
    assert torch.autograd.gradcheck(lambda z, w, c: ActLinear.apply(z, w, c, act, PLAN),
                                    (Z, W, b))


def test_gradcheck_input_linear():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 2, generator=g, dtype=F64, requires_grad=True)
    W = torch.randn(3, 2, generator=g, dtype=F64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=F64, requires_grad=True)
    fn = lambda x_, w, c: InputLinear.apply(x_, w, c, (2.0, 0.5), (-1.0, 0.25), PLAN)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, W, b))


@pytest.mark.parametrize("method, exact_value, shape", [  # shape (N, w): N > w and N < w
    ("three_sketch", False, (4, 3)), ("range_finder", False, (4, 3)),
    ("three_sketch", True, (3, 5)), ("range_finder", True, (3, 5)),
    ("truncated_svd", False, (4, 3)), ("truncated_svd", True, (3, 5)),
    ("randomized_svd", False, (4, 3)), ("randomized_svd", True, (3, 5)),
])
def test_gradcheck_sketched_at_full_rank(method, exact_value, shape):
    n, w_in = shape
    act = get_activation("tanh")
    Z, W, b = _small_inputs(w_in=w_in, n=n, seed=1)
    opts = SketchOptions(method, min(n, w_in), tuple(range(11, 11 + PLAN.num_components)),
                         exact_value=exact_value)
    fn = lambda z, w, c: SketchedActLinear.apply(z, w, c, act, PLAN, opts)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (Z, W, b))


@pytest.mark.parametrize("config", [StorageConfig("exact"),
                                    StorageConfig("sketch", rank=10_000, method="truncated_svd")],
                         ids=["exact", "sketch_full_rank"])
def test_blockwise_forward_and_backward_equal_nested_autograd(burgers, monkeypatch, config):
    # The fused Functions walk the points in blocks (of at least 512); with the block target
    # forced to its floor, 1,300 points take three blocks (512, 512, 276). Blocks only
    # reorder sums over points, so the gradient stays equal to nested autograd's to float64
    # round-off.
    import pinnsketch.storage.functions as functions

    monkeypatch.setattr(functions, "_BLOCK_ELEMENTS", 1)
    assert [(r.start, r.stop) for r in functions._row_blocks(1300, 64)] == [
        (0, 512), (512, 1024), (1024, 1300)]
    problem, keys = burgers
    net = _net(problem.domain)
    pts = _points(problem.domain, 1300)
    ref = _loss_grad(net, problem, keys, pts, StorageConfig("autograd"))
    assert _rel(_loss_grad(net, problem, keys, pts, config), ref) <= ROUNDOFF


def test_functions_honour_needs_input_grad():
    act = get_activation("tanh")
    Z, W, b = _small_inputs()
    out = ActLinear.apply(Z.detach(), W, b.detach(), act, PLAN)
    (gw,) = torch.autograd.grad(out.sum(), [W])
    assert gw.shape == W.shape
    opts = SketchOptions("range_finder", 2, tuple(range(PLAN.num_components)))
    out, *kept = SketchedActLinear.apply(Z, W.detach(), b.detach(), act, PLAN, opts)
    assert all(not k.requires_grad for k in kept)
    (gz,) = torch.autograd.grad(out.sum(), [Z])
    assert gz.shape == Z.shape


# --- whole-loss gradients ----------------------------------------------------------------


@pytest.mark.parametrize("method", SKETCH_METHODS)
@pytest.mark.parametrize("exact_value", [False, True])
def test_full_rank_sketch_gradient_equals_exact(burgers, method, exact_value):
    problem, keys = burgers
    net = _net(problem.domain)
    pts = _points(problem.domain, 40)
    ref = _loss_grad(net, problem, keys, pts, StorageConfig("autograd"))
    assert _rel(_loss_grad(net, problem, keys, pts, StorageConfig("exact")), ref) <= ROUNDOFF
    assert _rel(_loss_grad(net, problem, keys, pts, StorageConfig("checkpoint")), ref) <= ROUNDOFF
    cfg = StorageConfig("sketch", rank=10_000, method=method, exact_value=exact_value)  # clamped
    assert _rel(_loss_grad(net, problem, keys, pts, cfg), ref) <= ROUNDOFF


@pytest.mark.parametrize("method", ["three_sketch", "range_finder", "truncated_svd"])
def test_sketch_gradient_error_falls_with_rank(burgers, method):
    problem, keys = burgers
    net = _net(problem.domain, width=64, depth=3, seed=4)
    pts = _points(problem.domain, 200, seed=5)
    exact = _loss_grad(net, problem, keys, pts, StorageConfig("exact"))

    def mean_error(rank):
        errs = [_rel(_loss_grad(net, problem, keys, pts,
                                StorageConfig("sketch", rank=rank, method=method, seed=s)), exact)
                for s in range(3)]
        return sum(errs) / len(errs)

    e4, e32, e64 = mean_error(4), mean_error(32), mean_error(64)
    assert e4 > e32 > e64
    assert e64 <= ROUNDOFF


def test_fresh_seed_per_call_and_deterministic(burgers):
    problem, keys = burgers
    net = _net(problem.domain)
    pts = _points(problem.domain, 40)
    cfg = StorageConfig("sketch", rank=3, method="three_sketch", seed=7)
    eng = make_engine(net, problem.domain, keys, cfg)
    g0 = _loss_grad(net, problem, keys, pts, cfg, engine=eng)
    g1 = _loss_grad(net, problem, keys, pts, cfg, engine=eng)
    assert eng.calls == 2
    assert not torch.equal(g0, g1)  # a new sketch each call
    eng2 = make_engine(net, problem.domain, keys, cfg)
    assert torch.equal(_loss_grad(net, problem, keys, pts, cfg, engine=eng2), g0)
    assert torch.equal(_loss_grad(net, problem, keys, pts, cfg, engine=eng2), g1)


def test_measure_error_and_set_ranks(burgers):
    problem, keys = burgers
    net = _net(problem.domain, width=16, depth=3)
    pts = _points(problem.domain, 40)
    cfg = StorageConfig("sketch", rank=(2, 3, 4), measure_error=True)
    eng = make_engine(net, problem.domain, keys, cfg)
    eng(pts)
    low = eng.last_sketch_errors
    assert len(low) == 3 and all(0 < e < 1 for e in low)
    assert all(len(c) == 4 for c in eng.last_component_errors)
    eng.set_ranks((16, 16, 16))
    eng(pts)
    assert all(e <= ROUNDOFF for e in eng.last_sketch_errors)
    with pytest.raises(ValueError, match="3 stored activations"):
        eng.set_ranks((4, 4))
    with pytest.raises(ValueError, match=">= 1"):
        eng.set_ranks(0)


# --- EMA ---------------------------------------------------------------------------------


def test_ema_beta0_equals_per_step_three_sketch_with_same_test_matrices(burgers):
    problem, keys = burgers
    net = _net(problem.domain)
    ema = make_engine(net, problem.domain, keys,
                      StorageConfig("sketch", rank=3, method="ema", beta=0.0, seed=5))
    for step in range(3):
        pts = _points(problem.domain, 40, seed=20 + step)
        got = _loss_grad(net, problem, keys, pts, None, engine=ema)
        # A fresh three-sketch engine at call 0 draws the test matrices the EMA keeps fixed.
        per_step = make_engine(net, problem.domain, keys,
                               StorageConfig("sketch", rank=3, method="three_sketch", seed=5))
        want = _loss_grad(net, problem, keys, pts, None, engine=per_step)
        assert _rel(got, want) <= ROUNDOFF


def test_ema_mixes_steps_and_needs_fixed_n(burgers):
    problem, keys = burgers
    net = _net(problem.domain)
    cfg = StorageConfig("sketch", rank=3, method="ema", beta=0.9)
    eng = make_engine(net, problem.domain, keys, cfg)
    first = _points(problem.domain, 40, seed=1)
    second = _points(problem.domain, 40, seed=2)
    _loss_grad(net, problem, keys, first, None, engine=eng)
    mixed = _loss_grad(net, problem, keys, second, None, engine=eng)
    beta0 = StorageConfig("sketch", rank=3, method="ema", beta=0.0)
    fresh = make_engine(net, problem.domain, keys, beta0)
    _loss_grad(net, problem, keys, first, None, engine=fresh)
    assert _rel(mixed, _loss_grad(net, problem, keys, second, None, engine=fresh)) > 1e-6
    with pytest.raises(ValueError, match="same number of points.*had 40, got 30"):
        eng(_points(problem.domain, 30))
    eng.reset_ema()
    eng(_points(problem.domain, 30))


# --- held bytes --------------------------------------------------------------------------




def test_held_bytes_match_formulas(burgers):
    problem, keys = burgers
    net = _net(problem.domain, width=8, depth=3, dtype=torch.float32)
    n = 100
    pts = _points(problem.domain, n, dtype=torch.float32)
    plan = JetPlan.from_keys(keys, 2)
    exact = _held(net, problem, keys, pts, StorageConfig("exact"))
    assert exact == expected_exact_bytes(net, plan, n, 4) == 4 * (3 * 4 * n * 8 + n * 2)
    for method in SKETCH_METHODS:
        for exact_value in (False, True):
            cfg = StorageConfig("sketch", rank=(2, 3, 50), method=method,
                                exact_value=exact_value)
            want = expected_sketch_bytes(net, plan, n, 4, (2, 3, 50), method, exact_value)
            assert _held(net, problem, keys, pts, cfg) == want, (method, exact_value)
    assert _held(net, problem, keys, pts, StorageConfig("checkpoint")) <= pts.numel() * 4
    assert _held(net, problem, keys, pts, StorageConfig("autograd")) > exact


def test_held_bytes_helpers():
    w = torch.ones(10, requires_grad=True)
    x = torch.ones(10)
    with HeldBytes(exclude=[w]) as held:
        y = w * x  # saves x only (w needs no gradient through x)
        z = (y * x[:5].repeat(2)).sum()  # saves the repeated copy only
        _ = (x * w).sum()  # x again: counted once
    assert held.bytes == 2 * 40 and held.storages == 2 and held.tensors == 3
    out, nbytes = held_bytes(lambda: (w * x).sum() + (w * x[:3].sum()).sum(), exclude=[w])
    assert nbytes == 40 + 4  # x once (a view of x counts its whole storage), then the sum
    assert z.requires_grad and out.requires_grad
    assert peak_rss_bytes() > 0


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"policy": "fast"}, "unknown storage policy 'fast'; valid policies: autograd, exact"),
    ({"policy": "sketch", "rank": 0}, "rank=0.*>= 1"),
    ({"policy": "sketch", "rank": (4, 0)}, r"rank=\(4, 0\).*>= 1"),
    ({"policy": "sketch"}, "needs a rank"),
    ({"policy": "exact", "rank": 8}, "only by policy='sketch'"),
    ({"policy": "sketch", "rank": 8, "beta": 1.0}, "beta=1.0 must satisfy 0 <= beta < 1"),
    ({"policy": "sketch", "rank": 8, "beta": -0.1}, "beta=-0.1"),
    ({"policy": "sketch", "rank": 8, "method": "svd"}, "unknown sketch method 'svd'"),
    ({"policy": "sketch", "rank": 8, "family": "cauchy"}, "unknown sketch family"),
    ({"policy": "exact", "exact_value": True}, "exact_value=True applies only"),
    ({"policy": "sketch", "rank": 8, "seed": -1}, r"seed must be an int in \[0, 2\*\*63\), got -1"),
])
def test_bad_config_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StorageConfig(**kwargs)


def test_bad_engine_refused(burgers):
    problem, keys = burgers
    net = _net(problem.domain, width=8, depth=2)
    with pytest.raises(ValueError, match="u_xxx is a derivative of order 3.*'autograd'"):
        make_engine(net, problem.domain, keys + ((0, 0, 0),), StorageConfig("exact"))
    make_engine(net, problem.domain, keys + ((0, 0, 0),), StorageConfig("autograd"))
    with pytest.raises(ValueError, match="3 entries but the network has 2 stored activations"):
        make_engine(net, problem.domain, keys, StorageConfig("sketch", rank=(2, 2, 2)))
    d = make_engine(net, problem.domain, [(0,)], StorageConfig("exact"))(
        _points(problem.domain, 5))
    with pytest.raises(ValueError, match="u_tt is not computed by this engine"):
        _ = d.u_tt

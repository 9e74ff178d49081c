"""The compressed baselines of the sketch: ``quant8`` (8-bit stochastic rounding) and
``projection`` (one-sided random projection, A R R^T).

Tolerances:
- round-off: 1e-12 relative in float64 (a few operations at 2.2e-16 each, amplified by at most
  the 255 levels of a code), 1e-9 for whole-loss gradients (as in test_storage.py).
- statistical: a mean of M independent seeded draws is compared with the true value in units
  of its standard error sqrt(Var / M), Var from theory: stochastic rounding has
  Var = step^2 f (1 - f), f = frac((a - lo) / step); a Gaussian projection R = G / sqrt(k)
  has Var[(A R R^T)_ia] = (||a_i||^2 + A_ia^2) / k. A per-entry bound of 5.5 standard errors
  fails with probability < 4e-8 per entry (normal tail; M = 400 makes the mean nearly
  normal), so < 1e-5 over the few hundred entries tested, while a bias of
  half a step (round to nearest) would exceed it by two orders of magnitude.
"""

from __future__ import annotations

import math

import pytest
import torch
from storage_helpers import held_bytes as _held
from storage_helpers import layer_inputs
from storage_helpers import loss_gradient as _loss_grad
from storage_helpers import random_points as _points
from storage_helpers import relative_error as _rel

from pinnsketch.activations import get_activation
from pinnsketch.cli import _build_parser, _storage_config
from pinnsketch.control import compressed_held_bytes
from pinnsketch.memory import (
    expected_exact_bytes,
    expected_projection_bytes,
    expected_quant8_bytes,
)
from pinnsketch.model import MLP
from pinnsketch.pde.derivatives import required_derivatives
from pinnsketch.pde.registry import make_problem, resolve_problem
from pinnsketch.sketch.projection import project, projection_matrix, unproject
from pinnsketch.sketch.quantize import (
    QUANT_BLOCK_ROWS,
    QUANT_LEVELS,
    dequantize,
    quant8_numbytes,
    quantize,
)
from pinnsketch.storage import (
    ActLinear,
    CompressedActLinear,
    CompressOptions,
    JetPlan,
    StorageConfig,
    make_engine,
)

F64 = torch.float64
ROUNDOFF = 1e-9
SIGMAS = 5.5
DRAWS = 400


def _matrix(n=37, w=6, seed=0, dtype=F64):
    """Columns of very different scales and offsets, and one constant column."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, w, generator=g, dtype=F64) * torch.logspace(-3, 2, w, dtype=F64)
    A += torch.linspace(-5, 5, w, dtype=F64)
    A[:, 1] = 0.7
    return A.to(dtype)


@pytest.fixture(scope="module")
def burgers():
    problem = make_problem(resolve_problem("burgers"))
    return problem, required_derivatives([problem.residual], problem.domain)


def _net(domain, width=16, depth=3, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return MLP(domain.lo, domain.hi, width=width, depth=depth, generator=g, dtype=dtype)








# --- quantization ------------------------------------------------------------------------


@pytest.mark.parametrize("block_rows", [1, 8, 10, QUANT_BLOCK_ROWS])  # 37 rows: ragged tails
def test_quantize_round_trip_within_one_step(block_rows):
    A = _matrix()
    q = quantize(A, seed=3, block_rows=block_rows)
    blocks = math.ceil(A.shape[0] / block_rows)
    assert q.codes.dtype == torch.uint8 and q.codes.shape == A.shape
    assert q.lo.shape == q.step.shape == (blocks, A.shape[1])
    rows = torch.arange(A.shape[0]) // block_rows
    lo, step = q.lo[rows], q.step[rows]
    hi = torch.stack([A[rows == b].amax(0) for b in range(blocks)])[rows]
    assert torch.equal(lo, torch.stack([A[rows == b].amin(0) for b in range(blocks)])[rows])
    assert torch.allclose(step, (hi - lo) / QUANT_LEVELS, rtol=1e-15, atol=0)
    err = (dequantize(q) - A).abs()
    scale = A.abs().amax(0)  # round-off of lo + code * step, relative to the column
    assert bool((err <= step + 1e-12 * scale).all())  # |a_hat - a| < (max - min) / 255
    assert torch.equal(dequantize(q)[:, 1], A[:, 1])  # a constant column is exact
    if block_rows == 1:
        assert torch.equal(dequantize(q), A)


def test_quantize_is_unbiased():
    A = _matrix(n=40, w=6, seed=1)
    draws = torch.stack([dequantize(quantize(A, seed=s, block_rows=16)) for s in range(DRAWS)])
    q = quantize(A, seed=0, block_rows=16)
    rows = torch.arange(A.shape[0]) // 16
    lo, step = q.lo[rows], q.step[rows]
    safe = torch.where(step > 0, step, torch.ones_like(step))
    frac = torch.frac((A - lo) / safe)
    var = step**2 * frac * (1 - frac)  # Var of one stochastically rounded entry
    bias = draws.mean(0) - A
    se = (var / DRAWS).sqrt()
    assert bool((bias.abs() <= SIGMAS * se + 1e-12 * A.abs().amax(0)).all())
    # the whole matrix at once: the standardized sum of the biases is ~ N(0, 1)
    assert abs(float(bias.sum() / se.square().sum().sqrt())) <= SIGMAS
    # the empirical variance agrees with the formula (chi-square with 399 dof: +-30 %)
    emp = draws.var(0)
    assert abs(float(emp.sum() / var.sum()) - 1) < 0.3
    # round-to-nearest would be biased by up to half a step: the test can see it
    nearest = lo + torch.round((A - lo) / safe) * step
    assert float(((nearest - A).abs() / (se + 1e-300)).max()) > 10 * SIGMAS


def test_quantize_seeded_and_deterministic():
    A = _matrix(dtype=torch.float32)
    a, b, c = quantize(A, 5), quantize(A, 5), quantize(A, 6)
    assert torch.equal(a.codes, b.codes) and not torch.equal(a.codes, c.codes)
    assert a.lo.dtype == a.step.dtype == torch.float32
    assert a.nbytes() == quant8_numbytes(*A.shape, 4)


# --- projection --------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["gaussian", "sparse_sign", "srft"])
def test_projection_matrix_has_identity_expectation(family):
    w, k = 6, 3
    mean = sum(projection_matrix(w, k, s, family, dtype=F64) @
               projection_matrix(w, k, s, family, dtype=F64).T for s in range(DRAWS)) / DRAWS
    # every family: |entries of R R^T - I| have variance <= 2 (k + zeta) / k ** 2 < 1 here
    assert float((mean - torch.eye(w, dtype=F64)).abs().max()) <= SIGMAS / math.sqrt(DRAWS)


def test_gaussian_projection_is_unbiased():
    A = _matrix(n=10, w=6, seed=2)
    k = 3
    draws = torch.stack([unproject(project(A, k, s), A.shape[1], s) for s in range(DRAWS)])
    var = ((A * A).sum(1, keepdim=True) + A * A) / k  # (||a_i||^2 + A_ia^2) / k
    se = (var / DRAWS).sqrt()
    bias = draws.mean(0) - A
    assert bool((bias.abs() <= SIGMAS * se).all())
    assert abs(float(draws.var(0).sum() / var.sum()) - 1) < 0.3  # the variance formula holds


def test_srft_projection_exact_at_full_width():
    A = _matrix()
    k = A.shape[1]
    back = unproject(project(A, k, seed=4, family="srft"), k, seed=4, family="srft")
    assert _rel(back, A) <= 1e-12
    R = projection_matrix(k, k, 4, "srft", dtype=F64)
    assert torch.allclose(R.T @ R, torch.eye(k, dtype=F64), atol=1e-14)


# --- the Function and the engine -----------------------------------------------------------

PLAN = JetPlan.from_keys([(0,), (1,), (0, 1), (1, 1)], dim=2)


def _jets(n=12, w_in=5, w_out=3, seed=0):
    return layer_inputs(PLAN, n, w_in, w_out, seed)


@pytest.mark.parametrize("opts", [
    CompressOptions("quant8", tuple(range(5)), block_rows=1),
    CompressOptions("projection", tuple(range(5)), rank=5, family="srft"),
])
def test_gradcheck_compressed_where_exact(opts):
    act = get_activation("tanh")
    Z, W, b = _jets()
    fn = lambda z, w, c: CompressedActLinear.apply(z, w, c, act, PLAN, opts)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (Z, W, b))


def test_quant8_gradient_error_falls_with_block_size():
    """Smaller blocks, smaller ranges, less rounding noise; one-row blocks are exact."""
    act = get_activation("tanh")
    Z, W, b = _jets(n=256, w_in=8)
    G = torch.randn(PLAN.num_components, 256, 3, dtype=F64,
                    generator=torch.Generator().manual_seed(9))

    def grads(fn):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad((fn() * G).sum(),
                                                                     [Z, W, b])])

    exact = grads(lambda: ActLinear.apply(Z, W, b, act, PLAN))

    def error(block):
        errs = []
        for s in range(3):
            opts = CompressOptions("quant8", tuple(range(s * 5, s * 5 + 5)), block_rows=block)
            errs.append(_rel(grads(lambda o=opts: CompressedActLinear.apply(
                Z, W, b, act, PLAN, o)[0]), exact))
        return sum(errs) / len(errs)

    e256, e16, e1 = error(256), error(16), error(1)
    assert e256 > e16 > e1
    assert e1 <= 1e-13


def test_quant8_whole_loss_gradient_close_to_exact(burgers):
    problem, keys = burgers
    net = _net(problem.domain)
    pts = _points(problem.domain, 300)
    exact = _loss_grad(net, problem, keys, pts, StorageConfig("exact"))
    errs = [_rel(_loss_grad(net, problem, keys, pts, StorageConfig("quant8", seed=s)), exact)
            for s in range(3)]
    # each jet entry moves by less than 1/255 of its column's range, with independent
    # zero-mean noise that the sums over points in dW average down: well below 1/255
    assert 0 < max(errs) < 1 / QUANT_LEVELS


def test_projection_gradient_exact_with_orthogonal_R_and_better_with_rank(burgers):
    problem, keys = burgers
    net = _net(problem.domain)
    pts = _points(problem.domain, 60)
    exact = _loss_grad(net, problem, keys, pts, StorageConfig("exact"))
    full = StorageConfig("projection", rank=10_000, family="srft")  # clamped to the width
    assert _rel(_loss_grad(net, problem, keys, pts, full), exact) <= ROUNDOFF

    def mean_error(rank):
        errs = [_rel(_loss_grad(net, problem, keys, pts,
                                StorageConfig("projection", rank=rank, seed=s)), exact)
                for s in range(4)]
        return sum(errs) / len(errs)

    assert mean_error(2) > mean_error(16) > 0


def test_fresh_noise_each_call(burgers):
    problem, keys = burgers
    net = _net(problem.domain)
    pts = _points(problem.domain, 40)
    for cfg in (StorageConfig("quant8", seed=1), StorageConfig("projection", rank=4, seed=1)):
        eng = make_engine(net, problem.domain, keys, cfg)
        g = []
        for _ in range(2):
            loss = problem.residual(eng(pts)).square().mean()
            g.append(torch.cat([t.reshape(-1) for t in torch.autograd.grad(
                loss, list(net.parameters()))]))
        assert not torch.equal(g[0], g[1])
        assert torch.equal(g[0], _loss_grad(net, problem, keys, pts, cfg))  # same seed, call 0


# --- held bytes --------------------------------------------------------------------------




def test_held_bytes_match_formulas(burgers):
    problem, keys = burgers
    width, depth, n = 50, 3, 1000
    net = _net(problem.domain, width=width, depth=depth, dtype=torch.float32)
    pts = _points(problem.domain, n, dtype=torch.float32)
    plan = JetPlan.from_keys(keys, 2)
    J, widths = plan.num_components, (width,) * depth
    exact = _held(net, problem, keys, pts, StorageConfig("exact"))
    quant = _held(net, problem, keys, pts, StorageConfig("quant8"))
    assert quant == expected_quant8_bytes(net, plan, n, 4) \
        == compressed_held_bytes("quant8", n, widths, J, 2, 4)
    # codes: one byte per number; ranges: 2 per column and block of 256 points
    blocks = math.ceil(n / QUANT_BLOCK_ROWS)
    assert quant == J * depth * (n * width + 2 * blocks * width * 4) + 4 * n * 2
    points = 4 * n * 2
    ratio = (quant - points) / (exact - points)
    assert ratio == pytest.approx(1 / 4 + 2 * blocks / n, rel=1e-12)  # 0.258: ~1/4
    assert exact == expected_exact_bytes(net, plan, n, 4)
    for rank in (12, (4, 60, 7)):
        proj = _held(net, problem, keys, pts, StorageConfig("projection", rank=rank))
        assert proj == expected_projection_bytes(net, plan, n, 4, rank) \
            == compressed_held_bytes("projection", n, widths, J, 2, 4, rank)
    assert expected_projection_bytes(net, plan, n, 4, 60) == exact  # clamped: k = w


def test_memory_budget_plans_compressed_storage(burgers):
    from pinnsketch.api import plan_memory
    from pinnsketch.config import ModelConfig, RunConfig, SamplingConfig

    problem, keys = burgers
    J = JetPlan.from_keys(keys, 2).num_components
    model, sampling = ModelConfig(width=20, depth=3), SamplingConfig(collocation=1000)
    for storage in (StorageConfig("quant8"), StorageConfig("projection", rank=5)):
        need = compressed_held_bytes(storage.policy, 1000, (20,) * 3, J, 2, 4, storage.rank)
        fitted, _, message = plan_memory(problem, model, sampling, storage, RunConfig(), None,
                                         need)
        assert fitted.collocation == 1000 and f"{storage.policy} storage" in message
        fitted, _, _ = plan_memory(problem, model, sampling, storage, RunConfig(), None, need - 1)
        assert fitted.collocation == 999


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"policy": "quant8", "rank": 8}, "8-bit codes have no rank"),
    ({"policy": "projection"}, "policy='projection' needs a rank"),
    ({"policy": "projection", "rank": "auto"}, "rank='auto' is used only by policy='sketch'"),
    ({"policy": "projection", "rank": 0}, "rank=0.*>= 1"),
    ({"policy": "projection", "rank": 4, "exact_value": True}, "exact_value=True applies only"),
    ({"policy": "quant8", "measure_error": True}, "measure_error=True applies only"),
    ({"policy": "projection", "rank": 4, "family": "cauchy"}, "unknown sketch family"),
])
def test_bad_config_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StorageConfig(**kwargs)


def test_bad_arguments_refused(burgers):
    problem, keys = burgers
    net = _net(problem.domain)
    with pytest.raises(ValueError, match=r"rank=\(4, 4\) has 2 entries.*3 stored activations"):
        make_engine(net, problem.domain, keys, StorageConfig("projection", rank=(4, 4)))
    with pytest.raises(ValueError, match="block_rows=0 must be an int >= 1"):
        quantize(_matrix(), 0, block_rows=0)
    with pytest.raises(ValueError, match="non-finite"):
        quantize(torch.tensor([[1.0, float("inf")]]), 0)
    with pytest.raises(ValueError, match="k=7 must satisfy k <= w = 6"):
        project(_matrix(), 7, 0)
    with pytest.raises(ValueError, match="quant8 has no rank"):
        CompressOptions("quant8", (0,), rank=3)
    with pytest.raises(ValueError, match="unknown compressor 'int4'"):
        CompressOptions("int4", (0,))
    with pytest.raises(ValueError, match="quant8 has no rank"):
        compressed_held_bytes("quant8", 10, (5,), 4, 2, 4, rank=3)
    with pytest.raises(ValueError, match="covers 'quant8' and 'projection', not 'exact'"):
        compressed_held_bytes("exact", 10, (5,), 4, 2, 4)


def test_cli_wiring():
    parser, _ = _build_parser()

    def config(*argv):
        return _storage_config(parser.parse_args(["solve", "burgers", *argv]))

    assert config("--storage", "quant8") == StorageConfig("quant8")
    assert config("--storage", "projection", "--sketch-rank", "8") \
        == StorageConfig("projection", rank=8)
    with pytest.raises(ValueError, match="--sketch-rank 8 needs --storage sketch"):
        config("--storage", "quant8", "--sketch-rank", "8")

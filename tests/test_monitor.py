"""Gradient-norm monitoring from sketches: unbiasedness, stable rank, EMA, memory, dtypes."""

from __future__ import annotations

import gc
import math
import weakref

import pytest
import torch

from pinnsketch.model import MLP
from pinnsketch.sketch.monitor import GradientMonitor, exact_norm, exact_stable_rank

pytestmark = pytest.mark.usefixtures("one_thread")


def with_spectrum(m, n, sigma, seed=0, dtype=torch.float64):
    """An m x n matrix U diag(sigma) V^T with random orthonormal U, V."""
    g = torch.Generator().manual_seed(seed)
    r = len(sigma)
    u, _ = torch.linalg.qr(torch.randn(m, r, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64))
    return (u * torch.tensor(sigma, dtype=torch.float64)) @ v.T


def test_squared_norm_estimate_is_unbiased_with_the_predicted_variance():
    # ||Y||_F^2 / k is unbiased for ||G||_F^2 with variance (2 / k) sum sigma^4 (module doc).
    sigma = [3.0, 2.0, 1.0, 0.5, 0.1]
    G = with_spectrum(30, 20, sigma)
    k, trials = 8, 600
    est = torch.tensor([GradientMonitor(k=k, seed=s).observe(0, G)["sq_norm_est"]
                        for s in range(trials)], dtype=torch.float64)
    exact = sum(s**2 for s in sigma)
    assert exact_norm(G) ** 2 == pytest.approx(exact, rel=1e-12)
    var = 2.0 / k * sum(s**4 for s in sigma)
    stderr = math.sqrt(var / trials)
    assert abs(float(est.mean()) - exact) < 4 * stderr  # 4 standard errors: p ~ 6e-5
    # The sample variance of 600 draws is within about +-4 x 8% of the prediction (the
    # estimator's kurtosis is at most that of chi^2_k / k, 3 + 12 / k).
    assert float(est.var()) / var == pytest.approx(1.0, abs=0.35)


def test_relative_spread_is_at_most_sqrt_2_over_k():
    # Rank 1 is the worst case: rel. std exactly sqrt(2 / k).
    G = with_spectrum(12, 10, [1.0])
    k, trials = 4, 600
    est = torch.tensor([GradientMonitor(k=k, seed=s).observe(0, G)["sq_norm_est"]
                        for s in range(trials)], dtype=torch.float64)
    assert float(est.std()) == pytest.approx(math.sqrt(2 / k), rel=0.2)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_rank_one_stable_rank_is_exactly_one(dtype, tol):
    G = torch.outer(torch.linspace(-1, 2, 17, dtype=dtype), torch.linspace(0.5, 3, 9, dtype=dtype))
    for seed in range(5):
        est = GradientMonitor(k=6, seed=seed).observe(0, G)
        assert est["stable_rank_est"] == pytest.approx(1.0, abs=tol)
    assert exact_stable_rank(G) == pytest.approx(1.0, abs=tol)


@pytest.mark.parametrize("rank, k", [(3, 16), (12, 4), (20, 20)])
def test_stable_rank_estimate_is_at_most_min_k_and_rank(rank, k):
    G = with_spectrum(40, 30, [1.0] * rank, seed=rank)
    assert exact_stable_rank(G) == pytest.approx(rank, rel=1e-10)
    for seed in range(5):
        sr = GradientMonitor(k=k, seed=seed).observe(0, G)["stable_rank_est"]
        assert 1.0 - 1e-12 <= sr <= min(k, rank) + 1e-9


def test_stable_rank_estimate_converges_for_large_k():
    # W = V^T Omega^T is r x k i.i.d. N(0, 1). With 4 standard deviations on ||Y||_F^2 / k
    # (rel. 4 sqrt(2/k)) and the Davidson-Szarek bound sigma_max(W) <= sqrt(k) + sqrt(r) + 4
    # on the denominator (sigma_1(Y)^2 / k >= sigma_1^2 (1 - 4 sqrt(2/k)) from its first row):
    # at k = 4096, r = 4 the ratio estimate / truth lies in [0.76, 1.19].
    sigma = [1.0, 0.8, 0.6, 0.4]
    G = with_spectrum(30, 20, sigma, seed=7)
    truth = exact_stable_rank(G)
    assert truth == pytest.approx(sum(s**2 for s in sigma))
    sr = GradientMonitor(k=4096, seed=0).observe(0, G)["stable_rank_est"]
    assert 0.76 <= sr / truth <= 1.19


def test_ema_with_beta_zero_equals_the_plain_estimate():
    mon = GradientMonitor(k=8, beta=0.0, seed=3)
    for step in range(4):
        est = mon.observe(0, with_spectrum(10, 6, [1.0, 0.1 * step + 0.2], seed=step))
        assert est["ema_norm_est"] == pytest.approx(est["norm_est"], rel=1e-12)
        assert est["norm_est"] ** 2 == pytest.approx(est["sq_norm_est"], rel=1e-12)


def test_ema_sketches_the_averaged_gradient():
    # Omega is fixed per layer, so beta Y1 + (1 - beta) Y2 is the sketch of beta G1 + (1-beta) G2.
    g1, g2 = with_spectrum(10, 6, [1.0, 0.5], seed=1), with_spectrum(10, 6, [2.0], seed=2)
    mon = GradientMonitor(k=5, beta=0.25, seed=9)
    mon.observe(2, g1)
    ema = mon.observe(2, g2)["ema_norm_est"]
    other = GradientMonitor(k=5, seed=9).observe(2, 0.25 * g1 + 0.75 * g2)["norm_est"]
    assert ema == pytest.approx(other, rel=1e-12)
    # a different layer index uses a different (independent) test matrix
    assert GradientMonitor(k=5, seed=9).layer_seed(2) != GradientMonitor(k=5, seed=9).layer_seed(3)


def test_monitor_keeps_only_k_by_m_per_layer_and_no_gradient():
    m, n, k = 40, 30, 8
    mon = GradientMonitor(k=k, seed=0)
    grads = [torch.randn(m, n, dtype=torch.float64) for _ in range(3)]
    for layer, g in enumerate(grads):
        mon.observe(layer, g)
        mon.observe(layer, g * 0.5)
    assert mon.numel() == 3 * k * m
    held = [v for v in vars(mon).values() if isinstance(v, torch.Tensor)]
    for value in vars(mon).values():
        if isinstance(value, dict):
            held += [t for t in value.values() if isinstance(t, torch.Tensor)]
    assert held and all(tuple(t.shape) == (m, k) for t in held)
    ref = weakref.ref(grads[0])
    del grads
    gc.collect()
    assert ref() is None  # the gradient itself is not referenced


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dtypes(dtype):
    G = with_spectrum(16, 12, [2.0, 1.0, 0.5]).to(dtype)
    est = GradientMonitor(k=8, seed=0).observe(0, G)
    ref = GradientMonitor(k=8, seed=0).observe(0, G.to(torch.float64))
    rel = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 5e-2}[dtype]
    for key in ("norm_est", "stable_rank_est", "ema_norm_est"):
        assert isinstance(est[key], float)
        assert est[key] == pytest.approx(ref[key], rel=rel)
    assert exact_norm(G) == pytest.approx(exact_norm(G.to(torch.float64)), rel=rel)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    G = with_spectrum(64, 48, [3.0, 1.0, 0.2])
    cpu = GradientMonitor(k=16, seed=4).observe(0, G)
    mon = GradientMonitor(k=16, seed=4)
    gpu = mon.observe(0, G.cuda())
    assert mon.ema_sketch(0).device.type == "cuda"
    for key in cpu:
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-10)


def test_observe_parameters_of_a_network():
    net = MLP((0.0, 0.0), (1.0, 1.0), width=12, depth=2, dtype=torch.float64)
    net(torch.rand(7, 2, dtype=torch.float64)).sum().backward()
    mon = GradientMonitor(k=4, seed=0)
    out = mon.observe_parameters(net.parameters())
    assert len(out) == 3  # three weight matrices, biases skipped
    assert mon.numel() == 4 * (12 + 12 + 1)


def test_bad_inputs_are_refused():
    for kwargs, match in [({"k": 0}, "k=0"), ({"beta": 1.0}, "beta"), ({"seed": -1}, "seed")]:
        with pytest.raises(ValueError, match=match):
            GradientMonitor(**kwargs)
    mon = GradientMonitor()
    with pytest.raises(ValueError, match="2-D floating"):
        mon.observe(0, torch.ones(5))
    with pytest.raises(ValueError, match="2-D floating"):
        mon.observe(0, torch.ones(3, 3, dtype=torch.int64))
    mon.observe(0, torch.ones(3, 4))
    with pytest.raises(ValueError, match=r"reset\(0\)"):
        mon.observe(0, torch.ones(4, 4))
    mon.reset(0)
    mon.observe(0, torch.ones(4, 4))
    assert math.isnan(mon.observe(1, torch.zeros(2, 2))["stable_rank_est"])

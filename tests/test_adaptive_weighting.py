"""RAD resampling (pinnsketch.pde.adaptive_sampling) and the loss-weighting rules
(pinnsketch.tasks.weighting) on hand-computable inputs."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import chi2

from pinnsketch.pde.adaptive_sampling import rad_probabilities, rad_sample
from pinnsketch.tasks.weighting import (
    GradNormBalancing,
    GradNormState,
    ResidualBasedAttention,
    causal_weights,
    slice_losses,
)

D = torch.float64


# --- RAD -----------------------------------------------------------------------------------

def test_rad_probabilities_by_hand():
    r = torch.tensor([1.0, -2.0, 3.0], dtype=D)
    # k = 2: |r|^2 = (1, 4, 9), mean 14/3, so |r|^2 / mean + 1 = (17, 26, 41) / 14
    p = rad_probabilities(r, k=2.0, c=1.0)
    assert torch.allclose(p, torch.tensor([17.0, 26.0, 41.0], dtype=D) / 84, rtol=0, atol=1e-16)
    # k = 0: uniform, whatever the residuals
    assert torch.allclose(rad_probabilities(r, k=0.0, c=0.3), torch.full((3,), 1 / 3, dtype=D))
    # all residuals zero: uniform (c > 0), refused with c = 0
    assert torch.equal(rad_probabilities(torch.zeros(4), 1.0, 1.0), torch.full((4,), 0.25, dtype=D))
    with pytest.raises(ValueError, match="c > 0"):
        rad_probabilities(torch.zeros(4), 1.0, 0.0)


def test_rad_frequencies_follow_p():
    """With replacement each draw follows p: Pearson's statistic over the M = 20 cells is
    chi-square with 19 degrees of freedom; the bound is its 1 - 1e-6 quantile, so this test
    fails by chance with probability 1e-6 (a fixed seed makes it deterministic anyway)."""
    gen = torch.Generator().manual_seed(0)
    pool = torch.rand(20, 2, generator=gen, dtype=D)
    res = torch.randn(20, generator=gen, dtype=D) * torch.linspace(0.1, 3, 20, dtype=D)
    p = rad_probabilities(res, k=1.0, c=0.5)
    n = 200_000
    idx, pts = rad_sample(pool, res, n, k=1.0, c=0.5, generator=gen, replace=True)
    assert torch.equal(pts, pool[idx])
    counts = torch.bincount(idx, minlength=20).to(D)
    stat = float(((counts - n * p) ** 2 / (n * p)).sum())
    assert stat < chi2.ppf(1 - 1e-6, df=19)
    # and a wrong p is rejected by the same statistic (the test can fail)
    q = torch.full((20,), 1 / 20, dtype=D)
    assert float(((counts - n * q) ** 2 / (n * q)).sum()) > chi2.ppf(1 - 1e-6, df=19)


def test_rad_is_deterministic_in_the_generator_and_draws_distinct_points():
    pool = torch.linspace(0, 1, 50, dtype=D).unsqueeze(1)
    res = torch.sin(7 * pool[:, 0])
    a = rad_sample(pool, res, 30, generator=torch.Generator().manual_seed(5))[0]
    b = rad_sample(pool, res, 30, generator=torch.Generator().manual_seed(5))[0]
    c = rad_sample(pool, res, 30, generator=torch.Generator().manual_seed(6))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(a.tolist())) == 30  # without replacement


@pytest.mark.parametrize("kw, match", [
    (dict(k=-1.0), "exponent k"), (dict(k=math.inf), "exponent k"), (dict(c=-0.1), "constant c"),
    (dict(n=60), "cannot draw n=60"), (dict(n=0), "n must be"),
    (dict(generator=None), "explicit torch.Generator"),
])
def test_rad_refusals(kw, match):
    pool = torch.rand(50, 2, dtype=D)
    args = dict(points=pool, residuals=torch.ones(50, dtype=D), n=10, k=1.0, c=1.0,
                generator=torch.Generator().manual_seed(0))
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        rad_sample(**args)


def test_rad_refuses_mismatched_or_nonfinite_residuals():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="49 residuals for 50 pool points"):
        rad_sample(torch.rand(50, 2), torch.ones(49), 5, generator=g)
    with pytest.raises(ValueError, match="NaN or inf"):
        rad_sample(torch.rand(3, 2), torch.tensor([1.0, math.nan, 2.0]), 1, generator=g)


# --- gradient-norm balancing ---------------------------------------------------------------

def test_grad_norm_balancing_by_hand():
    pol = GradNormBalancing(alpha=0.9)
    st = pol.init(["pde", "boundary", "initial"])
    assert st.weights == {"pde": 1.0, "boundary": 1.0, "initial": 1.0}
    norms = {"pde": 8.0, "boundary": 1.0, "initial": 2.0}  # sum 11
    st = pol.update(st, norms)
    # lambda = 0.9 * 1 + 0.1 * 11 / ||g_i||
    assert st.weights == pytest.approx({"pde": 0.9 + 1.1 / 8, "boundary": 0.9 + 1.1,
                                        "initial": 0.9 + 1.1 / 2}, rel=1e-15)
    assert st.updates == 1
    # alpha = 0: the raw lambda_hat; a term with a smaller gradient gets the larger weight
    st0 = GradNormBalancing(alpha=0.0).update(pol.init(["a", "b"]), {"a": 1.0, "b": 4.0})
    assert st0.weights == {"a": 5.0, "b": 1.25}
    assert GradNormState.from_dict(st.to_dict()) == st


@pytest.mark.parametrize("norms, match", [({"pde": 1.0}, "gradient norms for"),
                                          ({"pde": 0.0, "ic": 1.0}, "must be finite and > 0"),
                                          ({"pde": math.nan, "ic": 1.0}, "must be finite")])
def test_grad_norm_balancing_refusals(norms, match):
    pol = GradNormBalancing()
    with pytest.raises(ValueError, match=match):
        pol.update(pol.init(["pde", "ic"]), norms)
    with pytest.raises(ValueError, match="alpha"):
        GradNormBalancing(alpha=1.0)
    with pytest.raises(ValueError, match="every"):
        GradNormBalancing(every=0)


# --- causal weights ------------------------------------------------------------------------

def test_causal_weights_by_hand():
    L = torch.tensor([0.5, 1.0, 2.0, 0.0], dtype=D)
    w = causal_weights(L, eps=2.0)
    # w_i = exp(-2 * (0, 0.5, 1.5, 3.5))
    assert torch.allclose(w, torch.exp(torch.tensor([0.0, -1.0, -3.0, -7.0], dtype=D)),
                          rtol=1e-15, atol=0)
    assert torch.equal(causal_weights(L, eps=0.0), torch.ones(4, dtype=D))
    Lg = L.clone().requires_grad_(True)
    assert not causal_weights(Lg, 1.0).requires_grad  # constants for the gradient
    with pytest.raises(ValueError, match="eps"):
        causal_weights(L, eps=-1.0)
    with pytest.raises(ValueError, match="finite slice losses"):
        causal_weights(torch.tensor([1.0, -1.0]), eps=1.0)


def test_slice_losses_by_hand():
    t = torch.tensor([0.0, 0.24, 0.25, 0.6, 1.0], dtype=D)
    r = torch.tensor([1.0, 3.0, 2.0, 4.0, 5.0], dtype=D, requires_grad=True)
    L = slice_losses(t, r, 0.0, 1.0, 4)
    # slices [0, .25), [.25, .5), [.5, .75), [.75, 1]: (1+9)/2, 4, 16, 25
    assert L.tolist() == [5.0, 4.0, 16.0, 25.0]
    L.sum().backward()  # differentiable in the residuals: d/dr_i = 2 r_i / count
    assert r.grad.tolist() == [1.0, 3.0, 4.0, 8.0, 10.0]
    assert slice_losses(t, r.detach(), 0.0, 2.0, 4)[3] == 0.0  # an empty slice counts 0
    with pytest.raises(ValueError, match="slices"):
        slice_losses(t, r, 0.0, 1.0, 0)


# --- residual-based attention --------------------------------------------------------------

def test_rba_update_by_hand():
    rba = ResidualBasedAttention(gamma=0.9, eta=0.1)
    lam = rba.init(4)
    assert torch.equal(lam, torch.zeros(4, dtype=D))
    r = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=D)
    lam1 = rba.update(lam, r)
    assert torch.allclose(lam1, torch.tensor([0.025, 0.05, 0.1, 0.0], dtype=D), rtol=1e-15)
    lam2 = rba.update(lam1, r)
    assert torch.allclose(lam2, 0.9 * lam1 + 0.1 * r.abs() / 2, rtol=1e-15)
    # a fixed residual drives the weights to eta / (1 - gamma) * |r| / max |r|
    lam = rba.init(4)
    for _ in range(2000):
        lam = rba.update(lam, r)
    assert torch.allclose(lam, r.abs() / 2, rtol=1e-12)
    # all-zero residuals: the weights only decay
    assert torch.equal(rba.update(lam1, torch.zeros(4, dtype=D)), 0.9 * lam1)


def test_rba_refusals():
    with pytest.raises(ValueError, match="gamma"):
        ResidualBasedAttention(gamma=1.0)
    with pytest.raises(ValueError, match="eta"):
        ResidualBasedAttention(eta=0.0)
    rba = ResidualBasedAttention()
    with pytest.raises(ValueError, match="one per point"):
        rba.update(rba.init(3), torch.ones(4))
    with pytest.raises(ValueError, match="NaN or inf"):
        rba.update(rba.init(2), torch.tensor([1.0, math.inf]))

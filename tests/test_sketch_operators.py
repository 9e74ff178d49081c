"""Tests of the sketch operators (pinnsketch.sketch): test matrices, three-sketch, range finder.

Tolerances come from the mathematics: float64 unit round-off u = 2^-53 ~ 1.1e-16 times a
modest size/condition factor where the result is exact in exact arithmetic, and the a priori
error bounds of Tropp et al. (2019) and Halko, Martinsson & Tropp (2011) where it is not.
"""

from __future__ import annotations

import math

import pytest
import torch

import pinnsketch.sketch.three_sketch as three_sketch_module
from pinnsketch.sketch import (
    SKETCH_FAMILIES,
    LowRank,
    LowRankOperator,
    RangeFinderApprox,
    SketchSpec,
    ThreeSketch,
    default_core_size,
    derive_seeds,
    ema_update,
    randomized_svd,
    range_finder,
    range_finder_numel,
    reconstruct,
    relative_error,
    sketch,
    sketch_test_matrices,
    storage_numel,
    truncated_svd,
)
from pinnsketch.sketch import test_matrix as make_test_matrix  # alias: not a pytest test

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
M_ROWS, N_COLS = 60, 40


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _exact_rank(m: int, n: int, r: int, seed: int, dtype=F64) -> torch.Tensor:
    """An m x n matrix of exact rank r (product of Gaussian factors)."""
    g = _generator(seed)
    a = torch.randn(m, r, generator=g, dtype=F64)
    b = torch.randn(r, n, generator=g, dtype=F64)
    return (a @ b).to(dtype)


def _decaying(m: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """M = U diag(2^-i) V^T with random orthonormal U (m x n), V (n x n); returns (M, sigma)."""
    g = _generator(seed)
    u = torch.linalg.qr(torch.randn(m, n, generator=g, dtype=F64)).Q
    v = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64)).Q
    sigma = 2.0 ** -torch.arange(n, dtype=F64)
    return (u * sigma) @ v.T, sigma


def _tail2(sigma: torch.Tensor, j: int) -> float:
    """tau_{j+1}^2 = sum_{i > j} sigma_i^2 (1-based), the squared optimal rank-j error."""
    return float((sigma[j:] ** 2).sum())


# --------------------------------------------------------------------------- test matrices


@pytest.mark.parametrize("family", SKETCH_FAMILIES)
def test_test_matrix_is_reproducible_and_dtype_consistent(family):
    a = make_test_matrix(family, 6, 20, 11, dtype=F64)
    assert torch.equal(a, make_test_matrix(family, 6, 20, 11, dtype=F64))
    assert not torch.equal(a, make_test_matrix(family, 6, 20, 12, dtype=F64))
    # float32 is the same float64 draw, rounded once.
    assert torch.equal(
        make_test_matrix(family, 6, 20, 11, dtype=torch.float32), a.to(torch.float32)
    )
    assert a.shape == (6, 20)


def test_sparse_sign_structure():
    for rows in (3, 8, 20):
        a = make_test_matrix("sparse_sign", rows, 50, 5, dtype=F64)
        assert (a != 0).sum(dim=0).tolist() == [min(rows, 8)] * 50
        assert set(a[a != 0].tolist()) <= {-1.0, 1.0}


def test_srft_rows_are_orthogonal():
    # S = sqrt(c/r) R F D with F orthonormal and D, R a sign flip and a row selection, so
    # S S^T = (c/r) I exactly; float64 round-off of the cosines is O(u) per entry.
    rows, cols = 7, 33
    a = make_test_matrix("srft", rows, cols, 2, dtype=F64)
    gram = a @ a.T
    torch.testing.assert_close(
        gram, (cols / rows) * torch.eye(rows, dtype=F64), rtol=0, atol=100 * cols * EPS64
    )


def test_test_matrix_validation():
    with pytest.raises(ValueError, match="'fourier'.*gaussian, sparse_sign, srft"):
        make_test_matrix("fourier", 3, 4, 0)
    with pytest.raises(ValueError, match="rows must be a positive int, got 0"):
        make_test_matrix("gaussian", 0, 4, 0)
    with pytest.raises(ValueError, match="cols must be a positive int, got -2"):
        make_test_matrix("gaussian", 3, -2, 0)
    with pytest.raises(ValueError, match="rows=5 > cols=4"):
        make_test_matrix("srft", 5, 4, 0)
    with pytest.raises(ValueError, match="seed"):
        make_test_matrix("gaussian", 3, 4, -1)


def test_derive_seeds_distinct_and_stable():
    assert derive_seeds(3, 4) == derive_seeds(3, 4)
    assert len(set(derive_seeds(3, 4) + derive_seeds(4, 4))) == 8


# --------------------------------------------------------------------------- exact recovery


@pytest.mark.parametrize("family", SKETCH_FAMILIES)
@pytest.mark.parametrize("k", [5, 10])
def test_three_sketch_recovers_exact_rank_matrix(family, k):
    # rank(M) = 5 <= k. In exact arithmetic Q = orth(M Omega^T) and P = orth(M^T Upsilon^T)
    # contain range(M) and range(M^T) (a.s.), so M = Q Q^T M P P^T and
    # Z = (Phi Q)(Q^T M P)(Psi P)^T; Phi Q and Psi P have full column rank (s >= k), hence
    # C = Q^T M P and Q C P^T = M exactly. In float64 the only error is round-off, about
    # u * (m + n) amplified by cond(Phi Q) cond(Psi P) and the condition of M on its range
    # (all O(10) here): ~1e-13 at worst, so 1e-10 leaves a wide margin and still fails for any
    # genuine approximation error (which would be O(1) for this matrix).
    M = _exact_rank(M_ROWS, N_COLS, 5, seed=1)
    spec = SketchSpec(M_ROWS, N_COLS, k, seed=7, family=family)
    approx = reconstruct(sketch(M, spec))
    assert float(relative_error(M, approx)) < 1e-10
    assert approx.Q.shape == (M_ROWS, k) and approx.P.shape == (N_COLS, k)
    eye = torch.eye(k, dtype=F64)
    torch.testing.assert_close(approx.Q.T @ approx.Q, eye, rtol=0, atol=100 * M_ROWS * EPS64)
    torch.testing.assert_close(approx.P.T @ approx.P, eye, rtol=0, atol=100 * N_COLS * EPS64)


@pytest.mark.parametrize("family", SKETCH_FAMILIES)
@pytest.mark.parametrize("k", [5, 10])
@pytest.mark.parametrize("q", [0, 1])
def test_range_finder_recovers_exact_rank_matrix(family, k, q):
    # range(A^T Omega) = range(A^T) a.s. when rank(A) = 5 <= k, so A Q Q^T = A exactly; the
    # error is float64 round-off (same argument and margin as above).
    A = _exact_rank(M_ROWS, N_COLS, 5, seed=2)
    approx = range_finder(A, k, seed=3, family=family, power_iterations=q)
    assert float(relative_error(A, approx)) < 1e-10
    assert approx.basis.shape == (N_COLS, k) and approx.coeffs.shape == (M_ROWS, k)
    torch.testing.assert_close(
        approx.basis.T @ approx.basis, torch.eye(k, dtype=F64), rtol=0, atol=100 * N_COLS * EPS64
    )


@pytest.mark.parametrize("family", SKETCH_FAMILIES)
def test_exact_recovery_in_float32(family):
    # Same argument in float32 (u = 6e-8): round-off ~ u * (m + n) * O(10) ~ 6e-5 at worst.
    M = _exact_rank(M_ROWS, N_COLS, 4, seed=4, dtype=torch.float32)
    approx = reconstruct(sketch(M, SketchSpec(M_ROWS, N_COLS, 6, seed=0, family=family)))
    assert approx.C.dtype == torch.float32
    assert float(relative_error(M, approx)) < 1e-4
    assert float(relative_error(M, range_finder(M, 6, seed=0, family=family))) < 1e-4


# --------------------------------------------------------------------------- error vs k


@pytest.mark.parametrize("family", SKETCH_FAMILIES)
def test_error_falls_as_k_rises_and_never_beats_svd(family):
    # Singular values 2^-i: each +4 in k cuts the optimal error tau_{k+1} by 2^4 = 16, far more
    # than the O(1)-O(10) random factor by which a sketch exceeds it, so the error must fall.
    # An approximation of rank <= k can never beat tau_{k+1} (Eckart-Young).
    M, sigma = _decaying(M_ROWS, N_COLS, seed=5)
    norm = math.sqrt(_tail2(sigma, 0))
    sketch_err, rf_err = [], []
    for k in (4, 8, 12, 16):
        opt = math.sqrt(_tail2(sigma, k)) / norm
        e3 = float(
            relative_error(
                M, reconstruct(sketch(M, SketchSpec(M_ROWS, N_COLS, k, seed=9, family=family)))
            )
        )
        er = float(relative_error(M, range_finder(M, k, seed=9, family=family)))
        assert e3 >= opt * (1 - 1e-10) and er >= opt * (1 - 1e-10)
        sketch_err.append(e3)
        rf_err.append(er)
    assert all(b < a for a, b in zip(sketch_err, sketch_err[1:], strict=False)), sketch_err
    assert all(b < a for a, b in zip(rf_err, rf_err[1:], strict=False)), rf_err


@pytest.mark.parametrize("family", SKETCH_FAMILIES)
@pytest.mark.parametrize("k", [5, 10])
def test_randomized_svd_recovers_exact_rank_matrix(family, k):
    # rank(A) = 5 <= l = k + 8: range(A^T orth(A Omega)) = range(A^T) a.s., so Q spans the
    # row space, C = A Q has rank 5 and its top-k right singular vectors keep all of it:
    # A V V^T = A up to float64 round-off.
    A = _exact_rank(M_ROWS, N_COLS, 5, seed=2)
    approx = randomized_svd(A, k, seed=3, family=family)
    assert float(relative_error(A, approx)) < 1e-10
    assert approx.basis.shape == (N_COLS, k) and approx.coeffs.shape == (M_ROWS, k)
    torch.testing.assert_close(
        approx.basis.T @ approx.basis, torch.eye(k, dtype=F64), rtol=0, atol=100 * N_COLS * EPS64
    )
    torch.testing.assert_close(approx.coeffs, A @ approx.basis, rtol=0, atol=1e-12)


@pytest.mark.parametrize("family", SKETCH_FAMILIES)
def test_randomized_svd_is_near_optimal_on_a_decaying_spectrum(family):
    # Singular values 2^-i. Q samples l = k + 8 directions of A^T A, whose eigenvalues 4^-i
    # separate the top k from the rest by 4^-9 ~ 4e-6 beyond the oversampling: the top-k
    # subspace is captured up to an angle ~ 4e-6 times an O(10) random factor, which adds
    # a relative ~1e-8 to the Eckart-Young error tau_{k+1}. So opt <= err <= 1.01 opt.
    # 200 x 120, so that l = k + 8 < 120 / 2 keeps the randomized route for every k here.
    M, sigma = _decaying(200, 120, seed=5)
    norm = math.sqrt(_tail2(sigma, 0))
    for k in (4, 8, 12, 16):
        opt = math.sqrt(_tail2(sigma, k)) / norm
        err = float(relative_error(M, randomized_svd(M, k, seed=9, family=family)))
        assert opt * (1 - 1e-10) <= err <= 1.01 * opt, (k, err, opt)


def test_randomized_svd_takes_the_exact_route_where_the_gram_is_no_dearer():
    # l = k + 8 >= min(N, w) / 2: the w x w Gram costs no more than three passes at width l,
    # so the result is truncated_svd's, bit for bit, whatever the seed.
    M, _ = _decaying(M_ROWS, N_COLS, seed=5)
    for seed in (0, 1):
        a, b = randomized_svd(M, 12, seed=seed), truncated_svd(M, 12)
        assert torch.equal(a.basis, b.basis) and torch.equal(a.coeffs, b.coeffs)


def test_small_width_route_resolves_tails_below_float32_gram_precision():
    # A float32 2000 x 50 with singular values 0.7^i, k = 32: the optimal error is 1.1e-5 of
    # ||A||_F, a tail energy of 1.2e-10 ||A||_F^2, far below the error of a Gram formed in
    # float32 (>= u32 ||A||^2 = 6e-8 ||A||^2; such a route measured 7.6 x the optimum), so the
    # small-width route must form its Gram in float64. What remains is the float32
    # rounding of A and of the coefficients, each at most u32 ||A||_F = 6e-8 ||A||_F, i.e.
    # 0.6 % of the optimum if wholly aligned with the tail: 1 % bounds it.
    g = _generator(22)
    u = torch.linalg.qr(torch.randn(2000, 50, generator=g, dtype=F64)).Q
    v = torch.linalg.qr(torch.randn(50, 50, generator=g, dtype=F64)).Q
    sigma = 0.7 ** torch.arange(50, dtype=F64)
    A = ((u * sigma) @ v.T).float()
    opt = math.sqrt(_tail2(sigma, 32) / _tail2(sigma, 0))
    approx = randomized_svd(A, 32, seed=0)
    rebuilt = approx.coeffs.double() @ approx.basis.double().T
    err = float((A.double() - rebuilt).norm() / A.double().norm())
    assert opt * 0.99 <= err <= opt * 1.01, (err, opt)


def test_randomized_svd_seeds_reproduce_and_bad_values_are_refused():
    M = _exact_rank(M_ROWS, N_COLS, 8, seed=8)
    a, b = randomized_svd(M, 6, seed=1), randomized_svd(M, 6, seed=1)
    assert torch.equal(a.basis, b.basis) and torch.equal(a.coeffs, b.coeffs)
    assert not torch.equal(a.basis, randomized_svd(M, 6, seed=2).basis)
    with pytest.raises(ValueError, match=r"k=41 must be an int with 1 <= k <= min\(N, w\) = 40"):
        randomized_svd(M, 41, seed=0)
    with pytest.raises(ValueError, match="oversample=-1"):
        randomized_svd(M, 4, seed=0, oversample=-1)
    with pytest.raises(ValueError, match="unknown"):
        randomized_svd(M, 4, seed=0, family="cauchy")


@pytest.mark.parametrize("k", [4, 8, 12])
def test_gaussian_three_sketch_within_tropp_bound(k):
    # Tropp, Yurtsever, Udell & Cevher (2019), Thm 5.1: for Gaussian test matrices and
    # s >= 2k + 1,
    #   E ||M - Q C P^T||_F^2 <= (s - 1)/(s - k - 1) * min_{rho < k-1} (k + rho - 1)/(k - rho - 1)
    #                            * tau_{rho+1}^2(M),
    # tau_{rho+1}^2 = sum_{j > rho} sigma_j^2. ((s-1)/(s-k-1) = 1 + f(s,k) is the core-sketch
    # factor; (k+rho-1)/(k-rho-1) = 1 + 2 rho/(k-rho-1) collects the range and co-range
    # factors 1 + f(k,rho), f(a,b) = b/(a-b-1).) The bound is on the mean, so the test
    # averages 12 independent sketches (seeds) of one matrix; single draws may exceed it.
    M, sigma = _decaying(M_ROWS, N_COLS, seed=6)
    s = 2 * k + 1
    total2 = _tail2(sigma, 0)
    errs2 = [
        float(
            relative_error(M, reconstruct(sketch(M, SketchSpec(M_ROWS, N_COLS, k, s=s, seed=seed))))
        )
        ** 2
        * total2
        for seed in range(12)
    ]
    bound = (
        (s - 1)
        / (s - k - 1)
        * min((k + rho - 1) / (k - rho - 1) * _tail2(sigma, rho) for rho in range(k - 1))
    )
    assert sum(errs2) / len(errs2) <= bound


@pytest.mark.parametrize("k", [4, 8, 12])
def test_gaussian_range_finder_within_halko_bound(k):
    # Halko, Martinsson & Tropp (2011), Thm 10.5, for A^T with a Gaussian Omega and no power
    # iteration: E ||A - A Q Q^T||_F^2 <= min_{rho <= k-2} (1 + rho/(k - rho - 1)) tau_{rho+1}^2.
    A, sigma = _decaying(M_ROWS, N_COLS, seed=7)
    total2 = _tail2(sigma, 0)
    errs2 = [
        float(relative_error(A, range_finder(A, k, seed, power_iterations=0))) ** 2 * total2
        for seed in range(12)
    ]
    bound = min((1 + rho / (k - rho - 1)) * _tail2(sigma, rho) for rho in range(k - 1))
    assert sum(errs2) / len(errs2) <= bound


# --------------------------------------------------------------------------- seeds, EMA


def test_same_spec_same_sketch_different_seed_different():
    M = _exact_rank(M_ROWS, N_COLS, 8, seed=8)
    spec = SketchSpec(M_ROWS, N_COLS, 6, seed=21, family="sparse_sign")
    a, b = sketch(M, spec), sketch(M, SketchSpec(M_ROWS, N_COLS, 6, seed=21, family="sparse_sign"))
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in "XYZ")
    c = sketch(M, SketchSpec(M_ROWS, N_COLS, 6, seed=22, family="sparse_sign"))
    assert not any(torch.equal(getattr(a, f), getattr(c, f)) for f in "XYZ")
    # The four test matrices come from distinct sub-seeds.
    t = sketch_test_matrices(SketchSpec(M_ROWS, M_ROWS, 6, seed=21), dtype=F64)
    assert not torch.equal(t.upsilon, t.omega)
    assert not torch.equal(t.upsilon, t.phi[:6])
    r1, r2 = range_finder(M, 6, seed=1), range_finder(M, 6, seed=1)
    assert torch.equal(r1.basis, r2.basis) and torch.equal(r1.coeffs, r2.coeffs)
    assert not torch.equal(r1.basis, range_finder(M, 6, seed=2).basis)


@pytest.mark.parametrize("family", SKETCH_FAMILIES)
def test_ema_update_is_sketch_of_the_mix(family):
    # Sketching is linear with the same test matrices, so
    # beta sketch(A) + (1 - beta) sketch(B) = sketch(beta A + (1 - beta) B) in exact arithmetic.
    # Float64 matrix products satisfy |fl(T M) - T M| <= gamma_d |T| |M| (d = inner
    # dimension, gamma_d ~ d u), so the normwise difference is bounded by
    # ~ 3 d u ||T1||_F ||A|+|B||_F ||T2||_F; we allow 10x that.
    spec = SketchSpec(M_ROWS, N_COLS, 5, seed=3, family=family)
    A, B = _exact_rank(M_ROWS, N_COLS, 7, seed=10), _exact_rank(M_ROWS, N_COLS, 7, seed=11)
    beta = 0.9
    ema = ema_update(sketch(A, spec), B, beta)
    mix = sketch(beta * A + (1 - beta) * B, spec)
    t = sketch_test_matrices(spec, dtype=F64)
    size = torch.linalg.matrix_norm(A.abs() + B.abs())
    fro = torch.linalg.matrix_norm
    bounds = {
        "X": 30 * M_ROWS * EPS64 * fro(t.upsilon) * size,
        "Y": 30 * N_COLS * EPS64 * fro(t.omega) * size,
        "Z": 30 * (M_ROWS + N_COLS) * EPS64 * fro(t.phi) * size * fro(t.psi),
    }
    for f, bound in bounds.items():
        assert float(fro(getattr(ema, f) - getattr(mix, f))) <= float(bound), f
    # beta = 0 keeps only the new matrix.
    fresh = ema_update(sketch(A, spec), B, 0.0)
    assert all(torch.equal(getattr(fresh, f), getattr(sketch(B, spec), f)) for f in "XYZ")


@pytest.mark.parametrize("beta", [1.0, 1.5, -0.1, float("nan")])
def test_ema_update_rejects_beta(beta):
    spec = SketchSpec(6, 4, 2, seed=0)
    M = torch.ones(6, 4, dtype=F64)
    with pytest.raises(ValueError, match=rf"beta={beta!r}.*0 <= beta < 1"):
        ema_update(sketch(M, spec), M, beta)


def test_ema_update_rejects_mismatched_matrix():
    spec = SketchSpec(6, 4, 2, seed=0)
    old = sketch(torch.ones(6, 4, dtype=F64), spec)
    with pytest.raises(ValueError, match=r"shape \(4, 6\)"):
        ema_update(old, torch.ones(4, 6, dtype=F64), 0.5)
    with pytest.raises(ValueError, match="float32"):
        ema_update(old, torch.ones(6, 4, dtype=torch.float32), 0.5)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"k": 0}, r"k=0 must satisfy 1 <= k <= min\(m, n\) = 40"),
        ({"k": 41}, r"k=41 must satisfy 1 <= k <= min\(m, n\) = 40"),
        ({"k": 5, "s": 4}, r"s=4 must satisfy s >= k = 5"),
        ({"k": 5, "family": "fourier"}, r"'fourier'.*gaussian, sparse_sign, srft"),
        ({"k": 5, "s": 41, "family": "srft"}, r"s=41 must satisfy s <= min\(m, n\) = 40"),
        ({"k": 5, "seed": -3}, r"seed.*-3"),
    ],
)
def test_sketch_spec_rejects_bad_values(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        SketchSpec(m=M_ROWS, n=N_COLS, **kwargs)


def test_reconstruct_and_range_finder_reject_bad_rank():
    M = _exact_rank(M_ROWS, N_COLS, 3, seed=12)
    sk = sketch(M, SketchSpec(M_ROWS, N_COLS, 4, seed=0))
    for rank in (0, 5):
        with pytest.raises(ValueError, match=rf"rank={rank} must be None or an int with 1 <= "):
            reconstruct(sk, rank)
    with pytest.raises(ValueError, match=r"k=41 must be an int with 1 <= k <= min\(N, w\) = 40"):
        range_finder(M, 41, seed=0)
    with pytest.raises(ValueError, match="power_iterations must be an integer >= 0, got -1"):
        range_finder(M, 4, seed=0, power_iterations=-1)
    with pytest.raises(ValueError, match=r"shape \(40, 60\)"):
        sketch(M.T, sk.spec)


def test_default_core_size_and_storage():
    assert default_core_size(5) == 11
    assert SketchSpec(M_ROWS, N_COLS, 5, seed=0).s == 11
    # 2k + 1 = 21 > min(m, n) = 8: clamped to 8 (>= k still).
    spec = SketchSpec(M_ROWS, 8, 7, seed=0)
    assert spec.s == 8
    for spec in (
        SketchSpec(M_ROWS, N_COLS, 5, seed=0),
        SketchSpec(M_ROWS, 8, 7, seed=0),
        SketchSpec(M_ROWS, N_COLS, 3, s=50, seed=0),
    ):
        expected = spec.k * (spec.m + spec.n) + spec.s**2
        assert storage_numel(spec) == expected
        sk = sketch(torch.zeros(spec.m, spec.n, dtype=F64), spec)
        assert isinstance(sk, ThreeSketch) and sk.numel() == expected
    assert range_finder_numel(M_ROWS, N_COLS, 6) == 6 * (M_ROWS + N_COLS)
    assert range_finder(_exact_rank(M_ROWS, N_COLS, 2, 0), 6, 0).numel() == 6 * (M_ROWS + N_COLS)


# --------------------------------------------------------------------------- truncation


def test_rank_truncation():
    M, _ = _decaying(M_ROWS, N_COLS, seed=13)
    k = 12
    sk = sketch(M, SketchSpec(M_ROWS, N_COLS, k, seed=4))
    full = reconstruct(sk)
    full_dense = full.dense()
    # E = C - Q^T M P is the core's estimation error; with B = Q^T M P and C = U S V^T,
    # err(r+1)^2 - err(r)^2 = -sigma_{r+1}(C) (sigma_{r+1}(C) - 2 u_{r+1}^T E v_{r+1})
    # (Pythagoras, Q and P orthonormal), so the error cannot grow from r to r+1 whenever
    # sigma_{r+1}(C) >= 2 ||E||_2. Those steps are checked; a step with a smaller singular
    # value may legitimately raise the error.
    E = full.C - full.Q.T @ M @ full.P
    e_norm = float(torch.linalg.matrix_norm(E, ord=2))
    svals = torch.linalg.svdvals(full.C)
    errs, dists = [], []
    for r in range(1, k + 1):
        lr = reconstruct(sk, rank=r)
        assert lr.Q.shape == (M_ROWS, r) and lr.C.shape == (r, r) and lr.P.shape == (N_COLS, r)
        dense = lr.dense()
        assert int(torch.linalg.matrix_rank(dense)) == r
        errs.append(float(relative_error(M, lr)))
        dists.append(float(torch.linalg.matrix_norm(full_dense - dense)))
    checked = 0
    for r in range(1, k):
        if float(svals[r]) >= 2 * e_norm:  # svals[r] is sigma_{r+1}(C)
            assert errs[r] <= errs[r - 1] * (1 + 1e-12), (r, errs)
            checked += 1
    assert checked >= 4  # the guarantee covers the leading directions of this matrix
    # Eckart-Young on C: ||M_hat - M_hat_r||_F = sqrt(sum_{j > r} sigma_j(C)^2), non-increasing.
    for r in range(1, k + 1):
        assert dists[r - 1] == pytest.approx(float(svals[r:].norm()), abs=1e-12)
    assert all(b <= a + 1e-14 for a, b in zip(dists, dists[1:], strict=False))
    assert torch.allclose(reconstruct(sk, rank=k).dense(), full_dense, rtol=0, atol=1e-13)


# --------------------------------------------------------------------------- products


def _product_tol(G: torch.Tensor, *factors: torch.Tensor) -> float:
    # Different association of the same product: |error| <= gamma_d |G| |F1| |F2| ...,
    # bounded normwise by d u ||G||_F prod ||Fi||_F (d = sum of inner dimensions); x10.
    d = sum(f.shape[0] + f.shape[1] for f in factors)
    prod = float(torch.linalg.matrix_norm(G))
    for f in factors:
        prod *= float(torch.linalg.matrix_norm(f))
    return 10 * d * EPS64 * prod


def test_left_and_right_multiply_match_dense():
    M, _ = _decaying(M_ROWS, N_COLS, seed=14)
    g = _generator(15)
    G_left = torch.randn(3, M_ROWS, generator=g, dtype=F64)
    G_right = torch.randn(N_COLS, 4, generator=g, dtype=F64)
    lowrank = reconstruct(sketch(M, SketchSpec(M_ROWS, N_COLS, 8, seed=1)))
    rf = range_finder(M, 8, seed=1)
    assert isinstance(rf, RangeFinderApprox)
    for approx, factors in (
        (lowrank, (lowrank.Q, lowrank.C, lowrank.P)),
        (rf, (rf.coeffs, rf.basis)),
    ):
        assert isinstance(approx, LowRankOperator)
        dense = approx.dense()
        tol_l = _product_tol(G_left, *factors)
        tol_r = _product_tol(G_right, *factors)
        torch.testing.assert_close(approx.left_multiply(G_left), G_left @ dense, rtol=0, atol=tol_l)
        torch.testing.assert_close(
            approx.right_multiply(G_right), dense @ G_right, rtol=0, atol=tol_r
        )
        torch.testing.assert_close(
            approx.left_multiply(G_left[0]), G_left[0] @ dense, rtol=0, atol=tol_l
        )
        torch.testing.assert_close(
            approx.right_multiply(G_right[:, 0]), dense @ G_right[:, 0], rtol=0, atol=tol_r
        )
        eye = torch.eye(M_ROWS, dtype=F64)
        torch.testing.assert_close(
            approx.row_block(5, 9), dense[5:9], rtol=0, atol=_product_tol(eye[5:9], *factors)
        )
        with pytest.raises(ValueError, match="needs size 60"):
            approx.left_multiply(G_right.T)
    torch.testing.assert_close(
        lowrank.transpose().dense(),
        lowrank.dense().T,
        rtol=0,
        atol=_product_tol(torch.eye(N_COLS, dtype=F64), lowrank.Q, lowrank.C, lowrank.P),
    )
    lr = rf.to_lowrank()
    assert isinstance(lr, LowRank)
    torch.testing.assert_close(
        lr.dense(),
        rf.dense(),
        rtol=0,
        atol=_product_tol(torch.eye(M_ROWS, dtype=F64), lr.Q, lr.C, lr.P),
    )


# --------------------------------------------------------------------------- relative error


def test_relative_error_exact_and_edge_cases(monkeypatch):
    M, _ = _decaying(M_ROWS, N_COLS, seed=16)
    approx = range_finder(M, 5, seed=0, power_iterations=0)
    direct = torch.linalg.matrix_norm(M - approx.dense()) / torch.linalg.matrix_norm(M)
    # Force many row blocks: the blockwise norm must agree with the direct one to round-off.
    monkeypatch.setattr(three_sketch_module, "_ERROR_BLOCK_NUMEL", 7 * N_COLS)
    blocked = relative_error(M, approx)
    assert float(blocked) == pytest.approx(float(direct), rel=1e-13)
    zero = torch.zeros(M_ROWS, N_COLS, dtype=F64)
    zero_sketch = reconstruct(sketch(zero, SketchSpec(M_ROWS, N_COLS, 4, seed=0)))
    assert float(relative_error(zero, zero_sketch)) == 0.0
    assert math.isinf(float(relative_error(zero, approx)))
    with pytest.raises(ValueError, match="shape"):
        relative_error(M.T, approx)


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", SKETCH_FAMILIES)
def test_cuda_matches_cpu(family):
    # The test matrices are drawn on the CPU and moved: bit-identical on the GPU. The sketches
    # and reconstruction then agree to float64 round-off (different BLAS, same algorithm).
    cpu = make_test_matrix(family, 6, 30, 4, dtype=F64)
    assert torch.equal(make_test_matrix(family, 6, 30, 4, dtype=F64, device="cuda").cpu(), cpu)
    M = _exact_rank(M_ROWS, N_COLS, 5, seed=17)
    spec = SketchSpec(M_ROWS, N_COLS, 6, seed=5, family=family)
    approx = reconstruct(sketch(M.cuda(), spec))
    assert approx.Q.is_cuda
    assert float(relative_error(M.cuda(), approx)) < 1e-10
    torch.testing.assert_close(
        approx.dense().cpu(),
        reconstruct(sketch(M, spec)).dense(),
        rtol=0,
        atol=1e-10 * float(M.abs().max()),
    )
    rf = range_finder(M.cuda(), 6, seed=5, family=family)
    assert float(relative_error(M.cuda(), rf)) < 1e-10


def test_truncated_svd_is_optimal():
    """Eckart-Young: the rank-k truncated SVD error is sqrt(sum_{i>k} sigma_i^2) exactly.

    The Gram matrix is formed in float64, so the eigenvectors of singular values well above
    sqrt(eps) ||A|| are accurate to round-off; with sigma_i = 2^-i down to 2^-12 they are.
    """
    from pinnsketch.sketch import truncated_svd

    g = torch.Generator().manual_seed(3)
    U, _ = torch.linalg.qr(torch.randn(80, 12, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(20, 12, generator=g, dtype=torch.float64))
    sigma = 2.0 ** -torch.arange(12, dtype=torch.float64)
    A = U @ torch.diag(sigma) @ V.T
    for k in (1, 4, 8):
        approx = truncated_svd(A, k)
        err = torch.linalg.matrix_norm(A - approx.dense())
        tail = sigma[k:].pow(2).sum().sqrt()
        assert abs(float(err) - float(tail)) <= 1e-10 * float(sigma[0])
        assert torch.allclose(approx.basis.T @ approx.basis, torch.eye(k, dtype=torch.float64),
                              atol=1e-12)
    full = truncated_svd(A, 20)
    assert float(torch.linalg.matrix_norm(A - full.dense())) <= 1e-12
    with pytest.raises(ValueError, match="k=0"):
        truncated_svd(A, 0)

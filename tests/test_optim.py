"""pinnsketch.optim: the strong-Wolfe line search, the quasi-Newton updates, L-BFGS,
Levenberg-Marquardt, the state protocol and the refusals.

Tolerances: float64 round-off (unit roundoff 1.1e-16) times the conditioning of the small
test problems; each test says where its number comes from.
"""

from __future__ import annotations

import io
import math

import pytest
import torch

from pinnsketch.optim import (
    DenseQuasiNewton,
    DenseState,
    LBFGSState,
    LMState,
    StrongWolfe,
    bfgs,
    dense_bytes,
    fit_dense,
    lbfgs,
    levenberg_marquardt,
    make_optimizer,
    ssbfgs,
    ssbroyden,
)
from pinnsketch.optim.gauss_newton import damped_step
from pinnsketch.optim.line_search import (
    INTERVAL_TOO_SMALL,
    MAX_EVALUATIONS,
    NON_FINITE,
    NOT_DESCENT,
    STEP_LIMIT,
    LineSearchResult,
)
from pinnsketch.optim.quasi_newton import broyden_update, self_scaling

D = torch.float64
QN = ("lbfgs", "bfgs", "ssbfgs", "ssbroyden")


def rosenbrock(x):
    """Extended Rosenbrock sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2, minimum 0 at (1, ..., 1)."""
    a, b = x[:-1], x[1:]
    f = float((100 * (b - a * a) ** 2 + (1 - a) ** 2).sum())
    g = torch.zeros_like(x)
    g[:-1] += -400 * a * (b - a * a) - 2 * (1 - a)
    g[1:] += 200 * (b - a * a)
    return f, g


def rosenbrock_rj(x):
    a, b = x[:-1], x[1:]
    n = x.numel() - 1
    r = torch.cat([10 * (b - a * a), 1 - a])
    J = torch.zeros(2 * n, x.numel(), dtype=D)
    idx = torch.arange(n)
    J[idx, idx] = -20 * a
    J[idx, idx + 1] = 10.0
    J[n + idx, idx] = -1.0
    return r, J


def quadratic(n, seed, cond=100.0):
    """f = 1/2 x^T A x - b^T x with A SPD of condition ``cond``."""
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=D))
    A = Q @ torch.diag(torch.logspace(0, math.log10(cond), n, dtype=D)) @ Q.T
    A = (A + A.T) / 2
    b = torch.randn(n, generator=gen, dtype=D)

    def fg(x):
        Ax = A @ x
        return float(0.5 * x @ Ax - b @ x), Ax - b

    return A, b, fg


class Recording:
    """A line search that records every call and result (for checking Wolfe at each step)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __call__(self, fg, x, f, g, d, step):
        res = self.inner(fg, x, f, g, d, step)
        self.calls.append((float(f), float(g @ d), d, res))
        return res


def assert_wolfe(search: StrongWolfe, f0, dphi0, d, res: LineSearchResult):
    assert res.ok and res.step > 0
    # sufficient decrease and curvature, exactly as defined (no slack: these are the
    # conditions the search itself tests before returning ok)
    assert res.f <= f0 + search.c1 * res.step * dphi0
    assert abs(float(res.g @ d)) <= search.c2 * abs(dphi0)


# --- line search ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["bfgs", "ssbfgs", "ssbroyden", "lbfgs"])
def test_strong_wolfe_holds_at_every_step_on_rosenbrock(method):
    search = StrongWolfe()
    rec = Recording(search)
    opt = make_optimizer(method, search=rec)
    x = torch.tensor([-1.2, 1.0, -1.2, 1.0], dtype=D)
    state = opt.init(x, *rosenbrock(x))
    for _ in range(200):
        if float(state.g.norm()) < 1e-10:  # converged: the next direction is ~0
            break
        state, info = opt.step(state, rosenbrock)
        assert info.line_search_ok
    assert float(state.g.norm()) < 1e-10 and len(rec.calls) > 20
    for f0, dphi0, d, res in rec.calls:
        assert_wolfe(search, f0, dphi0, d, res)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("step0", [1e-6, 1.0, 1e4])
def test_strong_wolfe_on_random_quadratics(seed, step0):
    """From tiny (extrapolation) and huge (zoom) first steps, a random descent direction."""
    A, b, fg = quadratic(8, seed, cond=1e3)
    gen = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(8, generator=gen, dtype=D)
    f, g = fg(x)
    d = -g + 0.5 * torch.randn(8, generator=gen, dtype=D) * g.norm()
    if float(g @ d) >= 0:
        d = -g
    search = StrongWolfe(max_evaluations=50)
    res = search(fg, x, f, g, d, step0)
    assert_wolfe(search, f, float(g @ d), d, res)
    # the returned value and gradient are the objective's at x + a d
    f1, g1 = fg(x + res.step * d)
    assert res.f == f1 and torch.equal(res.g, g1)


def test_line_search_failures_are_reported_not_raised():
    x = torch.zeros(1, dtype=D)
    g0 = torch.ones(1, dtype=D)
    # not a descent direction
    r = StrongWolfe()(lambda z: (1.0, g0), x, 1.0, g0, g0.clone())
    assert (r.ok, r.reason, r.has_point, r.evaluations) == (False, NOT_DESCENT, False, 0)
    # the value never decreases along a claimed descent direction: the bracket shrinks
    flat = lambda z: (1.0, g0)  # noqa: E731
    r = StrongWolfe(max_evaluations=500)(flat, x, 1.0, g0, -g0)
    assert (r.ok, r.reason, r.has_point) == (False, INTERVAL_TOO_SMALL, False)
    assert r.step == 0.0 and r.f == 1.0 and r.g is None
    r = StrongWolfe(max_evaluations=5)(flat, x, 1.0, g0, -g0)
    assert (r.ok, r.reason, r.evaluations) == (False, MAX_EVALUATIONS, 5)
    # non-finite everywhere but at the start
    nan = lambda z: (float("nan"), g0)  # noqa: E731
    r = StrongWolfe(max_evaluations=8)(nan, x, 1.0, g0, -g0)
    assert (r.ok, r.reason) == (False, NON_FINITE)
    # unbounded below: still descending at max_step
    lin = lambda z: (float(-z.sum()), -torch.ones_like(z))  # noqa: E731
    r = StrongWolfe(max_step=1e3, max_evaluations=100)(lin, x, 0.0, -g0, g0)
    assert (r.ok, r.reason, r.has_point) == (False, STEP_LIMIT, True)
    assert r.step == 1e3 and r.f == -1e3  # its best point is returned


def test_line_search_backs_off_non_finite_values():
    """inf beyond a = 0.5 on f = (x - 1)^2: the search backtracks and succeeds."""
    def fg(z):
        if float(z) > 0.5:
            return math.inf, torch.full_like(z, math.nan)
        return float((z - 1) ** 2), 2 * (z - 1)

    x = torch.zeros(1, dtype=D)
    f, g = fg(x)
    search = StrongWolfe()
    r = search(fg, x, f, g, -g, 1.0)  # the first trial x = 2 is inf
    assert_wolfe(search, f, float(g @ -g), -g, r)


@pytest.mark.parametrize("kw", [dict(c1=0.5, c2=0.4), dict(c1=0.0), dict(c2=1.0),
                                dict(max_evaluations=0), dict(max_step=-1.0),
                                dict(xtol=1.0)])
def test_line_search_refuses_bad_constants(kw):
    with pytest.raises(ValueError):
        StrongWolfe(**kw)


# --- the updates ---------------------------------------------------------------------------

def _pair(n, seed):
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=gen, dtype=D)
    H = M @ M.T + n * torch.eye(n, dtype=D)
    s = torch.randn(n, generator=gen, dtype=D)
    y = torch.randn(n, generator=gen, dtype=D)
    if float(y @ s) < 0:
        y = -y
    y = y + 0.5 * s  # y^T s > 0
    return H, s, y


@pytest.mark.parametrize("update", ["bfgs", "ssbfgs", "ssbroyden"])
@pytest.mark.parametrize("seed", range(5))
def test_update_satisfies_secant_and_stays_spd(update, seed):
    n = 12
    H, s, y = _pair(n, seed)
    ys, u = float(y @ s), H @ y
    h = float(y @ u) / ys
    b = float(s @ torch.linalg.solve(H, s)) / ys
    tau, phi = self_scaling(update, b, h, n)
    H1 = broyden_update(H, s, y, tau, phi)
    # every Broyden-family member satisfies H+ y = s exactly in exact arithmetic (v^T y = 0);
    # in float64 to a few hundred unit roundoffs of the operands' size
    assert float((H1 @ y - s).norm()) <= 1e-12 * float(H1.norm() * y.norm() + s.norm())
    assert float((H1 - H1.T).abs().max()) <= 1e-14 * float(H1.abs().max())
    assert float(torch.linalg.eigvalsh((H1 + H1.T) / 2).min()) > 0


def test_tau_phi_one_one_is_textbook_bfgs():
    """(tau, phi) = (1, 1) gives Nocedal & Wright eq. 6.17, (I - rho s y^T) H (I - rho y s^T)
    + rho s s^T, to round-off."""
    for seed in range(5):
        H, s, y = _pair(10, seed)
        rho = 1.0 / float(y @ s)
        eye = torch.eye(10, dtype=D)
        ref = (eye - rho * torch.outer(s, y)) @ H @ (eye - rho * torch.outer(y, s)) \
            + rho * torch.outer(s, s)
        got = broyden_update(H, s, y, 1.0, 1.0)
        assert float((got - ref).abs().max()) <= 1e-13 * float(ref.abs().max())
        # and the BFGS method's (tau, phi) is (1, 1) for any b, h
        assert self_scaling("bfgs", 3.0, 0.2, 10) == (1.0, 1.0)


def test_self_scaling_parameters():
    # SSBFGS: tau = min(1, 1/b)
    assert self_scaling("ssbfgs", 4.0, 1.0, 5) == (0.25, 1.0)
    assert self_scaling("ssbfgs", 0.5, 1.0, 5) == (1.0, 1.0)
    # SSBroyden with a = b h - 1 = 0 (s parallel to H y): theta = 0, BFGS direction,
    # tau = min(rho+ 1, 1) = min(1, 1/b)
    tau, phi = self_scaling("ssbroyden", 2.0, 0.5, 5)
    assert phi == 1.0 and tau == 0.5
    # a general case by hand: b = 2, h = 1 -> a = 1, c = sqrt(1/2), rho- = 1 - c,
    # theta- = rho- - 1 = -c, theta+ = 1 / rho-, (1 - b) / b = -1/2 -> theta = -1/2,
    # sigma = 1/2, rho+ = 1/2, tau = min(rho+ sigma^(1/(1-n)), sigma), phi = (1 - theta)/sigma
    n = 5
    tau, phi = self_scaling("ssbroyden", 2.0, 1.0, n)
    assert phi == pytest.approx(3.0, rel=1e-15)
    assert tau == pytest.approx(min(0.5 * 0.5 ** (1 / (1 - n)), 0.5), rel=1e-15)
    with pytest.raises(ValueError, match="unknown quasi-Newton update"):
        self_scaling("dfp", 1.0, 1.0, 3)


class ExactQuadraticSearch:
    """Exact line search on f = 1/2 x^T A x - b^T x: a = -g^T d / d^T A d."""

    def __init__(self, A):
        self.A = A

    def __call__(self, fg, x, f, g, d, step):
        a = -float(g @ d) / float(d @ self.A @ d)
        f1, g1 = fg(x + a * d)
        return LineSearchResult(a, f1, g1, 1, True, "")


@pytest.mark.parametrize("seed", range(3))
def test_bfgs_exact_search_terminates_in_n_steps_and_lbfgs_matches(seed):
    """On a strictly convex quadratic in R^n, BFGS with exact line searches reaches the
    minimiser in at most n steps (Nocedal & Wright, Theorem 6.4 and section 6.1, quadratic
    termination); L-BFGS with m >= n produces the same iterates (every search direction is
    the conjugate-gradient one, whatever the H0 scaling)."""
    n = 8
    A, b, fg = quadratic(n, seed, cond=50.0)
    search = ExactQuadraticSearch(A)
    x0 = torch.zeros(n, dtype=D)
    xs = {}
    for name, opt in [("bfgs", bfgs(search=search)), ("lbfgs", lbfgs(history=n, search=search))]:
        state = opt.init(x0, *fg(x0))
        path = []
        for _ in range(n):
            state, info = opt.step(state, fg)
            path.append(state.x)
        xs[name] = path
        # the gradient at x_n is zero up to round-off times cond(A) ||b||
        assert float(state.g.norm()) <= 1e-11 * float(b.norm())
    x_star = torch.linalg.solve(A, b)
    assert float((xs["bfgs"][-1] - x_star).norm()) <= 1e-11 * float(x_star.norm())
    for a, c in zip(xs["bfgs"], xs["lbfgs"]):
        assert float((a - c).norm()) <= 1e-11 * float(x_star.norm())


@pytest.mark.parametrize("method", ["lbfgs", "bfgs", "ssbfgs", "ssbroyden", "lm"])
@pytest.mark.parametrize("n", [2, 6])
def test_rosenbrock_converges_to_1e8(method, n):
    opt = make_optimizer(method)
    x = torch.tensor([-1.2, 1.0] * (n // 2), dtype=D)
    state = opt.init(x, *rosenbrock(x))
    for _ in range(400):
        state, info = (opt.step(state, rosenbrock, rosenbrock_rj) if method == "lm"
                       else opt.step(state, rosenbrock))
        if float((state.x - 1).norm()) < 1e-8:
            break
    assert float((state.x - 1).norm()) < 1e-8


@pytest.mark.parametrize("method", QN)
def test_failed_line_search_resets_and_goes_on(method):
    """A poisoned objective (every trial point worse) makes the search fail: the method
    reports a reset to a scaled identity, stays put, and converges once the objective is
    sound again."""
    A, b, fg = quadratic(6, 0)
    opt = make_optimizer(method)
    x = torch.zeros(6, dtype=D)
    state = opt.init(x, *fg(x))
    for _ in range(3):
        state, info = opt.step(state, fg)
        assert info.line_search_ok and not info.reset
    here = state.x.clone()

    def poisoned(z):
        f, g = fg(z)
        return f + 1e6 * float((z - here).norm()), g

    state2, info = opt.step(state, poisoned)
    assert info.reset and not info.line_search_ok and "reset" in info.message
    assert torch.equal(state2.x, here) and state2.f == state.f
    if isinstance(state2, DenseState):
        gamma = state2.gamma
        assert gamma > 0 and torch.equal(state2.H, gamma * torch.eye(6, dtype=D))
        assert state2.updates == 0 and state2.resets == 1
    else:
        assert state2.s == () and state2.gamma > 0 and state2.resets == 1
    assert not info.stalled  # it had curvature to throw away
    state3, info3 = opt.step(state2, poisoned)  # fails again from the scaled identity
    assert info3.reset and info3.stalled
    for _ in range(60):
        state3, info = opt.step(state3, fg)
    x_star = torch.linalg.solve(A, b)
    assert float((state3.x - x_star).norm()) <= 1e-8 * float(x_star.norm())


def test_skip_when_curvature_is_tiny():
    # f(x) = x0^4 / 4 + x1^2 / 2 from x0 ~ 0: the first step moves x1 only (g0 = 0), and
    # with a huge skip_eps every pair is skipped and counted
    def fg(z):
        return float(z[0] ** 4 / 4 + z[1] ** 2 / 2), torch.stack([z[0] ** 3, z[1]])

    opt = ssbroyden(skip_eps=0.99)
    x = torch.tensor([0.3, 1.0], dtype=D)
    state = opt.init(x, *fg(x))
    skipped = 0
    for _ in range(5):
        state, info = opt.step(state, fg)
        skipped += info.skipped_update
        if info.skipped_update:
            assert "skipped" in info.message
    assert skipped >= 1 and state.skips == skipped


# --- state protocol ------------------------------------------------------------------------

def _run(opt, state, fg, steps, rj=None):
    for _ in range(steps):
        state, _ = opt.step(state, fg, rj) if rj is not None else opt.step(state, fg)
    return state


@pytest.mark.parametrize("name", ["bfgs", "ssbfgs", "ssbroyden", "lbfgs", "lm", "inplace"])
def test_resume_from_dict_is_bit_identical(name):
    opt = bfgs(inplace=True) if name == "inplace" else make_optimizer(
        name, **({"history": 3} if name == "lbfgs" else {}))
    rj = rosenbrock_rj if name == "lm" else None
    x = torch.tensor([-1.2, 1.0, 0.5, -0.3], dtype=D)
    whole = _run(opt, opt.init(x, *rosenbrock(x)), rosenbrock, 14, rj)
    half = _run(opt, opt.init(x, *rosenbrock(x)), rosenbrock, 7, rj)
    buf = io.BytesIO()
    torch.save(half.to_dict(), buf)
    buf.seek(0)
    loaded = opt.state_from_dict(torch.load(buf, weights_only=True))
    resumed = _run(opt, loaded, rosenbrock, 7, rj)
    assert type(resumed) is type(whole)
    for k, v in whole.to_dict().items():
        w = resumed.to_dict()[k]
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, w), k
        elif isinstance(v, list):
            assert len(v) == len(w) and all(torch.equal(a, c) for a, c in zip(v, w)), k
        else:
            assert v == w, k


def test_state_dict_holds_only_plain_types():
    opt = lbfgs(history=2)
    x = torch.tensor([-1.2, 1.0], dtype=D)
    d = _run(opt, opt.init(x, *rosenbrock(x)), rosenbrock, 4).to_dict()
    assert d["kind"] == "lbfgs" and isinstance(d["s"], list) and len(d["s"]) == 2

    def plain(v):
        if isinstance(v, list):
            return all(plain(e) for e in v)
        return isinstance(v, (torch.Tensor, int, float, bool, str))

    assert all(plain(v) for v in d.values())
    with pytest.raises(ValueError, match="not a 'dense_quasi_newton' optimizer state"):
        DenseState.from_dict(d)
    with pytest.raises(ValueError, match="missing fields"):
        LBFGSState.from_dict({"kind": "lbfgs", "x": x})
    with pytest.raises(ValueError, match="not a 'levenberg_marquardt'"):
        LMState.from_dict({"kind": "lbfgs"})


def test_rebase_keeps_curvature():
    A, b, fg = quadratic(5, 1)
    opt = ssbroyden()
    x = torch.zeros(5, dtype=D)
    state = _run(opt, opt.init(x, *fg(x)), fg, 3)
    new = opt.rebase(state, 2.0, torch.ones(5, dtype=D))
    assert torch.equal(new.H, state.H) and new.f == 2.0 and torch.equal(new.x, state.x)


def test_step_leaves_the_old_state_intact_unless_inplace():
    A, b, fg = quadratic(5, 2)
    for inplace in (False, True):
        opt = bfgs(inplace=inplace)
        x = torch.zeros(5, dtype=D)
        s1 = _run(opt, opt.init(x, *fg(x)), fg, 2)
        H_before = s1.H.clone()
        s2, _ = opt.step(s1, fg)
        assert torch.equal(s1.H, H_before) != inplace
        assert not torch.equal(s2.H, H_before)


# --- Levenberg-Marquardt -------------------------------------------------------------------

def test_lm_step_solves_the_damped_normal_equations():
    """On a linear least-squares problem the model is exact (gain ratio 1), so the first step
    is accepted; it solves (J^T J + mu I) dx = -J^T r to round-off: residual of the normal
    equations <= ~cond(J^T J + mu I) * unit roundoff * ||J^T r||."""
    gen = torch.Generator().manual_seed(0)
    J = torch.randn(30, 6, generator=gen, dtype=D)
    t = torch.randn(30, generator=gen, dtype=D)
    rj = lambda x: (J @ x - t, J)  # noqa: E731

    def fg(x):
        r = J @ x - t
        return float(r @ r), 2 * J.T @ r

    opt = levenberg_marquardt(tau0=1e-2)
    x = torch.zeros(6, dtype=D)
    s0 = opt.init(x, *fg(x))
    s1, info = opt.step(s0, fg, rj)
    mu = info.extras["damping"]
    assert info.line_search_ok and info.extras["gain_ratio"] == pytest.approx(1.0, abs=1e-12)
    dx = s1.x - s0.x
    r0 = J @ x - t
    lhs = (J.T @ J + mu * torch.eye(6, dtype=D)) @ dx
    assert float((lhs + J.T @ r0).norm()) <= 1e-13 * float((J.T @ r0).norm())
    assert mu == pytest.approx(1e-2 * float((J.T @ J).diagonal().max()), rel=1e-15)
    # Nielsen: gain 1 -> mu / 3
    assert s1.mu == pytest.approx(mu / 3, rel=1e-15)
    assert damped_step(-torch.eye(2, dtype=D), torch.ones(2, dtype=D), 0.5) is None


def test_lm_reports_a_stall():
    """A loss no step can decrease (fg claims growth everywhere but at x): every damping is
    rejected, x stays, the step says so."""
    J = torch.eye(2, dtype=D)
    x0 = torch.ones(2, dtype=D)
    rj = lambda x: (x.clone(), J)  # noqa: E731
    fg = lambda x: (2.0 if torch.equal(x, x0) else 5.0, 2 * x)  # noqa: E731
    opt = levenberg_marquardt(max_tries=6)
    s1, info = opt.step(opt.init(x0, *fg(x0)), fg, rj)
    assert info.stalled and not info.line_search_ok and torch.equal(s1.x, x0)
    assert s1.rejections == 6 and "no damping" in info.message


# --- refusals ------------------------------------------------------------------------------

def test_refusals():
    x = torch.zeros(3, dtype=D)
    g = torch.zeros(3, dtype=D)
    with pytest.raises(ValueError, match="flat float64"):
        bfgs().init(x.float(), 0.0, g)
    with pytest.raises(ValueError, match="g must be"):
        lbfgs().init(x, 0.0, g[:2])
    with pytest.raises(ValueError, match="finite start"):
        ssbfgs().init(x, float("nan"), g)
    with pytest.raises(ValueError, match="unknown quasi-Newton update"):
        DenseQuasiNewton(update="dfp")
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        make_optimizer("adam")
    with pytest.raises(ValueError, match="history"):
        lbfgs(history=0)
    with pytest.raises(ValueError, match="skip_eps"):
        bfgs(skip_eps=-1.0)
    with pytest.raises(ValueError, match="tau0"):
        levenberg_marquardt(tau0=0.0)
    with pytest.raises(ValueError, match="num_params"):
        dense_bytes(0)


def test_dense_memory_guard_and_fallback():
    assert dense_bytes(10_000) == 800_000_000
    small = bfgs(max_bytes=800)  # P = 10 fits exactly, 11 does not
    small.init(torch.zeros(10, dtype=D), 0.0, torch.zeros(10, dtype=D))
    with pytest.raises(ValueError, match=r"P=11 parameters holds .* over the limit"):
        small.init(torch.zeros(11, dtype=D), 0.0, torch.zeros(11, dtype=D))
    with pytest.raises(ValueError, match="over the limit"):
        levenberg_marquardt(max_bytes=800).init(torch.zeros(11, dtype=D), 0.0,
                                                torch.zeros(11, dtype=D))
    opt, why = fit_dense(small, 10, fallback=lbfgs())
    assert opt is small and why == ""
    opt, why = fit_dense(small, 11, fallback=lbfgs(history=7))
    assert opt.name == "lbfgs" and "using L-BFGS (history 7) instead" in why
    with pytest.raises(ValueError, match="over the limit"):
        fit_dense(small, 11)
    assert fit_dense(lbfgs(), 10**9) == (lbfgs(), "")

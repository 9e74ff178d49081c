"""Built-in problems: references satisfy their PDEs, parameters, the registry, user files.

Tolerances (float64, eps = 2.2e-16):

- Exact references (heat, poisson): the residual is a difference of O(scale) terms that
  cancel analytically, so it is a few ulps of the largest term; 1e-12 relative to the term
  scale leaves ~1e3 ulps of margin for the sine/exp evaluations and autograd's operation order.
- Burgers: the reference is u = -2 nu phi_x / phi with the Gauss-Hermite sum
  phi_N(x, t) = sum_k w_k f(x - a s_k), a = sqrt(4 nu t), f(y) = exp(-cos(pi y) / (2 pi nu)).
  With g(s) = f(x - a s):  phi_t - nu phi_xx = (1 / 4t) sum_k w_k (2 s_k g'(s_k) - g''(s_k)),
  the Gauss-Hermite rule applied to -e^{s^2} d/ds(e^{-s^2} g'), whose exact integral is 0.
  So the quadrature form satisfies Burgers up to the quadrature error of a smooth integrand
  (200 nodes, a <= 0.14 here: far below round-off) plus float64 round-off. The round-off of the
  200-term softmax sum with exponents up to 1 / (2 pi nu) = 50 in magnitude is
  ~ 50 * 200 * eps = 2e-12 relative to the term scale; we allow 1e-10 (50x margin).
- The published 256 x 100 grid was computed independently and is accurate to ~1e-11; the
  comparison with it allows 1e-9.
- Allen-Cahn: the reference is a Fourier series in x (exact derivatives) joined in t by quintic
  Hermite polynomials between snapshots h = 5e-3 apart, whose t-derivative errs by
  O(h^5 |d6u/dt6|); the reaction's fastest rate 3 r = 15 gives |d6u/dt6| ~ 15^6 ~ 1e7, so
  ~ h^5 1e7 / 6! ~ 4e-8 absolute, ~1e-8 of the term scale r |u| ~ 5 (measured: 1.3e-11). The
  spatial truncation (interfaces of width 6e-3 resolved by 1023 modes: tail ~1e-19 for
  t >= 0.05) and the ETDRK4 step (1e-3: changes of 2e-11) are far below. We allow 1e-8.
  Its initial condition holds only up to the truncated series of x^2 cos(pi x), whose periodic
  extension has a kink: the cosine coefficients are a_n = 2 (-1)^(n+1) (1/((n+1) pi)^2 +
  1/((n-1) pi)^2), so dropping n >= 1024 changes u by at most
  (2 / pi^2)(1/1024 + 1/1022) < 4e-4 (at x = +-1): an absolute bound (CONDITION_ABS_TOL).
- Reaction-diffusion (two species): the same construction as Allen-Cahn (Fourier series in x,
  quintic Hermite in t between snapshots 5e-3 apart); its fastest rates (diffusion of the
  second mode D (4 pi)^2 = 1.6, the reaction's 2 k (v^2 + 2 u v) <= 14 at the truth) give
  |d6u/dt6| <~ 14^6 = 7.5e6, so the t-derivative errs by <~ h^5 7.5e6 / 6! = 3e-8 absolute,
  ~1e-8 of the term scale ~5 (measured: 6e-11); 128 modes leave a tail below 1e-17 and the
  step 1e-3 changes it by 3e-12 (test_reaction_diffusion.py). We allow 1e-8.
- Inverse problems are checked at their true parameters (``Problem.true_values``).
- poisson_lshape's reference is a finite-difference solution interpolated between nodes, so a
  pointwise residual by autograd does not apply; it is checked by its own test below (the
  discrete system solved to round-off, agreement with an independent coarser extrapolation).
"""

from __future__ import annotations

import dataclasses
import math
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import pinnsketch
from pinnsketch import ModelConfig, OptimConfig, RunConfig, SamplingConfig, load_problem
from pinnsketch.pde.derivatives import autograd_derivatives, required_derivatives
from pinnsketch.pde.registry import (
    builtin_problems,
    load_problem_file,
    make_problem,
    resolve_problem,
)

F64 = torch.float64
EXACT_TOL = 1e-12
# Relative residual tolerance per problem whose reference is not a closed form (see above).
QUADRATURE_TOL = {"burgers": 1e-10, "burgers_inverse": 1e-10, "allen_cahn": 1e-8,
                  "reaction_diffusion_inverse": 1e-8}
# Absolute tolerances of single conditions whose reference holds them only approximately.
CONDITION_ABS_TOL = {("allen_cahn", "initial"): 2 / math.pi**2 * (1 / 1024 + 1 / 1022)}
T_MIN = 0.05  # sqrt(t) in the Cole-Hopf reference is singular at t = 0

BUILTINS = sorted(builtin_problems())
POINTWISE = [n for n in BUILTINS if n != "poisson_lshape"]  # see the module doc


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks run several times faster on one thread on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _interior(problem, n: int, seed: int) -> torch.Tensor:
    dom = problem.domain
    if not isinstance(dom, pinnsketch.Box):
        return dom.sample_interior(n, "uniform", seed)
    lo = torch.tensor(dom.lo, dtype=F64)
    hi = torch.tensor(dom.hi, dtype=F64)
    if dom.time is not None:  # keep away from t0 (harmless for exact solutions)
        i = dom.index(dom.time)
        lo[i] = dom.lo[i] + T_MIN * (dom.hi[i] - dom.lo[i])
    g = torch.Generator().manual_seed(seed)
    return lo + torch.rand(n, dom.dim, generator=g, dtype=F64) * (hi - lo)


def _ref_derivatives(problem, points):
    pts = points.clone().requires_grad_(True)
    return autograd_derivatives(problem.domain, pts, lambda p: problem.reference(p),
                                fields=problem.fields)


def _at_truth(problem):
    """An inverse problem with its unknowns set to their true values (a forward problem)."""
    truth = {k: v for k, v in problem.true_values().items() if k in problem.unknowns()}
    assert set(truth) == set(problem.unknowns()), "an inverse problem must know its truth"
    return dataclasses.replace(problem, **truth) if truth else problem


def _equations(r) -> dict:
    return dict(r) if isinstance(r, dict) else {"pde": r}


def _term_scale(name: str, problem, d) -> float:
    """The size of the largest term of the residual."""
    if name in ("burgers", "burgers_inverse"):
        terms = [d.u_t, d.u * d.u_x, problem.nu * d.u_xx]
    elif name == "kovasznay":
        terms = [d.u * d.u_x, d.v * d.u_y, d.p_x, d.u * d.v_x, d.v * d.v_y, d.p_y, d.u_x, d.v_y,
                 (d.u_xx + d.u_yy) / problem.re, (d.v_xx + d.v_yy) / problem.re]
    elif name == "reaction_diffusion_inverse":
        terms = [d.u_t, d.v_t, problem.diffusion * d.u_xx, problem.diffusion * d.v_xx,
                 2 * problem.rate * d.u * d.v**2]
    elif name == "heat":
        terms = [d.u_t, problem.alpha * d.u_xx]
    elif name == "poisson":
        terms = [d.laplacian, problem.source(d.x, d.y)]
    elif name == "allen_cahn":
        terms = [d.u_t, problem.diffusion * d.u_xx, problem.rate * d.u, problem.rate * d.u**3]
    elif name == "wave":
        s = (problem.a * problem.c * math.pi) ** 2
        terms = [d.u_tt / s, problem.c**2 * d.u_xx / s]
    elif name == "helmholtz":
        s = problem._scale()
        terms = [d.laplacian / s, problem.k**2 * d.u / s, problem.source(d.x, d.y) / s]
    else:  # a new problem: every derivative the residual reads, and the forcing (r at u = 0)
        keys = required_derivatives([problem.residual], problem.domain)
        terms = [d.key(k) for k in keys]
        zero = pinnsketch.Derivatives(problem.domain, d.points,
                                      lambda k: torch.zeros_like(d.points[:, 0]))
        terms.append(problem.residual(zero))
    return max(float(t.detach().abs().max()) for t in terms)


def _tolerance(name: str) -> float:
    return QUADRATURE_TOL.get(name, EXACT_TOL)


def _scaled_variants(name: str):
    """Default parameters, and every float parameter scaled by 1.5 (the reference must follow;
    an unknown's truth is a float parameter of its own)."""
    cls = resolve_problem(name)
    default = make_problem(cls)
    scaled = {k: 1.5 * v for k, v in default.parameters().items() if isinstance(v, float)}
    return [default, make_problem(cls, scaled)]


@pytest.mark.parametrize("name", POINTWISE)
def test_reference_satisfies_pde(name):
    for problem in _scaled_variants(name):
        problem = _at_truth(problem)
        assert problem.has_reference()
        d = _ref_derivatives(problem, _interior(problem, 300, seed=1))
        equations = _equations(problem.residual(d))
        scale = _term_scale(name, problem, d)
        assert scale > 0.1  # the check is not vacuous
        for eq, r in equations.items():
            worst = float(r.detach().abs().max())
            assert worst <= _tolerance(name) * scale, (problem, eq, worst)


@pytest.mark.parametrize("name", BUILTINS)
def test_reference_satisfies_conditions(name):
    for problem in _scaled_variants(name):
        problem = _at_truth(problem)
        conditions = problem.conditions()
        assert conditions, f"{name} has no conditions"
        # Scale: the reference's size (each field and its gradient) inside the domain.
        d_in = _ref_derivatives(problem, _interior(problem, 200, seed=2))
        orders = [()] + ([(i,) for i in range(problem.domain.dim)] if name in POINTWISE else [])
        scale = max(float(d_in.key((f, c)).detach().abs().max()) for f in problem.fields
                    for c in orders)
        for i, cond in enumerate(conditions):
            cp = cond.sample(problem.domain, 64, "sobol", 10 + i, F64)
            assert cp.points.shape[0] > 0
            d = _ref_derivatives(problem, cp.points)
            r = cond.residual(d, cp.normals).detach()
            tol = CONDITION_ABS_TOL.get((name, cond.label), _tolerance(name) * scale)
            assert float(r.abs().max()) <= tol, (name, cond.label, float(r.abs().max()))


def test_poisson_lshape_reference():
    """The L-shape's finite-difference reference: its linear systems are solved to round-off
    (|A u - b| <= 1e-9 of the source 1, for a matrix of norm 8 / h^2 ~ 1.3e5 and u ~ 0.15 in
    float64, a few hundred ulps of the largest products), it scales with the source, and it
    agrees with an independent extrapolation from grids twice as coarse: the extrapolation's
    L2 error at n = 256 is 5e-5 (fd_poisson.lshape_reference, against n = 512 and 1024) and
    falls at least like n^(-4/3), so the n = 128 one errs by <= 5e-5 * 2^2 = 2e-4 if it falls
    like n^-2; we allow 4e-4."""
    from pinnsketch import lshape_reference

    problem = load_problem("poisson_lshape")
    fine = lshape_reference()
    assert fine.residual <= 1e-9
    ev = problem.evaluation_grid()
    pts = ev.coordinates()
    assert ev.triangles is not None and bool(problem.domain.inside(pts).all())
    u = problem.reference(pts)
    assert float(u.max()) > 0.1  # not vacuous
    coarse = lshape_reference(128)(pts)
    assert float((coarse - u).norm() / u.norm()) <= 4e-4
    scaled = load_problem("poisson_lshape", source=2.5).reference(pts)
    assert torch.allclose(scaled, 2.5 * u, rtol=1e-15, atol=0)


def test_poisson_lshape_hard_constraint_vanishes_on_the_boundary():
    """phi = (1 - x^2)(1 - y^2) r^(2/3) sin(2 theta / 3) is 0 on every edge of the L (to
    round-off of the sampled boundary points, which lie on the edges to ~1e-16), > 0 inside,
    and scales like r^(2/3) towards the re-entrant corner (exactly, up to the factor
    (1 - x^2)(1 - y^2) = 1 - O(r^2))."""
    problem = load_problem("poisson_lshape", hard=True)
    (t,) = problem.output_transforms()
    assert t.satisfies == ("boundary",)
    pts, _ = problem.domain.sample_boundary(400, "sobol", 3)
    assert float(t.phi(pts).abs().max()) <= 1e-15
    inner = problem.domain.sample_interior(400, "sobol", 4)
    inner = inner[~problem.domain.on_boundary(inner, 1e-9)]
    assert bool((t.phi(inner) > 0).all())
    ray = torch.tensor([[-1.0, -1.0]], dtype=F64) / math.sqrt(2)  # theta = 3 pi / 4
    near = t.phi(1e-4 * ray) / t.phi(1e-5 * ray)
    assert float(near) == pytest.approx(10 ** (2 / 3), rel=1e-7)


def _data_dir() -> Path:
    env = os.environ.get("PINNSKETCH_DATA")
    return Path(env) if env else Path(__file__).parents[1].parent / "shared" / "data"


def test_burgers_matches_published_grid():
    path = _data_dir() / "burgers_reference_256x100.npz"
    if not path.is_file():
        pytest.skip(f"no published Burgers grid at {path} (set PINNSKETCH_DATA)")
    data = np.load(path)
    problem = load_problem("burgers")
    grid = problem.evaluation_grid()
    assert grid.names == ("x", "t")
    x, t = (a.numpy() for a in grid.axes)
    np.testing.assert_allclose(x, data["x"].reshape(-1), rtol=0, atol=1e-15)
    np.testing.assert_allclose(t, data["t"].reshape(-1), rtol=0, atol=1e-15)
    u = problem.reference(grid.points()).reshape(grid.shape).numpy()
    assert data["usol"].shape == grid.shape
    assert np.abs(u - data["usol"]).max() <= 1e-9


# ----- parameters -----

def test_parameter_override():
    assert load_problem("burgers", nu=0.005).nu == 0.005
    p = make_problem(resolve_problem("burgers"), {"nu": "0.005"})
    assert p.nu == 0.005 and isinstance(p.nu, float)
    assert load_problem("heat", alpha="0.2", b="0").parameters() == {"alpha": 0.2, "b": 0.0,
                                                                  "hard": True}


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ValueError, match=r"no parameter 'mu'.*nu"):
        load_problem("burgers", mu=0.1)
    with pytest.raises(ValueError, match=r"no parameter 'nu'.*alpha, b"):
        make_problem(resolve_problem("heat"), {"nu": "1"})


@pytest.mark.parametrize("name, key, value", [
    ("burgers", "nu", 0.0), ("burgers", "nu", -1.0), ("burgers", "nu", "-0.01"),
    ("burgers", "nu", float("nan")), ("burgers", "nu", "nan"), ("burgers", "nu", "inf"),
    ("heat", "alpha", 0.0), ("heat", "alpha", "-2"), ("heat", "alpha", float("nan")),
    ("heat", "b", float("inf")), ("poisson", "b", float("nan")),
])
def test_bad_parameter_values_are_refused(name, key, value):
    with pytest.raises(ValueError, match=key):
        make_problem(resolve_problem(name), {key: value})


def test_unparsable_parameter_string():
    with pytest.raises(ValueError, match=r"nu='abc'.*float"):
        make_problem(resolve_problem("burgers"), {"nu": "abc"})


def test_problems_are_frozen():
    p = load_problem("burgers")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.nu = 1.0  # type: ignore[misc]


# ----- registry -----

def test_builtin_names():
    assert {"burgers", "heat", "poisson"} <= set(builtin_problems())
    for name, path in builtin_problems().items():
        assert resolve_problem(name).name == name
        assert path.is_file()


def test_unknown_name_lists_builtins():
    with pytest.raises(ValueError, match=r"unknown problem .burger.*burgers, burgers_inverse, "
                                         r"heat, helmholtz, kovasznay, poisson"):
        resolve_problem("burger")


USER_PROBLEM = '''
"""-u_xx = pi^2 sin(pi x) on [0, 1]; u(0) = 0, u_x(1) = -pi; exact u = sin(pi x)."""

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from pinnsketch import Dirichlet, Neumann, Problem, interval


def _only(points, normals, column, value):
    keep = points[:, column] == value
    return points[keep], normals[keep]


# Dirichlet/Neumann(on=...) select coordinates, i.e. both of their faces; these keep one end.
@dataclass(frozen=True)
class LeftDirichlet(Dirichlet):
    def sample(self, domain, n, method, seed, dtype):
        cp = super().sample(domain, 2 * n, method, seed, dtype)
        return type(cp)(*_only(cp.points, cp.normals, 0, domain.lo[0]))


@dataclass(frozen=True)
class RightNeumann(Neumann):
    def sample(self, domain, n, method, seed, dtype):
        cp = super().sample(domain, 2 * n, method, seed, dtype)
        return type(cp)(*_only(cp.points, cp.normals, 0, domain.hi[0]))


@dataclass(frozen=True)
class Rod(Problem):
    name: ClassVar[str] = "rod"
    equation: ClassVar[str] = "-u_xx = k^2 sin(k x)"
    k: float = math.pi

    @property
    def domain(self):
        return interval(x=(0.0, 1.0))

    def residual(self, d):
        return -d.u_xx - self.k**2 * torch.sin(self.k * d.x)

    def conditions(self):
        return (LeftDirichlet(0.0, name="left"),
                RightNeumann(lambda d: self.k * torch.cos(self.k * d.x), name="right"))

    def reference(self, points):
        return torch.sin(self.k * points[:, 0])
'''


def test_user_problem_file_loads_and_solves(tmp_path):
    path = tmp_path / "rod.py"
    path.write_text(USER_PROBLEM)
    cls = resolve_problem(str(path))
    assert cls.__name__ == "Rod" and cls.name == "rod"
    problem = make_problem(cls, {"k": "3.141592653589793"})
    # Its exact solution passes the same residual and condition checks as the built-ins.
    d = _ref_derivatives(problem, _interior(problem, 100, seed=3))
    scale = _term_scale("rod", problem, d)
    assert float(problem.residual(d).detach().abs().max()) <= EXACT_TOL * scale
    for cond, side in zip(problem.conditions(), (-1.0, 1.0), strict=True):
        cp = cond.sample(problem.domain, 8, "sobol", 0, F64)
        assert cp.points.shape[0] == 8
        assert torch.all(cp.points[:, 0] == (0.0 if side < 0 else 1.0))
        assert torch.all(cp.normals[:, 0] == side)
        dc = _ref_derivatives(problem, cp.points)
        assert float(cond.residual(dc, cp.normals).detach().abs().max()) <= EXACT_TOL * scale

    result = pinnsketch.solve(
        problem, model=ModelConfig(width=8, depth=2),
        sampling=SamplingConfig(collocation=64, boundary=8, initial=8),
        optim=OptimConfig(steps=5, lbfgs_steps=0), run=RunConfig(quiet=True, eval_every=5))
    assert [row["step"] for row in result.history] == [1, 2, 3, 4, 5]
    assert set(result.task.term_names) == {"pde", "left", "right"}
    assert math.isfinite(result.summary["l2_relative_error"])


TWO_PROBLEMS = '''
from dataclasses import dataclass

from pinnsketch import Problem


@dataclass(frozen=True)
class A(Problem):
    pass


@dataclass(frozen=True)
class B(Problem):
    pass
'''


def test_two_problem_classes_need_PROBLEM(tmp_path):
    path = tmp_path / "two.py"
    path.write_text(TWO_PROBLEMS)
    with pytest.raises(ValueError, match=r"exactly one Problem subclass.*A, B.*PROBLEM"):
        load_problem_file(path)
    chosen = tmp_path / "chosen.py"
    chosen.write_text(TWO_PROBLEMS + "\nPROBLEM = B\n")
    assert load_problem_file(chosen).__name__ == "B"


def test_file_without_problem(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text(textwrap.dedent("x = 1\n"))
    with pytest.raises(ValueError, match="found: none"):
        resolve_problem(str(path))


def test_missing_problem_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_problem(str(tmp_path / "nope.py"))

"""The network description: every part against nested autograd, every architecture under every
storage policy, held bytes against the one formula, bad input.

Tolerances (float64): the jet and nested-autograd engines evaluate the same derivatives by
different operation orders, so they agree to a few hundred ulps of the largest intermediate
(~1e-13 relative for these small networks); TOL = 1e-10 is the issue's requirement and leaves
three orders of margin. A full-rank sketch and the ``srft`` projection at full width
reconstruct through orthogonal factors / square solves (condition numbers <= 1e3 here): 1e-9.
quant8 moves each jet entry by less than 1/255 of its column's range per block with zero-mean
noise: its gradient error stays below 1/255 relative (test_storage_baselines.py's bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from storage_helpers import held_bytes as _held
from storage_helpers import relative_error as _rel

from pinnsketch import Dirichlet, Initial, OutputTransform, Periodic, Problem, interval, space_time
from pinnsketch.config import ModelConfig
from pinnsketch.memory import expected_exact_bytes, policy_held_bytes
from pinnsketch.network import (
    AffineInput,
    Dense,
    FactorizedDense,
    FieldNetworks,
    FourierFeatures,
    JetPlan,
    MLPTrunk,
    ModifiedMLPTrunk,
    Network,
    PeriodicEmbedding,
    build_network,
    function_jets,
    init_weight,
    product_jets,
)
from pinnsketch.network.dense import RWF
from pinnsketch.pde.derivatives import autograd_derivatives, required_derivatives
from pinnsketch.pde.registry import make_problem, resolve_problem
from pinnsketch.sketch.quantize import QUANT_LEVELS
from pinnsketch.storage import StorageConfig, make_engine

F64 = torch.float64
TOL = 1e-10
ROUNDOFF = 1e-9


@dataclass(frozen=True)
class TwoFields(Problem):
    """A made-up coupled system on x in [0, 1], t in [0, 1] (only its derivatives matter)."""

    name: ClassVar[str] = "two_fields"
    fields: ClassVar[tuple[str, ...]] = ("u", "v")

    @property
    def domain(self):
        return space_time(interval(x=(0.0, 1.0)), t=(0.0, 1.0))

    def residual(self, d):
        return d.u_t + d.u * d.v_x - 0.1 * d.v_xx + d.laplacian_u * d.v

    def conditions(self):
        return (Dirichlet(0.0, field="u", name="u_wall"), Dirichlet(1.0, field="v", name="v_wall"),
                Initial(lambda d: torch.sin(math.pi * d.x), field="u", name="u0"))

    def output_transforms(self):
        return (OutputTransform(g=lambda p: 1.0 + 0.0 * p[:, 0],
                                phi=lambda p: p[:, 0] * (1.0 - p[:, 0]), field="v",
                                satisfies=("v_wall",)),)


BURGERS = make_problem(resolve_problem("burgers"))
BURGERS_HARD = make_problem(resolve_problem("burgers"), {"hard": True})
TWO = TwoFields()

ARCHS = {  # name: (problem, ModelConfig fields, attach the problem's transforms)
    "plain": (BURGERS, {}, False),
    "fourier": (BURGERS, {"fourier_features": 4, "fourier_sigma": 1.5,
                          "fourier_trainable": True}, False),
    "periodic": (BURGERS, {"periodic": ("x",), "harmonics": 2}, False),
    "modified": (BURGERS, {"arch": "modified"}, False),
    "rwf": (BURGERS, {"rwf": (0.5, 0.1)}, False),
    "modified_rwf_fourier": (BURGERS, {"arch": "modified", "rwf": (1.0, 0.1),
                                       "fourier_features": 3}, False),
    "transform": (BURGERS_HARD, {}, True),
    "fields": (TWO, {}, True),
    "per_field_modified": (TWO, {"per_field": True, "arch": "modified"}, True),
}


def _net(arch: str, width: int = 8, depth: int = 3, seed: int = 0, dtype=F64):
    problem, kwargs, transform = ARCHS[arch]
    cfg = ModelConfig(width=width, depth=depth, **kwargs)
    g = torch.Generator().manual_seed(seed)
    net = build_network(cfg, problem.domain, problem.fields, generator=g, dtype=dtype)
    with torch.no_grad():  # non-zero biases and log-scales exercise every term
        for p in net.parameters():
            if p.dim() == 1:
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=F64).to(dtype))
    if transform:
        net.set_output_transforms(problem.output_transforms())
    keys = required_derivatives([problem.residual], problem.domain, problem.fields)
    return problem, net, keys


def _points(domain, n: int, seed: int = 1, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(domain.lo, dtype=F64), torch.tensor(domain.hi, dtype=F64)
    return (lo + torch.rand(n, domain.dim, generator=g, dtype=F64) * (hi - lo)).to(dtype)


def _loss_grad(problem, net, keys, pts, config, fused=True):
    eng = make_engine(net, problem.domain, keys, config, fused=fused)
    d = eng(pts)
    loss = problem.residual(d).square().mean()
    grads = torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)
    flat = torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for p, g in zip(net.parameters(), grads, strict=True)])
    return flat, torch.stack([d.key(k) for k in keys]).detach()


# --- every part: jets and values against nested autograd ---------------------------------


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_jets_equal_nested_autograd(arch):
    problem, net, _ = _net(arch)
    dom = problem.domain
    pts = _points(dom, 30)
    plan = JetPlan.from_keys([(0,), (1,), (0, 0), (0, 1), (1, 1)], dom.dim)
    jets = net.jets(pts, plan)
    assert jets.shape == (plan.num_components, 30, len(net.fields))
    x = pts.clone().requires_grad_(True)
    ref = autograd_derivatives(dom, x, net, fields=net.fields)
    for f_i, field in enumerate(net.fields):
        for key in plan.keys():
            want = ref.key((field, key)).detach()
            assert _rel(jets[plan.index(key), :, f_i].detach(), want) <= TOL, (field, key)
    # the same code with J = 1 (a few operations fused differently: round-off)
    torch.testing.assert_close(net(pts), jets[0].detach(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_parameter_gradients_through_jets_equal_nested_autograd(arch):
    problem, net, keys = _net(arch)
    pts = _points(problem.domain, 40)
    ref, _ = _loss_grad(problem, net, keys, pts, StorageConfig("autograd"))
    plan = JetPlan.from_keys(keys, problem.domain.dim)
    jets = net.jets(pts, plan)

    def compute(key):
        return jets[plan.index(key[1]), :, net.fields.index(key[0])]

    from pinnsketch.pde.derivatives import Derivatives
    loss = problem.residual(Derivatives(problem.domain, pts, compute, net.fields)).square().mean()
    got = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(net.parameters()))])
    assert _rel(got, ref) <= TOL


def test_fourier_features_values():
    g = torch.Generator().manual_seed(0)
    ff = FourierFeatures(2, 5, 3.0, generator=g, dtype=F64)
    h = torch.rand(7, 2, dtype=F64)
    B = ff.frequencies
    want = torch.cat([torch.cos(h @ B.T), torch.sin(h @ B.T)], dim=1)
    torch.testing.assert_close(ff.jets(h[None], JetPlan.value(2))[0], want, rtol=1e-14,
                               atol=1e-14)
    assert ff.out_features == 10 and not ff.trainable
    assert FourierFeatures(2, 5, 3.0, True, generator=g).trainable


def test_periodic_embedding_is_periodic_to_second_order():
    dom = space_time(interval(x=(-1.0, 3.0)), t=(0.0, 1.0))
    g = torch.Generator().manual_seed(0)
    emb = PeriodicEmbedding(dom.lo, dom.hi, (0,), harmonics=3, dtype=F64)
    net = Network([emb], MLPTrunk(emb.out_features, 8, 2, generator=g, dtype=F64),
                  Dense(8, 1, generator=g, dtype=F64))
    t = torch.rand(9, dtype=F64)
    lo = torch.stack([torch.full_like(t, -1.0), t], 1)
    hi = torch.stack([torch.full_like(t, 3.0), t], 1)
    plan = JetPlan.from_keys([(0,), (1,), (0, 0), (0, 1), (1, 1)], 2)
    a, b = net.jets(lo, plan).detach(), net.jets(hi, plan).detach()
    # 2 pi k x / L at x = lo and x = hi differ by 2 pi k exactly in exact arithmetic; the
    # float64 arguments are ~10, so the values differ by round-off
    assert float((a - b).abs().max()) <= 1e-12
    assert emb.out_features == 1 + 2 * 3 and net.periodic_coords == (0,)


def test_product_and_function_jets_closed_form():
    dom = space_time(interval(x=(0.0, 1.0)), t=(0.0, 1.0))
    pts = _points(dom, 11)
    plan = JetPlan.from_keys([(0,), (1,), (0, 0), (0, 1), (1, 1)], 2)
    x, t = pts[:, 0], pts[:, 1]
    A = function_jets(lambda p: torch.sin(p[:, 0]) * p[:, 1], pts, plan)
    B = function_jets(lambda p: torch.exp(p[:, 1]) + p[:, 0] ** 2, pts, plan)
    C = function_jets(lambda p: torch.sin(p[:, 0]) * p[:, 1] * (torch.exp(p[:, 1]) + p[:, 0] ** 2),
                      pts, plan)
    torch.testing.assert_close(product_jets(A, B, plan), C, rtol=1e-13, atol=1e-13)
    # (value, d/dx, d/dt, d2/dx2, d2/dxdt, d2/dt2) of sin(x) t
    want = torch.stack([torch.sin(x) * t, torch.cos(x) * t, torch.sin(x), -torch.sin(x) * t,
                        torch.cos(x), torch.zeros_like(x)])
    torch.testing.assert_close(A, want, rtol=1e-14, atol=1e-14)


def test_rwf_starts_at_the_plain_initialisation():
    W0 = Dense(5, 4, generator=torch.Generator().manual_seed(3), dtype=F64).weight
    fd = FactorizedDense(5, 4, RWF(1.0, 0.1), generator=torch.Generator().manual_seed(3),
                         dtype=F64)
    torch.testing.assert_close(fd.weight, W0, rtol=1e-15, atol=0)
    assert [n for n, _ in fd.named_parameters()] == ["log_scale", "direction", "bias"]
    assert not torch.allclose(fd.log_scale, torch.ones(4, dtype=F64))  # drawn around mu


def test_initialisers():
    g = torch.Generator().manual_seed(0)
    fan_out, fan_in = 300, 200
    # the std estimate from 60,000 draws is within 1% with overwhelming probability
    for name, std in (("glorot", math.sqrt(2 / 500)), ("glorot_uniform", math.sqrt(2 / 500)),
                      ("he", math.sqrt(2 / 200))):
        w = init_weight(name, fan_out, fan_in, g)
        assert abs(float(w.std()) / std - 1) < 0.01, name
    assert float(init_weight("glorot_uniform", fan_out, fan_in, g).abs().max()) <= math.sqrt(6 / 500)


def test_mlp_is_the_plain_network():
    from pinnsketch.model import MLP

    net = MLP((-1.0, 0.0), (1.0, 1.0), width=6, depth=2, generator=torch.Generator().manual_seed(0))
    cfg_net = build_network(ModelConfig(width=6, depth=2), BURGERS.domain,
                            generator=torch.Generator().manual_seed(0))
    pts = _points(BURGERS.domain, 5, dtype=torch.float32)
    assert torch.equal(net(pts), cfg_net(pts))
    assert len(net.layers) == 3 and net.depth == 2 and net.width == 6


# --- every architecture under every storage policy ---------------------------------------

EXACT_POLICIES = {
    "exact": StorageConfig("exact"),
    "checkpoint": StorageConfig("checkpoint"),
    "sketch_truncated_svd": StorageConfig("sketch", rank=10_000, method="truncated_svd"),
    "sketch_three_sketch": StorageConfig("sketch", rank=10_000, method="three_sketch"),
    "projection_srft_full": StorageConfig("projection", rank=10_000, family="srft"),
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_policy_runs_the_same_network(arch):
    problem, net, keys = _net(arch)
    pts = _points(problem.domain, 50)
    ref, ref_vals = _loss_grad(problem, net, keys, pts, StorageConfig("autograd"))
    for name, cfg in EXACT_POLICIES.items():
        for fused in (True, False):
            got, vals = _loss_grad(problem, net, keys, pts, cfg, fused)
            assert _rel(vals, ref_vals) <= TOL, (name, fused)
            assert _rel(got, ref) <= (TOL if name in ("exact", "checkpoint") else ROUNDOFF), \
                (name, fused)
    got, vals = _loss_grad(problem, net, keys, pts, StorageConfig("quant8"))
    assert _rel(vals, ref_vals) <= TOL  # the forward is exact; only backward sees the codes
    # each stored pre-activation element is off by less than one quantization step (its
    # block-column range / 255); the gradient sees that error through every stored
    # activation (up to 4 here: hidden layers and the modified MLP's encoders), so its
    # relative error stays within a few steps (a sanity bound, not a sharp one)
    assert 0 < _rel(got, ref) < 4 / QUANT_LEVELS
    got, vals = _loss_grad(problem, net, keys, pts, StorageConfig("sketch", rank=2))
    assert _rel(vals, ref_vals) <= TOL and bool(torch.isfinite(got).all())


@pytest.mark.parametrize("config", [StorageConfig("exact"),
                                    StorageConfig("sketch", rank=3, method="range_finder"),
                                    StorageConfig("quant8"),
                                    StorageConfig("projection", rank=3)],
                         ids=["exact", "sketch", "quant8", "projection"])
@pytest.mark.parametrize("arch", ["plain", "modified", "modified_rwf_fourier"])
def test_fused_and_generic_segments_agree(config, arch):
    # The same seeds and the same kept representation: the hand-fused Functions (ActLinear
    # and kin on the plain MLP, GatedDense on the modified MLP's gated layers) and the
    # generic segment differ only in the order of float64 operations.
    problem, net, keys = _net(arch, width=12)
    pts = _points(problem.domain, 700)
    fused, _ = _loss_grad(problem, net, keys, pts, config, fused=True)
    generic, _ = _loss_grad(problem, net, keys, pts, config, fused=False)
    assert _rel(generic, fused) <= ROUNDOFF


def test_generic_segment_blocks(monkeypatch):
    # With the block target at its floor, 1,300 points take three row blocks (512, 512,
    # 276); blocks only reorder sums over points.
    import pinnsketch.storage.functions as functions

    monkeypatch.setattr(functions, "_BLOCK_ELEMENTS", 1)
    problem, net, keys = _net("modified")
    pts = _points(problem.domain, 1300)
    ref, _ = _loss_grad(problem, net, keys, pts, StorageConfig("autograd"))
    got, _ = _loss_grad(problem, net, keys, pts, StorageConfig("exact"))
    assert _rel(got, ref) <= TOL


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_held_bytes_equal_the_formula(arch):
    problem, net, keys = _net(arch, dtype=torch.float32)
    n = 64
    pts = _points(problem.domain, n, dtype=torch.float32)
    plan = JetPlan.from_keys(keys, problem.domain.dim)
    widths = net.stored_widths
    count = len(widths)
    for cfg, rank in ((StorageConfig("exact"), None), (StorageConfig("quant8"), None),
                      (StorageConfig("projection", rank=3), 3),
                      (StorageConfig("sketch", rank=tuple(2 + i for i in range(count)),
                                     method="three_sketch"), tuple(2 + i for i in range(count))),
                      (StorageConfig("sketch", rank=4, exact_value=True), 4)):
        want = policy_held_bytes(cfg.policy, n, widths, plan.num_components, plan.dim, 4, rank,
                                 cfg.method, cfg.exact_value)
        assert _held(net, problem, keys, pts, cfg) == want, (arch, cfg)
    assert _held(net, problem, keys, pts, StorageConfig("checkpoint")) <= pts.numel() * 4
    assert expected_exact_bytes(net, plan, n, 4) == _held(net, problem, keys, pts,
                                                          StorageConfig("exact"))


def test_modified_mlp_stores_its_encoders_once():
    problem, net, keys = _net("modified", width=8, depth=4)
    assert [n for n, _ in net.stored] == ["encoder_u", "encoder_v", "hidden1", "hidden2",
                                          "hidden3", "hidden4"]
    eng = make_engine(net, problem.domain, keys,
                      StorageConfig("sketch", rank=3, measure_error=True))
    eng(_points(problem.domain, 40))
    assert eng.ranks == (3,) * 6 and len(eng.last_sketch_errors) == 6
    assert all(0 < e < 1 for e in eng.last_sketch_errors)
    eng.set_ranks((8,) * 6)
    eng(_points(problem.domain, 40))
    assert max(eng.last_sketch_errors) <= ROUNDOFF
    with pytest.raises(ValueError, match="6 stored activations .encoder_u, encoder_v"):
        eng.set_ranks((4,) * 4)


def test_field_networks_name_their_stored_activations():
    _, net, _ = _net("per_field_modified", depth=2)
    assert isinstance(net, FieldNetworks)
    assert net.stored[0] == ("u.encoder_u", 8) and net.stored[-1] == ("v.hidden2", 8)
    assert net.fields == ("u", "v")


# --- several fields, transforms, conditions leaving the loss -----------------------------


def test_several_fields_in_residuals_and_solve(tmp_path):
    from pinnsketch import OptimConfig, RunConfig, SamplingConfig, solve

    keys = required_derivatives([TWO.residual], TWO.domain, TWO.fields)
    assert ("v", (0, 0)) in keys and ("u", (1,)) in keys and ("v", ()) in keys
    result = solve(TWO, model=ModelConfig(width=8, depth=2, per_field=True),
                   sampling=SamplingConfig(collocation=64, boundary=16, initial=16),
                   optim=OptimConfig(steps=3, lbfgs_steps=2),
                   storage=StorageConfig("exact"), run=RunConfig(quiet=True, out=str(tmp_path / "r")))
    s = result.summary
    assert s["fields"] == ["u", "v"] and s["conditions_in_loss"] == ["u_wall", "u0"]
    assert result.task.predict(TWO.domain.scale_to_unit(torch.zeros(5, 2, dtype=F64))).shape == (5, 2)
    assert (tmp_path / "r" / "solution_v.png").is_file()


def test_hard_burgers_satisfies_its_conditions_for_any_network():
    problem, net, _ = _net("transform")
    t = torch.rand(20, dtype=F64)
    x = torch.rand(20, dtype=F64) * 2 - 1
    u0 = net(torch.stack([x, torch.zeros_like(x)], 1))[:, 0].detach()
    torch.testing.assert_close(u0, -torch.sin(math.pi * x), rtol=0, atol=1e-15)
    for end in (-1.0, 1.0):
        ub = net(torch.stack([torch.full_like(t, end), t], 1))[:, 0].detach()
        assert float(ub.abs().max()) <= 1e-15  # sin(pi) ~ 1.2e-16


def test_conditions_satisfied_by_the_network_leave_the_loss():
    from pinnsketch import OptimConfig, SamplingConfig
    from pinnsketch.tasks.pinn import PINNTask

    def task(problem, **model):
        return PINNTask(problem, ModelConfig(width=6, depth=2, **model),
                        SamplingConfig(collocation=32, boundary=8, initial=8), OptimConfig(),
                        StorageConfig())

    hard = task(BURGERS_HARD)
    assert hard.term_names == ("pde",)
    assert any("'initial' holds exactly by the output transform" in n for n in hard.notes)

    @dataclass(frozen=True)
    class Ring(Problem):
        name: ClassVar[str] = "ring"

        @property
        def domain(self):
            return space_time(interval(x=(0.0, 2.0)), t=(0.0, 1.0))

        def residual(self, d):
            return d.u_t + d.u_x

        def conditions(self):
            return (Periodic(coord="x"), Initial(lambda d: torch.sin(math.pi * d.x)))

    assert task(Ring()).term_names == ("pde", "periodic", "initial")
    periodic = task(Ring(), periodic=("x",))
    assert periodic.term_names == ("pde", "initial")
    assert periodic.notes == ("condition 'periodic' holds exactly by the periodic embedding of "
                              "x: left out of the loss",)
    with pytest.raises(ValueError, match=r"periodic.*left the loss"):
        PINNTask(Ring(), ModelConfig(width=6, depth=2, periodic=("x",)),
                 SamplingConfig(collocation=32), OptimConfig(weights=(("periodic", 2.0),)),
                 StorageConfig())


# --- bad input ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bad(Problem):
    name: ClassVar[str] = "bad"
    fields: ClassVar[tuple[str, ...]] = ("u",)
    reads: str = "u"
    transform: str = ""

    @property
    def domain(self):
        return space_time(interval(x=(0.0, 1.0)), t=(0.0, 1.0))

    def residual(self, d):
        return d.u_t - d[self.reads]

    def output_transforms(self):
        if self.transform == "shape":
            return (OutputTransform(g=lambda p: p, phi=lambda p: p[:, 0]),)
        if self.transform == "label":
            return (OutputTransform(g=lambda p: p[:, 0], phi=lambda p: p[:, 0],
                                    satisfies=("walls",)),)
        return ()


@pytest.mark.parametrize("problem, model, match", [
    (_Bad(reads="w_xx"), {}, r"unknown derivative 'w_xx': use a field \('u',\)"),
    (_Bad(transform="shape"), {}, r"output transform g of field 'u' must return one value per "
                                  r"point, shape \(7,\).*got \(7, 2\)"),
    (_Bad(transform="label"), {}, "satisfies condition 'walls', which is not one of its"),
    (_Bad(), {"periodic": ("z",)}, "periodic coordinate 'z' is not a coordinate of this domain; "
                                   "its coordinates: x, t"),
])
def test_bad_problems_refused_before_any_work(problem, model, match):
    from pinnsketch import OptimConfig, SamplingConfig
    from pinnsketch.tasks.pinn import PINNTask

    with pytest.raises(ValueError, match=match):
        PINNTask(problem, ModelConfig(width=4, depth=1, **model), SamplingConfig(collocation=8),
                 OptimConfig(), StorageConfig())


def test_fields_declared_but_unused_or_clashing_refused():
    from pinnsketch import OptimConfig, SamplingConfig
    from pinnsketch.tasks.pinn import PINNTask

    @dataclass(frozen=True)
    class Unused(TwoFields):
        def residual(self, d):
            return d.u_t

        def conditions(self):
            return ()

        def output_transforms(self):
            return ()

    with pytest.raises(ValueError, match=r"field\(s\) v are declared in fields \('u', 'v'\) but "
                                         "no residual or condition reads them"):
        PINNTask(Unused(), ModelConfig(width=4, depth=1), SamplingConfig(collocation=8),
                 OptimConfig(), StorageConfig())

    @dataclass(frozen=True)
    class Clash(TwoFields):
        fields: ClassVar[tuple[str, ...]] = ("u", "x")

    with pytest.raises(ValueError, match="field name 'x' collides with the coordinate 'x'"):
        PINNTask(Clash(), ModelConfig(width=4, depth=1), SamplingConfig(collocation=8),
                 OptimConfig(), StorageConfig())

    @dataclass(frozen=True)
    class Ambiguous(TwoFields):
        def conditions(self):
            return (Dirichlet(0.0),)

    with pytest.raises(ValueError, match="several fields.*name the one it constrains"):
        PINNTask(Ambiguous(), ModelConfig(width=4, depth=1), SamplingConfig(collocation=8),
                 OptimConfig(), StorageConfig())


@pytest.mark.parametrize("kwargs, match", [
    ({"arch": "resnet"}, "unknown architecture 'resnet'; valid architectures: mlp, modified"),
    ({"fourier_features": 8, "fourier_sigma": 0.0}, "fourier_sigma must be a finite number > 0"),
    ({"fourier_sigma": -2.0}, "fourier_sigma must be a finite number > 0, got -2.0"),
    ({"init": "xavier"}, "unknown initialiser 'xavier'; valid initialisers: glorot, "
                         "glorot_uniform, he"),
    ({"rwf": (1.0, -0.1)}, "RWF sigma=-0.1 must be >= 0"),
    ({"rwf": (1.0,)}, r"model.rwf must be \(mu, sigma\)"),
    ({"periodic": "x"}, "model.periodic must be a tuple of coordinate names"),
    ({"harmonics": 0}, "model.harmonics must be an integer >= 1"),
])
def test_bad_model_config_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_bad_parts_refused():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="sigma=0 must be a finite number > 0"):
        FourierFeatures(2, 4, 0, generator=g)
    with pytest.raises(ValueError, match=r"periodic coordinates \(2,\) must be distinct indices"):
        PeriodicEmbedding((0.0, 0.0), (1.0, 1.0), (2,))
    with pytest.raises(ValueError, match="the trunk takes 3 features but the input maps give 2"):
        Network([AffineInput((0.0, 0.0), (1.0, 1.0))], MLPTrunk(3, 4, 1, generator=g),
                Dense(4, 1, generator=g))
    with pytest.raises(ValueError, match="output map must be 4 -> 2"):
        Network([AffineInput((0.0, 0.0), (1.0, 1.0))], ModifiedMLPTrunk(2, 4, 1, generator=g),
                Dense(4, 1, generator=g), fields=("u", "v"))
    with pytest.raises(ValueError, match="field name 'u_x' must be a letter"):
        Network([AffineInput((0.0, 0.0), (1.0, 1.0))], MLPTrunk(2, 4, 1, generator=g),
                Dense(4, 1, generator=g), fields=("u_x",))


def test_network_passed_to_solve_and_resume(tmp_path):
    from pinnsketch import OptimConfig, RunConfig, SamplingConfig, resume, solve

    def net():
        g = torch.Generator().manual_seed(0)
        dom = BURGERS.domain
        return Network([AffineInput(dom.lo, dom.hi), FourierFeatures(2, 3, 1.0, generator=g)],
                       ModifiedMLPTrunk(6, 6, 2, generator=g), Dense(6, 1, generator=g))

    out = tmp_path / "run"
    run = RunConfig(quiet=True, out=str(out), eval_every=2)
    sampling = SamplingConfig(collocation=32, boundary=8, initial=8)
    s = solve(BURGERS, model=net(), sampling=sampling, optim=OptimConfig(steps=2, lbfgs_steps=0),
              run=run).summary
    assert s["arch"] == "Network" and s["steps"] == 2
    with pytest.raises(ValueError, match="solved with a Network object.*resume.*model=net"):
        resume(out, steps=4)
    assert resume(out, steps=4, model=net()).summary["steps"] == 4


@pytest.mark.parametrize("factorized", [False, True])
def test_gradcheck_gated_dense(factorized):
    from pinnsketch.activations import get_activation
    from pinnsketch.storage import ExactOptions
    from pinnsketch.storage.gated import gated_dense

    plan = JetPlan.from_keys([(0,), (1,), (0, 1), (1, 1)], dim=2)  # J = 5, a mixed second
    g = torch.Generator().manual_seed(0)
    dense = (FactorizedDense(3, 2, RWF(0.5, 0.2), generator=g, dtype=F64) if factorized
             else Dense(3, 2, generator=g, dtype=F64))
    with torch.no_grad():
        dense.bias.copy_(torch.randn(2, generator=g, dtype=F64))
    Z, Pu, Pv = (torch.randn(5, 4, 3, generator=g, dtype=F64, requires_grad=True)
                 for _ in range(3))
    act, ex = get_activation("tanh"), ExactOptions()

    def fn(z, pu, pv, *params):
        return gated_dense(act, plan, dense, [z, pu, pv], [ex, ex, ex], [(z,), (pu,), (pv,)])

    assert torch.autograd.gradcheck(fn, (Z, Pu, Pv, *dense.parameters()))


def test_model_config_round_trip_through_config_json_and_resume(tmp_path):
    from pinnsketch import OptimConfig, RunConfig, SamplingConfig, resume, solve
    from pinnsketch.config import to_dict
    from pinnsketch.results import read_json

    model = ModelConfig(width=6, depth=2, arch="modified", fourier_features=2,
                        fourier_sigma=1.5, periodic=("x",), harmonics=2, rwf=(1.0, 0.1),
                        init="glorot_uniform")
    assert ModelConfig(**to_dict(model)) == model  # lists in JSON become tuples again
    out = tmp_path / "run"
    solve(BURGERS, model=model, sampling=SamplingConfig(collocation=32, boundary=8, initial=8),
          optim=OptimConfig(steps=2, lbfgs_steps=0), run=RunConfig(quiet=True, out=str(out),
                                                                   eval_every=2))
    assert read_json(out / "config.json")["model"] == to_dict(model)
    assert resume(out, steps=4).summary["steps"] == 4


def test_cli_network_flags():
    from pinnsketch.cli import _build_parser, _model_config

    parser, _ = _build_parser()

    def config(*argv):
        return _model_config(parser.parse_args(["solve", "burgers", *argv]))

    assert config("--arch", "modified", "--fourier-features", "64:2.5", "--fourier-trainable",
                  "--periodic", "x,t", "--periodic", "y", "--harmonics", "3", "--rwf", "1:0.1",
                  "--init", "he", "--network-per-field") == ModelConfig(
        arch="modified", fourier_features=64, fourier_sigma=2.5, fourier_trainable=True,
        periodic=("x", "t", "y"), harmonics=3, rwf=(1.0, 0.1), init="he", per_field=True)
    assert config() == ModelConfig()
    for argv, match in ((("--fourier-features", "64"), "expects two values A:B"),
                        (("--fourier-features", "six:1"), "the count 'six' is not an integer"),
                        (("--fourier-features", "8:0"), "fourier_sigma must be a finite number"),
                        (("--fourier-trainable",), "needs --fourier-features"),
                        (("--harmonics", "2"), "needs --periodic"),
                        (("--rwf", "1"), "--rwf expects two values"),
                        (("--arch", "resnet"), "unknown architecture 'resnet'")):
        with pytest.raises(ValueError, match=match):
            config(*argv)


def test_ema_on_shared_encoders():
    # beta = 0: the EMA sketch is the current batch's three-sketch with the test matrices of
    # call 0, for the encoders (kept once, read by every gated layer) as for the layers.
    problem, net, keys = _net("modified")
    ema = make_engine(net, problem.domain, keys,
                      StorageConfig("sketch", rank=3, method="ema", beta=0.0, seed=5))
    for step in range(2):
        pts = _points(problem.domain, 40, seed=20 + step)
        eng = make_engine(net, problem.domain, keys,
                          StorageConfig("sketch", rank=3, method="three_sketch", seed=5))
        got = torch.autograd.grad(problem.residual(ema(pts)).square().mean(),
                                  list(net.parameters()))
        want = torch.autograd.grad(problem.residual(eng(pts)).square().mean(),
                                   list(net.parameters()))
        assert _rel(torch.cat([g.reshape(-1) for g in got]),
                    torch.cat([g.reshape(-1) for g in want])) <= ROUNDOFF
    assert sorted(ema._ema) == list(range(len(net.stored)))

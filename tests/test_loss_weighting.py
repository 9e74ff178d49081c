"""Adaptive loss weighting in training (issue 13, item 4): each rule, as applied by the PINN
task, equals its formula computed by hand from the same residuals (float64, round-off), its
state survives a checkpoint, a second-order phase freezes it, and bad settings are refused.
"""

from __future__ import annotations

import math

import pytest
import torch

from pinnsketch import load_problem, resume, solve
from pinnsketch.cli import main
from pinnsketch.config import (
    ModelConfig,
    OptimConfig,
    PhaseConfig,
    RunConfig,
    SamplingConfig,
    WeightingConfig,
)
from pinnsketch.storage import StorageConfig
from pinnsketch.tasks.pinn import PINNTask

F64 = torch.float64
ROUNDOFF = 1e-12


pytestmark = pytest.mark.usefixtures("one_thread")


def _task(weighting: WeightingConfig) -> PINNTask:
    return PINNTask(load_problem("heat", hard=False), ModelConfig(width=8, depth=2),
                    SamplingConfig(collocation=120, boundary=20, initial=20),
                    OptimConfig(steps=5, lbfgs_steps=0, weighting=weighting),
                    StorageConfig(), seed=2, dtype=F64)


def _residuals(task: PINNTask, batch) -> dict[str, torch.Tensor]:
    out = {}
    for name in task.term_names:
        pts, nrm = batch.sets[name]
        out[name] = task._terms(name, pts, nrm)[name].detach().reshape(-1)
    return out


def test_gradient_norm_balancing_follows_its_rule():
    """Step 0 measures ||grad L_i|| of every unweighted term and sets
    lambda_i = alpha + (1 - alpha) sum_j ||grad L_j|| / ||grad L_i||; the loss weighs the
    terms by it from that step on."""
    task = _task(WeightingConfig("gradnorm", every=3, alpha=0.5))
    batch = task.sample(0)
    norms = {}
    for name in task.term_names:
        task.model.zero_grad()
        pts, nrm = batch.sets[name]
        r = task._terms(name, pts, nrm)[name]
        r.pow(2).mean().backward()
        norms[name] = float(torch.sqrt(sum(p.grad.pow(2).sum() for p in task.model.parameters()
                                           if p.grad is not None)))
    task.model.zero_grad()
    task.before_step(0)
    terms = task.backward(batch)
    lam = {n: 0.5 + 0.5 * sum(norms.values()) / norms[n] for n in task.term_names}
    assert terms["loss"] == pytest.approx(sum(lam[n] * terms[n] for n in lam), rel=ROUNDOFF)
    columns, _ = task.after_step(0, terms)
    for n in lam:
        assert columns[f"weight_{n}"] == pytest.approx(lam[n], rel=ROUNDOFF)
    task.before_step(1)  # not a balancing step: the weights stay
    assert task.backward(batch)["loss"] == pytest.approx(
        sum(lam[n] * terms[n] for n in lam), rel=ROUNDOFF)


def test_causal_weights_follow_their_formula():
    """PDE term = (1/M) sum_s w_s L_s, L_s the mean squared residual of slice s,
    w_s = exp(-eps sum_{k<s} L_k)."""
    eps, m = 0.7, 4
    task = _task(WeightingConfig("causal", eps=eps, slices=m))
    batch = task.sample(0)
    r = _residuals(task, batch)
    t = batch.sets["pde"][0][:, 1]
    idx = (t * m).floor().long().clamp(0, m - 1)  # t in [0, 1]
    L = torch.stack([r["pde"][idx == s].pow(2).mean() for s in range(m)])
    w = torch.exp(-eps * torch.cat([torch.zeros(1, dtype=F64), torch.cumsum(L, 0)[:-1]]))
    pde = float((w * L).mean())
    terms = task.backward(batch)
    assert terms["pde"] == pytest.approx(float(r["pde"].pow(2).mean()), rel=ROUNDOFF)
    assert terms["loss"] == pytest.approx(pde + terms["boundary"] + terms["initial"],
                                          rel=ROUNDOFF)


def test_attention_weights_follow_their_rule():
    """lambda starts at 0 and becomes gamma lambda + eta |r| / max |r| after each committed
    step; the PDE term is mean((lambda r)^2)."""
    gamma, eta = 0.5, 0.2
    task = _task(WeightingConfig("rba", gamma=gamma, eta=eta))
    batch = task.sample(0)
    r0 = _residuals(task, batch)["pde"]
    task.before_step(0)
    terms = task.backward(batch)
    assert terms["loss"] == pytest.approx(terms["boundary"] + terms["initial"], rel=ROUNDOFF)
    task.after_step(0, terms)
    lam = eta * r0.abs() / r0.abs().max()
    assert torch.allclose(task.weighting.attention, lam, rtol=ROUNDOFF, atol=0)
    task.model.zero_grad()
    task.before_step(1)
    terms = task.backward(batch)  # same weights: the parameters did not move
    pde = float((lam * r0).pow(2).mean())
    assert terms["loss"] == pytest.approx(pde + terms["boundary"] + terms["initial"],
                                          rel=ROUNDOFF)


def test_an_abandoned_step_proposes_nothing():
    task = _task(WeightingConfig("rba"))
    batch = task.sample(0)
    task.before_step(0)
    task.backward(batch)  # no after_step: the step was abandoned
    assert task.weighting.attention is None


@pytest.mark.parametrize("weighting", [WeightingConfig("gradnorm", every=2),
                                       WeightingConfig("causal", slices=4),
                                       WeightingConfig("rba")])
def test_an_interrupted_weighted_run_resumes_exactly(tmp_path, interrupted_run, weighting):
    """Ctrl-C inside Adam step 6 keeps steps 1-5 with the weighting's state of step 5 (the
    abandoned step's proposals are dropped); the resumed run equals the uninterrupted one."""

    def run(out):
        return solve(load_problem("heat"), model=ModelConfig(width=6, depth=2),
                     sampling=SamplingConfig(collocation=64, boundary=8, initial=8,
                                             resample_every=4),
                     optim=OptimConfig(phases=(PhaseConfig("adam", 9), PhaseConfig("bfgs", 4)),
                                       weighting=weighting),
                     run=RunConfig(dtype="float64", eval_every=3, quiet=True, out=str(out)))

    full = run(tmp_path / "full")
    interrupted_run(lambda: run(tmp_path / "part"), 6)
    resumed = resume(tmp_path / "part", quiet=True)
    assert [r["step"] for r in resumed.history] == [r["step"] for r in full.history]
    losses = [r["loss"] for r in full.history]
    assert [r["loss"] for r in resumed.history] == pytest.approx(losses, rel=ROUNDOFF)


def test_a_second_order_phase_freezes_the_weighting():
    result = solve(load_problem("heat", hard=False), model=ModelConfig(width=6, depth=2),
                   sampling=SamplingConfig(collocation=64, boundary=8, initial=8),
                   optim=OptimConfig(phases=(PhaseConfig("adam", 3), PhaseConfig("bfgs", 3)),
                                     weighting=WeightingConfig("rba")),
                   run=RunConfig(dtype="float64", quiet=True))
    task = result.task
    assert not task.weighting.active
    for row in result.history[3:]:  # the plain mean squares: the objective a search needs
        parts = row["pde"] + row["boundary"] + row["initial"]
        assert row["loss"] == pytest.approx(parts, rel=ROUNDOFF)
        assert math.isfinite(row["loss"])


@pytest.mark.parametrize("argv, message", [
    (["solve", "poisson", "--weighting", "causal"], "need a time coordinate"),
    (["solve", "heat", "--weighting", "focal"], "unknown loss weighting 'focal'"),
    (["solve", "heat", "--weighting", "rba:beta=2"], "options are KEY=VALUE"),
    (["solve", "heat", "--weighting", "gradnorm:alpha=1"], "weighting.alpha must be"),
    (["solve", "heat", "--weighting", "causal", "--chunk-size", "10"], "drop --chunk-size"),
    (["solve", "kovasznay", "--weighting", "rba"], "a system of 3 equations"),
    (["solve", "reaction_diffusion_inverse", "--weighting", "causal"], "a system of 2 equations"),
])
def test_bad_weightings_are_refused(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_gradient_norm_balancing_weighs_every_term_of_a_system():
    """gradnorm balances the terms of a system and its data terms by name ("pde:u", ...)."""
    task = PINNTask(load_problem("reaction_diffusion_inverse", n_obs=31),
                    ModelConfig(width=6, depth=2),
                    SamplingConfig(collocation=60, boundary=10, initial=10),
                    OptimConfig(steps=2, lbfgs_steps=0,
                                weighting=WeightingConfig("gradnorm", every=1, alpha=0.0)),
                    StorageConfig(), seed=1, dtype=F64)
    task.before_step(0)
    terms = task.backward(task.sample(0))
    columns, _ = task.after_step(0, terms)
    weights = {k[len("weight_"):]: v for k, v in columns.items() if k.startswith("weight_")}
    assert set(weights) == set(task.term_names) >= {"pde:u", "pde:v", "data:u", "data:v"}
    norms = task._term_gradient_norms(task.sample(0))
    total = sum(norms.values())  # alpha = 0: lambda_i = sum_j ||g_j|| / ||g_i||
    for name, w in weights.items():
        assert w == pytest.approx(total / norms[name], rel=1e-9)

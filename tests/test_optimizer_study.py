"""The optimizer study harness (benchmarks/optimizers.py): its residual Jacobian, its loss and
its hard constraints are the mathematics they claim, and one tiny run writes its files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from pinnsketch import ModelConfig, OptimConfig, SamplingConfig, StorageConfig
from pinnsketch.tasks.pinn import PINNTask

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import optimizers as study  # noqa: E402

D = torch.float64


def _objective(problem: str, hard: bool, policy: str = "exact", seed: int = 0):
    task = PINNTask(study.soft_problem(problem), ModelConfig(width=6, depth=2),
                    SamplingConfig(collocation=120, boundary=30, initial=20),
                    OptimConfig(), StorageConfig(policy=policy), seed=seed, dtype=D)
    with torch.no_grad():  # random biases too, so no term is trivially zero
        gen = torch.Generator().manual_seed(seed + 1)
        for p in task.model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=D))
    obj = study.Objective(task, hard)
    obj.set_batch(task.sample(0))
    return obj, parameters_to_vector(task.model.parameters()).detach().clone()


@pytest.mark.parametrize("problem", ["burgers", "heat", "poisson"])
@pytest.mark.parametrize("hard", [False, True])
def test_jacobian_matches_torch_func_and_the_loss(problem, hard):
    """The per-example Jacobian equals vmap(jacrev) to round-off, ||r||^2 is the loss the
    gradient path computes, and 2 J^T r is its gradient (float64: ~1e-15 relative, allowed
    1e-12 for sums over a few hundred terms)."""
    obj, x = _objective(problem, hard)
    r, J = obj.rj(x)
    r_ref, J_ref = obj.rj_reference(x)
    assert torch.allclose(r, r_ref, rtol=0, atol=1e-12 * float(r_ref.abs().max()))
    assert torch.allclose(J, J_ref, rtol=0, atol=1e-12 * float(J_ref.abs().max()))
    f, g = obj.fg(x)
    assert f == pytest.approx(float(r @ r), rel=1e-12)
    assert float((2 * J.T @ r - g).norm()) <= 1e-12 * float(g.norm())


@pytest.mark.parametrize("problem", ["burgers", "heat", "poisson"])
def test_hard_constraint_holds_on_the_conditions(problem):
    """u = A + B N satisfies the problem's boundary and initial conditions for any N."""
    obj, x = _objective(problem, True)
    task = obj.task
    A, B = obj.AB
    batch = task.sample(3)
    for cond in task.conditions:
        pts, nrm = batch.sets[cond.label]
        u = A(pts) + B(pts) * task.predict(pts)
        d = study.Derivatives(task.domain, pts, lambda k, u=u: u)
        assert float(cond.residual(d, nrm).abs().max()) <= 1e-14


def test_hard_and_engine_paths_agree_on_the_residual():
    """The pool residual (plain jet forward, no gradient) equals the training residual."""
    obj, x = _objective("burgers", True, policy="autograd")
    pts = obj.batch.sets["pde"][0]
    r, _ = obj.rj(x)
    scale = (1.0 / pts.shape[0]) ** 0.5
    assert torch.allclose(obj.pde_residual(pts) * scale, r, rtol=0, atol=1e-13)


def test_one_tiny_run_writes_its_files(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "OUT", tmp_path)
    args = ["--problem", "heat", "--width", "6", "--depth", "2", "--points", "200",
            "--boundary", "40", "--initial", "40", "--adam-steps", "20", "--adam-eval-every",
            "10", "--method", "ssbroyden", "--iterations", "12", "--eval-every", "4",
            "--rad-every", "5", "--rad-pool", "600", "--hard", "--tag", "tiny", "--quiet"]
    assert study.main(args) == 0
    summary = json.loads((tmp_path / "tiny.json").read_text())
    assert summary["iterations"] == 12 and summary["method"] == "ssbroyden"
    assert summary["final_l2"] < 1.0 and "t_1e-03" in summary
    assert (tmp_path / "tiny.csv").read_text().startswith("phase,iteration,wall_s")
    assert study.main(["--summarize"]) == 0
    assert "| tiny | heat |" in (tmp_path / "summary.md").read_text()

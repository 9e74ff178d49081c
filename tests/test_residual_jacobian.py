"""The residual Jacobian of a PINN loss (pinnsketch.tasks.jacobian), the input of the
Levenberg-Marquardt phase.

Oracle: every row of J, recomputed as the gradient of that one scaled residual through the
task's own nested-autograd engine (a path that shares no code with torch.func); and the loss
and gradient of ``task.backward``: ||r||^2 = L and 2 J^T r = grad L. All in float64, so the
only differences are round-off in sums of a few hundred terms (allowed: 1e-12 relative).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pinnsketch import PointData, load_problem
from pinnsketch.config import ModelConfig, OptimConfig, SamplingConfig
from pinnsketch.storage import StorageConfig
from pinnsketch.tasks.pinn import PINNTask

F64 = torch.float64
ROUNDOFF = 1e-12

CASES = {
    "heat, conditions in the loss": ("heat", {"hard": False}, ModelConfig(width=5, depth=2)),
    "burgers, hard constraints": ("burgers", {}, ModelConfig(width=5, depth=2)),
    "allen_cahn, a Periodic pair": ("allen_cahn", {}, ModelConfig(width=5, depth=2)),
    "system with unknowns and data": ("reaction_diffusion_inverse", {"n_obs": 7},
                                      ModelConfig(width=5, depth=2)),
    "modified MLP, Fourier features, RWF": ("heat", {"hard": False},
                                            ModelConfig(width=5, depth=2, arch="modified",
                                                        fourier_features=3, rwf=(0.5, 0.1))),
}


def _with_point_data(problem):
    """The problem with one more condition: u given at five points (PointData looks each
    evaluated point up among its own, which may not run point by point under vmap)."""
    base = type(problem)
    pts = [[0.2, 0.1], [0.4, 0.3], [0.6, 0.5], [0.8, 0.7], [0.5, 0.9]]

    @dataclasses.dataclass(frozen=True)
    class WithData(base):
        def conditions(self):
            return (*base.conditions(self), PointData(points=pts, values=[0.1, 0.2, 0.3, 0.2, 0.1],
                                                      name="measured"))

    WithData.name = base.name
    return WithData(**{f.name: getattr(problem, f.name) for f in dataclasses.fields(problem)})


def _task(case: str) -> PINNTask:
    name, params, model = CASES[case]
    problem = load_problem(name, **params)
    if case == "heat with PointData":
        problem = _with_point_data(problem)
    task = PINNTask(problem, model,
                    SamplingConfig(collocation=9, boundary=4, initial=4),
                    OptimConfig(steps=1, lbfgs_steps=0), StorageConfig(policy="autograd"),
                    seed=1, dtype=F64)
    with torch.no_grad():  # non-zero biases, so that every parameter matters
        gen = torch.Generator().manual_seed(7)
        for p in task.model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=F64))
    return task


def test_a_problem_with_point_data_trains_and_lm_names_what_it_cannot_do(tmp_path):
    """A PointData condition (a lookup of each point among its data, by a k-d tree) is usable
    in a problem, and trains; under torch.func its lookup cannot run, so the LM Jacobian is
    refused with a message naming the set and the optimizers that remain."""
    CASES["heat with PointData"] = ("heat", {"hard": False}, ModelConfig(width=5, depth=2))
    try:
        task = _task("heat with PointData")
    finally:
        del CASES["heat with PointData"]
    assert "measured" in task.set_names
    batch = task.sample(0)
    task.model.zero_grad()
    assert torch.isfinite(torch.tensor(task.backward(batch)["measured"]))
    with pytest.raises(ValueError, match="set 'measured' for optimizer 'lm'.*use ssbroyden"):
        task.residual_jacobian(batch)


def _rows_by_autograd(task: PINNTask, batch) -> torch.Tensor:
    """Each scaled residual's gradient in the parameters, one backward pass per row, in the
    order of residual_jacobian (sets, then terms, then points)."""
    params = list(task.model.parameters())
    rows = []
    for name in task.set_names:
        pts, aux = batch.sets[name]
        terms = task._terms(name, pts.to(F64), aux.to(F64))
        for term, r in terms.items():
            scale = (task.term_weights[term] / batch.count(name)) ** 0.5
            for value in (scale * r.reshape(-1)).unbind():
                grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
                rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                       for g, p in zip(grads, params)]))
    return torch.stack(rows)


def _order_by_point(task: PINNTask, batch, J: torch.Tensor) -> torch.Tensor:
    """residual_jacobian orders the rows of a set point by point (its terms interleaved: a
    system's equations, the data's fields); reorder them term by term, as the oracle has them."""
    blocks, start = [], 0
    for name in task.set_names:
        pts, aux = batch.sets[name]
        terms = task._terms(name, pts.to(F64), aux.to(F64))
        t, m = len(terms), next(iter(terms.values())).numel()
        block = J[start: start + t * m]
        blocks.append(block.reshape(m, t, -1).transpose(0, 1).reshape(t * m, -1))
        start += t * m
    assert start == J.shape[0]
    return torch.cat(blocks)


@pytest.mark.parametrize("case", CASES)
def test_every_row_is_the_gradient_of_its_residual(case):
    task = _task(case)
    batch = task.sample(0)
    r, J = task.residual_jacobian(batch)
    ref = _rows_by_autograd(task, batch)
    J = _order_by_point(task, batch, J)
    assert J.shape == ref.shape
    assert float((J - ref).abs().max()) <= ROUNDOFF * float(ref.abs().max())


@pytest.mark.parametrize("case", CASES)
def test_the_residuals_give_the_loss_and_its_gradient(case):
    task = _task(case)
    batch = task.sample(0)
    r, J = task.residual_jacobian(batch)
    task.model.zero_grad()
    terms = task.backward(batch)
    g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                   for p in task.model.parameters()])
    assert float(r @ r) == pytest.approx(terms["loss"], rel=ROUNDOFF)
    assert float((2 * J.T @ r - g).norm()) <= ROUNDOFF * float(g.norm())


def test_a_frozen_parameter_gets_a_zero_column():
    """A parameter that is not trained (requires_grad False) must not move: its column is 0."""
    task = _task("heat, conditions in the loss")
    first = next(task.model.parameters())
    first.requires_grad_(False)
    _, J = task.residual_jacobian(task.sample(0))
    assert torch.count_nonzero(J[:, : first.numel()]) == 0
    assert torch.count_nonzero(J[:, first.numel():]) > 0

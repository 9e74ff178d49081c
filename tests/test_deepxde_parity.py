"""DeepXDE's versions of the built-in problems equal pinnsketch's, to float64 round-off.

Guards the fairness of benchmarks/deepxde_compare.py and benchmarks/time_to_accuracy.py:
with identical weights and points, DeepXDE's PDE residual (nested autograd through
``dde.grad``), its loss terms and their parameter gradient must equal pinnsketch's (Taylor-mode
jets, ``exact`` storage). Both evaluate the same function in float64 by different operation
orders, so they agree to round-off: float64 eps is 2.2e-16, and a few thousand operations
through an 8-layer network amplify it to well below 1e-10 relative.

Skipped when DeepXDE (the ``compare`` extra) is absent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

os.environ["DDE_BACKEND"] = "pytorch"  # before deepxde is imported: no config file is written
dde = pytest.importorskip("deepxde")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from deepxde_problems import SUPPORTED, deepxde_data, deepxde_net  # noqa: E402

from pinnsketch import ModelConfig, OptimConfig, SamplingConfig, StorageConfig, load_problem  # noqa: E402
from pinnsketch.tasks.pinn import PINNTask  # noqa: E402

RTOL = 1e-10


@pytest.fixture
def float64_deepxde():
    """DeepXDE in float64 for one test; its global float setting and torch's are restored."""
    if dde.backend.backend_name != "pytorch":
        pytest.skip(f"deepxde was imported with backend {dde.backend.backend_name}")
    saved_torch, saved_bits = torch.get_default_dtype(), dde.config.real.precision
    dde.config.real.set_float64()
    try:
        yield
    finally:
        {16: dde.config.real.set_float16, 32: dde.config.real.set_float32,
         64: dde.config.real.set_float64}[saved_bits]()
        torch.set_default_dtype(saved_torch)


def _task(name: str) -> PINNTask:
    task = PINNTask(load_problem(name, hard=False), ModelConfig(width=12, depth=4),
                    SamplingConfig(collocation=96, boundary=24, initial=24, resample_every=0),
                    OptimConfig(), StorageConfig(policy="exact"), seed=3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # non-zero biases, so that every weight matters
        for layer in task.model.layers:
            layer.bias.copy_(0.3 * torch.randn(layer.bias.shape, generator=gen, dtype=torch.float64))
    return task


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    scale = float(b.detach().abs().max())
    torch.testing.assert_close(a, b, rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize("name", SUPPORTED)
def test_residual_loss_and_gradient_match(name, float64_deepxde):
    task = _task(name)
    batch = task.sample(0)
    data = deepxde_data(task.problem, batch)
    net = deepxde_net(task.model)
    X, y_train, aux = data.train_next_batch()

    # The networks are one function.
    x = torch.as_tensor(X)
    _close(net(x), task.model(x))

    # The PDE residual on the interior points (DeepXDE keeps the rows after the condition points).
    interior = batch.sets["pde"][0]
    n_cond = X.shape[0] - interior.shape[0]
    torch.testing.assert_close(x[n_cond:], interior, rtol=0, atol=0)
    dde.grad.clear()
    xg = x.clone().requires_grad_()
    r_dde = data.pde(xg, net(xg))[n_cond:].reshape(-1)
    dde.grad.clear()
    r_ps = task.problem.residual(task.engines["pde"](interior))
    _close(r_dde.detach(), r_ps.detach())

    # Every loss term (PDE, then the conditions in order) and the gradient of their sum.
    model = dde.Model(data, net)
    model.compile("adam", lr=1e-3, verbose=0)
    losses = model.outputs_losses_train(X, y_train, aux)[1]
    losses.sum().backward()
    task.model.zero_grad(set_to_none=True)
    terms = task.backward(batch)
    ps_terms = torch.tensor([terms[n] for n in task.term_names], dtype=torch.float64)
    _close(losses.detach(), ps_terms)
    for mine, theirs in zip(task.model.layers, net.linears, strict=True):
        _close(theirs.weight.grad, mine.weight.grad)
        _close(theirs.bias.grad, mine.bias.grad)

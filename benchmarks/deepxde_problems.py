"""The built-in problems written for DeepXDE (PyTorch backend), on pinnsketch's network and points.

For a side-by-side comparison to be fair, DeepXDE must train the same network on the same
points with the same loss. This module builds, from a pinnsketch :class:`Problem` (its
parameters, domain and conditions) and a pinnsketch batch and MLP:

- the PDE residual written the DeepXDE way, with ``dde.grad.jacobian`` / ``dde.grad.hessian``
  (nested reverse-mode autograd, DeepXDE's derivative engine), from the problem's parameters:

      burgers:  u_t + u u_x - nu u_xx
      heat:     u_t - alpha u_xx
      poisson:  (-(u_xx + u_yy) - f(x, y)) / pi^2   (f = the problem's own ``source``)

- the data object ``dde.data.TimePDE`` / ``dde.data.PDE`` whose PDE points are exactly the
  pinnsketch interior points (``anchors``, no points sampled by DeepXDE) and whose conditions
  are ``dde.icbc.PointSetBC`` on exactly the pinnsketch boundary / initial points, with
  targets g computed by the problem's own conditions (u - g = 0). DeepXDE's loss is then
  sum_terms mean(residual^2), the same as pinnsketch's with unit weights;
- a ``dde.nn.FNN`` with pinnsketch's weights copied in and pinnsketch's input map
  x -> A x + c as its feature transform, so both networks compute the same function.

Import DeepXDE only through :func:`import_deepxde`: it selects the PyTorch backend by the
environment variable DDE_BACKEND (otherwise DeepXDE writes a config file into the home
directory) and names the extra to install when DeepXDE is missing.

    >>> import os; os.environ["DDE_BACKEND"] = "pytorch"
    >>> dde = import_deepxde()   # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from types import ModuleType

import numpy as np
import torch

from pinnsketch import Dirichlet, Initial, Problem
from pinnsketch.model import MLP
from pinnsketch.pde.derivatives import Derivatives
from pinnsketch.tasks.pinn import PINNBatch

__all__ = ["import_deepxde", "deepxde_pde", "deepxde_geometry", "deepxde_data", "deepxde_net",
           "deepxde_model", "condition_targets", "SUPPORTED"]

SUPPORTED = ("burgers", "heat", "poisson")


def import_deepxde() -> ModuleType:
    """``deepxde`` on its PyTorch backend (sets DDE_BACKEND=pytorch if unset).

    Raises:
        ImportError: DeepXDE is not installed (install the ``compare`` extra).
        RuntimeError: DDE_BACKEND names another backend, or DeepXDE was imported with one.
    """
    backend = os.environ.setdefault("DDE_BACKEND", "pytorch")
    if backend != "pytorch":
        raise RuntimeError(f"DDE_BACKEND={backend!r}: the comparison needs DDE_BACKEND=pytorch")
    try:
        import deepxde as dde
    except ImportError as err:
        raise ImportError("DeepXDE is not installed: pip install '.[compare]' "
                          "(deepxde==1.15.*)") from err
    if dde.backend.backend_name != "pytorch":
        raise RuntimeError(f"DeepXDE was imported with backend {dde.backend.backend_name!r}; "
                           "start a new process with DDE_BACKEND=pytorch")
    return dde


def deepxde_pde(problem: Problem):
    """The residual of ``problem`` as a DeepXDE ``pde(x, y)`` on (N, d) inputs, (N, 1) outputs.

    Raises:
        ValueError: a problem without a DeepXDE version here (valid: :data:`SUPPORTED`).
    """
    dde = import_deepxde()
    jac, hess = dde.grad.jacobian, dde.grad.hessian
    name = problem.name
    if name == "burgers":
        nu = problem.nu

        def pde(x, y):
            u_x, u_t = jac(y, x, i=0, j=0), jac(y, x, i=0, j=1)
            return u_t + y * u_x - nu * hess(y, x, i=0, j=0)
    elif name == "heat":
        alpha = problem.alpha

        def pde(x, y):
            return jac(y, x, i=0, j=1) - alpha * hess(y, x, i=0, j=0)
    elif name == "poisson":
        def pde(x, y):
            lap = hess(y, x, i=0, j=0) + hess(y, x, i=1, j=1)
            return (-lap - problem.source(x[:, 0:1], x[:, 1:2])) / math.pi**2
    else:
        raise ValueError(f"no DeepXDE version of problem {name!r}; valid: {', '.join(SUPPORTED)}")
    return pde


def deepxde_geometry(problem: Problem):
    """``Interval x TimeDomain`` (space-time, time last) or ``Rectangle`` for the problem's box."""
    dde = import_deepxde()
    dom = problem.domain
    if dom.time is not None:
        if dom.names != ("x", dom.time):
            raise ValueError(f"expected coordinates (x, time), got {dom.names}")
        return dde.geometry.GeometryXTime(dde.geometry.Interval(dom.lo[0], dom.hi[0]),
                                          dde.geometry.TimeDomain(dom.lo[1], dom.hi[1]))
    if dom.dim != 2:
        raise ValueError(f"expected a 2-D spatial domain, got coordinates {dom.names}")
    return dde.geometry.Rectangle(list(dom.lo), list(dom.hi))


def condition_targets(problem: Problem, label: str, points: torch.Tensor) -> torch.Tensor:
    """g at ``points`` for the Dirichlet / initial condition ``label`` (residual u - g).

    Computed by the problem's own condition with u = 0: g = -residual. (N,) float64.

    Raises:
        ValueError: the condition is not a Dirichlet or initial condition.
    """
    cond = next(c for c in problem.conditions() if c.label == label)
    if not isinstance(cond, (Dirichlet, Initial)):
        raise ValueError(f"condition {label!r} is a {type(cond).__name__}; only Dirichlet and "
                         "initial conditions map to DeepXDE PointSetBC here")
    pts = points.to(torch.float64)
    d = Derivatives(problem.domain, pts, lambda key: torch.zeros_like(pts[:, 0]))
    return -cond.residual(d, torch.zeros_like(pts))


def deepxde_data(problem: Problem, batch: PINNBatch):
    """DeepXDE data with exactly ``batch``'s points: interior as anchors, conditions as PointSetBC.

    DeepXDE evaluates the PDE on all its points (condition points first) and keeps the part
    after the condition points, so the PDE term is the mean over the interior points only.
    """
    dde = import_deepxde()
    real = dde.config.real(np)
    bcs = []
    for label, (pts, _) in batch.sets.items():
        if label == "pde":
            continue
        g = condition_targets(problem, label, pts).numpy().reshape(-1, 1)
        bcs.append(dde.icbc.PointSetBC(pts.numpy().astype(real), g.astype(real)))
    interior = batch.sets["pde"][0].numpy().astype(real)
    geom = deepxde_geometry(problem)
    kw = dict(num_domain=0, num_boundary=0, anchors=interior, train_distribution="uniform")
    if problem.domain.time is not None:
        return dde.data.TimePDE(geom, deepxde_pde(problem), bcs, num_initial=0, **kw)
    return dde.data.PDE(geom, deepxde_pde(problem), bcs, **kw)


def deepxde_net(mlp: MLP):
    """A ``dde.nn.FNN`` computing the same function as ``mlp`` (weights copied, same dtype).

    The FNN has mlp's layer sizes and activation; ``mlp``'s input map x * in_scale + in_shift
    becomes the FNN's feature transform.
    """
    dde = import_deepxde()
    sizes = [mlp.layers[0].in_features] + [layer.out_features for layer in mlp.layers]
    net = dde.nn.FNN(sizes, mlp.activation.name, "Glorot normal")
    dtype = mlp.layers[0].weight.dtype
    net.to(dtype)
    with torch.no_grad():
        for src, dst in zip(mlp.layers, net.linears, strict=True):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    scale, shift = mlp.in_scale.detach().clone(), mlp.in_shift.detach().clone()
    net.apply_feature_transform(lambda x: x * scale + shift)
    return net


def deepxde_model(problem: Problem, mlp: MLP, batch: PINNBatch, lr: float, gamma: float):
    """A compiled ``dde.Model``: Adam at ``lr``, learning rate times ``gamma`` every step.

    pinnsketch's schedule lr * decay^(step / steps) is ``gamma = decay ** (1 / steps)``.
    """
    dde = import_deepxde()
    model = dde.Model(deepxde_data(problem, batch), deepxde_net(mlp))
    model.compile("adam", lr=lr, decay=("exponential", gamma), verbose=0)
    return model

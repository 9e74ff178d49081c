"""The residual vector of a PINN loss and its Jacobian in the parameters, for Gauss-Newton-type
methods (Levenberg-Marquardt, :mod:`pinnsketch.optim.gauss_newton`).

In a second-order phase the loss is L = sum_t c_t sum_i r_t(x_i)^2 with c_t = w_t / N_t (the
term's weight over its set's global count, :meth:`PINNTask.backward`), so the vector
r = (sqrt(c_t) r_t(x_i))_{t, i} has L = ||r||^2, and J = dr / dtheta (M x P, float64, the
columns in the order of ``model.parameters()``, zero for a parameter that is not trained).

The fields' derivatives in the points come from torch.func (jacfwd, twice for second
derivatives) of the network's plain forward pass, so the problem's own residual code runs
on them unchanged and reverse mode over the parameters (jacrev) gives J. The interior
residual at x_i depends on x_i alone, so its rows are per-example gradients: vmap over the
points of jacrev of one point's residuals, O(N P) work (the per-sample-gradient recipe of
torch.func; Goodfellow, arXiv 1510.01799, 2015). So are the rows of a condition or of the
data, except where a residual pairs points (``Periodic``) or cannot run point by point under
vmap (e.g. a lookup in ``PointData``): those sets are small and come from jacrev of the
whole set at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call, jacfwd, jacrev, vmap

from pinnsketch.pde.conditions import Periodic
from pinnsketch.pde.derivatives import Derivatives
from pinnsketch.pde.equations import PDE

if TYPE_CHECKING:
    from pinnsketch.tasks.pinn import PINNBatch, PINNTask

__all__ = ["residual_jacobian"]


class _SetResiduals(nn.Module):
    """The scaled residuals of one point set as a function of the network's parameters (a
    module, so that ``functional_call`` substitutes them, unknown parameters included)."""

    def __init__(self, task: PINNTask, name: str, scales: dict[str, float]):
        super().__init__()
        self.model = task.model
        self._task, self._name, self._scales = task, name, scales

    def forward(self, points: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        terms = self._task._terms(self._name, points, aux, engine=self._derivatives)
        return torch.cat([terms[t].reshape(-1) * s for t, s in self._scales.items()])

    def _derivatives(self, points: torch.Tensor) -> Derivatives:
        """Lazy derivatives of the fields at ``points`` (n, d) by torch.func."""
        task, model = self._task, self.model

        def fields_at(z: torch.Tensor) -> torch.Tensor:  # (d,) -> (F,)
            return model(z.unsqueeze(0)).reshape(-1)

        cache: dict[int, torch.Tensor] = {}

        def compute(key):
            field, coords = key
            f, order = task.fields.index(field), len(coords)
            if order not in cache:
                fn = (fields_at, jacfwd(fields_at), jacfwd(jacfwd(fields_at)))[order]
                cache[order] = vmap(fn)(points)  # (n, F), (n, F, d), (n, F, d, d)
            return cache[order][(slice(None), f, *coords)]

        return Derivatives(task.domain, points, compute, task.fields)


def residual_jacobian(task: PINNTask, batch: PINNBatch, chunk: int = 1024
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(r (M,), J (M, P)) of ``task``'s loss on ``batch`` at the model's current parameters,
    float64 (module doc); the interior set in chunks of ``chunk`` points.

    Raises:
        ValueError: the problem's code cannot run under torch.func (e.g. it calls ``.item()``
            or branches on values); the message says which optimizers remain.
    """
    params = {f"model.{k}": v.detach() for k, v in task.model.named_parameters()}
    trained = [v.requires_grad for _, v in task.model.named_parameters()]
    dev, dtype = task.device, task.dtype
    rows_r, rows_j = [], []
    for name in task.set_names:
        pts, aux = batch.sets[name]
        if pts.shape[0] == 0:
            continue
        count = batch.count(name)
        terms = [t for t in task.term_names if t == name or t.startswith(name + ":")]
        scales = {t: (task.term_weights[t] * task.weighting.factor(t) / count) ** 0.5
                  for t in terms}
        module = _SetResiduals(task, name, scales)

        def residuals(p, x, a, module=module):
            return functional_call(module, p, (x, a))

        paired = name != PDE and name != "data" and isinstance(
            task.conditions[task.set_names.index(name) - 1], Periodic)
        try:
            rows = None
            if not paired:  # a paired residual compares a point with its image: whole set
                try:
                    rows = _per_point(residuals, params, pts, aux, chunk, dev, dtype, trained)
                except (RuntimeError, NotImplementedError):
                    if name == PDE:  # the interior set is too large for the whole-set route
                        raise
            r, jac = rows or _whole_set(residuals, params, pts, aux, dev, dtype, trained)
        except (RuntimeError, NotImplementedError) as exc:
            raise ValueError(f"{task.problem.name}: the residual Jacobian of set {name!r} for "
                             f"optimizer 'lm' could not be formed with torch.func ({exc}); the "
                             "problem's code may call .item() or branch on values: use "
                             "ssbroyden, ssbfgs, bfgs or lbfgs") from None
        rows_r.append(r)
        rows_j.append(jac)
    return (torch.cat(rows_r).double(), torch.cat(rows_j).double())


def _per_point(residuals, params, pts, aux, chunk, dev, dtype, trained):
    """Rows point by point (vmap of jacrev over one point's residuals), in chunks: O(n P)."""
    def one(p, x, a):
        return residuals(p, x.unsqueeze(0), a.unsqueeze(0))

    rs, js = [], []
    for part_p, part_a in zip(pts.split(chunk), aux.split(chunk)):
        x, a = part_p.to(dev, dtype), part_a.to(dev, dtype)
        r = vmap(one, in_dims=(None, 0, 0))(params, x, a)  # (n, T)
        rs.append(r.reshape(-1))
        js.append(_flat(vmap(jacrev(one), in_dims=(None, 0, 0))(params, x, a), r.numel(),
                        trained))
    return torch.cat(rs), torch.cat(js)


def _whole_set(residuals, params, pts, aux, dev, dtype, trained):
    """Rows of a whole (small) set by jacrev of its residual vector: O(n^2) work."""
    x, a = pts.to(dev, dtype), aux.to(dev, dtype)
    r = residuals(params, x, a).reshape(-1)
    return r, _flat(jacrev(residuals)(params, x, a), r.numel(), trained)


def _flat(jac: dict[str, torch.Tensor], rows: int, trained: list[bool]) -> torch.Tensor:
    """The per-parameter Jacobian blocks as one (rows, P) matrix; untrained columns zero."""
    blocks = [j.reshape(rows, -1) if keep else torch.zeros_like(j).reshape(rows, -1)
              for j, keep in zip(jac.values(), trained, strict=True)]
    return torch.cat(blocks, dim=1)

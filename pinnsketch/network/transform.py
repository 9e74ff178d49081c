"""The jet rule of an output transform (hard constraint) u = g(x) + phi(x) N(x).

The transform itself is declared by a problem (:class:`~pinnsketch.pde.constraints.
OutputTransform`). Its jets are exact: those of g and phi come from nested autograd on the
two functions of the points (:func:`~pinnsketch.network.jets.function_jets`), the product by
the Leibniz rule:

    u0 = g0 + phi0 N0,  u_i = g_i + phi_i N0 + phi0 N_i,
    u_ij = g_ij + phi_ij N0 + phi_i N_j + phi_j N_i + phi0 N_ij.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pinnsketch._types import Jets, Points
from pinnsketch.network.jets import JetPlan, function_jets, product_jets
from pinnsketch.pde.constraints import OutputTransform

__all__ = ["OutputTransform", "transform_jets", "apply_transforms", "check_transforms"]


def transform_jets(t: OutputTransform, points: Points, N: Jets, plan: JetPlan | None) -> Jets:
    """Jets (J, n) of g + phi N from the jets (J, n) of N (``plan=None``: values (n,))."""
    G = function_jets(t.g, points, plan, f"output transform g of field {t.field!r}")
    P = function_jets(t.phi, points, plan, f"output transform phi of field {t.field!r}")
    return G + product_jets(P, N, plan)


def check_transforms(transforms: Sequence[OutputTransform], fields: Sequence[str]) -> None:
    """Refuse transforms of undeclared fields or two transforms of one field."""
    seen = set()
    for t in transforms:
        if not isinstance(t, OutputTransform):
            raise ValueError(f"output transforms must be OutputTransform objects, got {t!r}")
        if t.field not in fields:
            raise ValueError(f"output transform of field {t.field!r}: not a field of this "
                             f"network; its fields: {', '.join(fields)}")
        if t.field in seen:
            raise ValueError(f"two output transforms of field {t.field!r}; give one per field")
        seen.add(t.field)


def apply_transforms(transforms: Sequence[OutputTransform], fields: Sequence[str],
                     points: Points, out: Jets, plan: JetPlan | None) -> Jets:
    """Output jets (J, n, F) with each transformed field's column replaced by g + phi N."""
    by_field = {t.field: t for t in transforms}
    cols = [transform_jets(by_field[f], points, out[..., i], plan) if f in by_field
            else out[..., i]
            for i, f in enumerate(fields)]
    return torch.stack(cols, dim=-1)

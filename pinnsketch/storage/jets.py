"""Taylor-mode jets in the storage policies: the hand-written VJP of the activation jets, and
the plain jet forward of a network (the test oracle).

The jet layout (:class:`JetPlan`) and the plain jet rules (:func:`activation_jets`, ...) live
in :mod:`pinnsketch.network.jets`, where every part of a network is written with them; they
are re-exported here. :func:`activation_jets_vjp` is the analytic vector-Jacobian product
of :func:`activation_jets` that the fused custom autograd Functions of
:mod:`pinnsketch.storage.functions` call block by block.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pinnsketch._types import Jets, Points
from pinnsketch.activations import Activation
from pinnsketch.network.jets import JetPlan, activation_jets, activation_order

__all__ = ["JetPlan", "input_jets", "activation_jets", "activation_order", "activation_jets_vjp",
           "jet_forward_reference"]


def input_jets(net, points: Points, plan: JetPlan) -> Jets:
    """Jets (J, N, w) of the network's input maps at ``points`` (for the plain MLP the scaled
    input x * in_scale + in_shift: value, in_scale_i e_i, 0). Differentiable in ``points``."""
    return net.features(points, plan)


def activation_jets_vjp(act: Activation, Z: Jets, dH: Jets, plan: JetPlan,
                        ds: tuple[Tensor, ...] | None = None, out: Jets | None = None,
                        scratch: Tensor | None = None) -> Jets:
    """Vector-Jacobian product of :func:`activation_jets`: dZ from dH, analytically.

    With s1, s2, s3 the derivatives of s at z0:

        dz0  = s1 dh0 + s2 (sum_i z_i dh_i + sum_(i,j) z_ij dh_ij) + s3 sum_(i,j) z_i z_j dh_ij
        dz_i = s1 dh_i + sum_(i,j) s2 z_j dh_ij + sum_(j,i) s2 z_j dh_ji   (twice for (i, i))
        dz_ij = s1 dh_ij.

    Written with in-place and ``out=`` ops only: with ``out`` and ``scratch`` given it
    allocates nothing (the fused Functions call it once per block of points).

    Args:
        act: the activation.
        Z: (J, N, w) pre-activation jets.
        dH: (J, N, w) cotangent of the post-activation jets.
        ds: (s, s1, s2, s3) at Z[0] if already computed (order ``activation_order(plan,
            backward=True)``).
        out: a (J, N, w) tensor (a view is fine) to write the result into (no autograd).
        scratch: a (2, N, w) work buffer (a view is fine); allocated when None.

    Returns:
        (J, N, w) cotangent of Z (``out`` when given).
    """
    if ds is None:
        ds = act.derivatives(Z[0], activation_order(plan, backward=True))
    nf = len(plan.firsts)
    s1 = ds[1]
    dZ = torch.mul(s1, dH, out=out) if out is not None else s1 * dH  # every leading term
    if not nf:
        return dZ
    if scratch is None:
        scratch = Z.new_empty(2, *Z.shape[1:])
    acc, tmp = scratch[0], scratch[1]
    torch.mul(Z[1], dH[1], out=acc)  # sum of z_c dh_c over every derivative component c
    for c in range(2, Z.shape[0]):
        acc.addcmul_(Z[c], dH[c])
    dZ[0].addcmul_(ds[2], acc)
    for b, (i, j) in enumerate(plan.seconds):
        ci, cj, cij = 1 + plan.firsts.index(i), 1 + plan.firsts.index(j), 1 + nf + b
        zi, zj, dh = Z[ci], Z[cj], dH[cij]
        torch.mul(zi, zj, out=tmp).mul_(dh)
        dZ[0].addcmul_(ds[3], tmp)  # s3 z_i z_j dh_ij
        torch.mul(ds[2], dh, out=tmp)
        dZ[ci].addcmul_(tmp, zj)
        dZ[cj].addcmul_(tmp, zi)  # ci == cj for (i, i): the term counts twice
    return dZ


def jet_forward_reference(net, points: Points, plan: JetPlan) -> Tensor:
    """Output jets of a network by plain differentiable torch ops: (J, N) for a single field,
    (J, N, F) for several. ``net.jets`` with the per-field axis dropped for one field.

    The test oracle of the storage engines; every intermediate is kept by autograd as usual.
    """
    jets = net.jets(points, plan)
    return jets[..., 0] if jets.shape[-1] == 1 else jets

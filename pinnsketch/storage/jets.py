"""Taylor-mode jets of an MLP: the value and the needed input derivatives, in one forward pass.

A jet of a layer is a stacked tensor ``(J, N, w)``: component 0 is the value, then the first
derivatives d/dx_i for ``plan.firsts``, then the second derivatives d2/dx_i dx_j for
``plan.seconds`` (i <= j). A linear layer maps every component by W and adds the bias to the
value only; an elementwise activation s maps a jet of z by the chain rule

    h0 = s(z0),   h_i = s'(z0) z_i,   h_ij = s''(z0) z_i z_j + s'(z0) z_ij.

The input jet of h0 = x * in_scale + in_shift is (h0, in_scale_i e_i, 0). A second
derivative (i, j) needs the first derivatives i and j in the jet, so :meth:`JetPlan.from_keys`
adds them even when the residual does not read them.

Everything here is plain differentiable torch, except :func:`activation_jets_vjp`, the
hand-written vector-Jacobian product used by the custom autograd Functions of
:mod:`pinnsketch.storage.functions`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from pinnsketch._types import Jets, Points
from pinnsketch.activations import Activation
from pinnsketch.checks import is_int
from pinnsketch.pde.derivatives import DerivativeKey

__all__ = ["JetPlan", "input_jets", "activation_jets", "activation_jets_vjp",
           "jet_forward_reference"]


@dataclass(frozen=True)
class JetPlan:
    """Which jet components a forward pass carries, in which order.

    Components: 0 the value, ``1 + a`` the first derivative along ``firsts[a]``,
    ``1 + len(firsts) + b`` the second derivative along the pair ``seconds[b]``.

    Attributes:
        dim: number of input coordinates d.
        firsts: sorted coordinate indices of the first derivatives carried.
        seconds: sorted pairs (i, j), i <= j, of the second derivatives carried.

    >>> plan = JetPlan.from_keys([(), (1,), (0, 0)], dim=2)
    >>> plan.firsts, plan.seconds, plan.num_components, plan.index((0, 0))
    ((0, 1), ((0, 0),), 4, 3)
    """

    dim: int
    firsts: tuple[int, ...]
    seconds: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not is_int(self.dim) or self.dim < 1:
            raise ValueError(f"JetPlan.dim must be a positive int, got {self.dim!r}")
        if tuple(sorted(set(self.firsts))) != tuple(self.firsts):
            raise ValueError(f"JetPlan.firsts must be sorted and distinct, got {self.firsts}")
        for i in self.firsts:
            if not 0 <= i < self.dim:
                raise ValueError(f"first-derivative index {i} outside [0, {self.dim})")
        pairs = tuple(tuple(p) for p in self.seconds)
        if tuple(sorted(set(pairs))) != pairs or any(len(p) != 2 or p[0] > p[1] for p in pairs):
            raise ValueError(
                f"JetPlan.seconds must be sorted distinct pairs (i, j) with i <= j, got {pairs}")
        for i, j in pairs:
            if i not in self.firsts or j not in self.firsts:
                raise ValueError(
                    f"second derivative {(i, j)} needs first derivatives {i} and {j} in firsts "
                    f"{self.firsts}; build the plan with JetPlan.from_keys")
        object.__setattr__(self, "seconds", pairs)

    @classmethod
    def from_keys(cls, keys: Iterable[DerivativeKey], dim: int) -> JetPlan:
        """The smallest plan that carries every key (orders 0, 1, 2).

        Args:
            keys: derivative keys (tuples of coordinate indices, any order inside a key).
            dim: number of input coordinates.

        Raises:
            ValueError: for a key of order > 2 (use the ``autograd`` policy) or an index
                outside [0, dim).
        """
        firsts: set[int] = set()
        seconds: set[tuple[int, int]] = set()
        for key in keys:
            key = tuple(sorted(int(i) for i in key))
            for i in key:
                if not 0 <= i < dim:
                    raise ValueError(f"derivative key {key} has an index outside [0, {dim})")
            if len(key) > 2:
                raise ValueError(
                    f"derivative key {key} has order {len(key)}; Taylor-mode jets carry orders "
                    "<= 2 only: use StorageConfig(policy='autograd') for higher orders")
            if len(key) == 1:
                firsts.add(key[0])
            elif len(key) == 2:
                seconds.add((key[0], key[1]))
                firsts.update(key)
        return cls(dim, tuple(sorted(firsts)), tuple(sorted(seconds)))

    @property
    def num_components(self) -> int:
        """J = 1 + len(firsts) + len(seconds)."""
        return 1 + len(self.firsts) + len(self.seconds)

    def keys(self) -> tuple[DerivativeKey, ...]:
        """The derivative key of every component, in component order."""
        return ((),) + tuple((i,) for i in self.firsts) + tuple(self.seconds)

    def index(self, key: DerivativeKey) -> int:
        """Component index of ``key``.

        Raises:
            KeyError: if the plan does not carry ``key``.
        """
        key = tuple(sorted(key))
        if not key:
            return 0
        if len(key) == 1 and key[0] in self.firsts:
            return 1 + self.firsts.index(key[0])
        if len(key) == 2 and key in self.seconds:
            return 1 + len(self.firsts) + self.seconds.index(key)
        raise KeyError(f"derivative key {key} is not carried by this jet plan "
                       f"(carries {self.keys()})")


def input_jets(mlp, points: Points, plan: JetPlan) -> Jets:
    """Jets of the scaled input h0 = x * in_scale + in_shift, shape (J, N, d).

    Value h0, first derivative along x_i the constant in_scale_i e_i, second derivatives 0.
    Differentiable with respect to ``points``.
    """
    if points.dim() != 2 or points.shape[1] != plan.dim:
        raise ValueError(f"points must be (N, {plan.dim}), got {tuple(points.shape)}")
    n = points.shape[0]
    value = points * mlp.in_scale + mlp.in_shift
    comps = [value]
    for i in plan.firsts:
        e = torch.zeros(plan.dim, dtype=value.dtype, device=value.device)
        e[i] = mlp.in_scale[i]
        comps.append(e.expand(n, plan.dim))
    zero = value.new_zeros(n, plan.dim)
    comps.extend(zero for _ in plan.seconds)
    return torch.stack(comps)


def activation_order(plan: JetPlan, backward: bool = False) -> int:
    """Highest derivative of s the jet map (or its VJP when ``backward``) needs."""
    order = 2 if plan.seconds else (1 if plan.firsts else 0)
    return order + 1 if backward else order


def activation_jets(act: Activation, Z: Jets, plan: JetPlan,
                    ds: tuple[Tensor, ...] | None = None, out: Jets | None = None) -> Jets:
    """Jets of s(z) from jets of z (chain rule), with pure differentiable torch ops.

    h0 = s(z0), h_i = s1(z0) z_i, h_ij = s2(z0) z_i z_j + s1(z0) z_ij.

    Args:
        act: the activation s with its derivatives.
        Z: (J, N, w) pre-activation jets laid out by ``plan``.
        ds: (s, s1, s2, ...) at Z[0] if already computed (see :func:`activation_order`).
        out: a (J, N, w) buffer to write into (no autograd: for the custom Functions, which
            run with autograd off); without it the result is built by differentiable ops.

    Returns:
        (J, N, w) post-activation jets.
    """
    if ds is None:
        ds = act.derivatives(Z[0], activation_order(plan))
    nf = len(plan.firsts)
    if out is not None:
        return _activation_jets_into(out, Z, plan, ds)
    comps = [ds[0]]
    if nf:
        s1 = ds[1]
        comps.extend(s1 * Z[1 + a] for a in range(nf))
    if plan.seconds:
        s2 = ds[2]
        for b, (i, j) in enumerate(plan.seconds):
            zi = Z[1 + plan.firsts.index(i)]
            zj = Z[1 + plan.firsts.index(j)]
            comps.append(s2 * zi * zj + s1 * Z[1 + nf + b])
    return torch.stack(comps)


def _activation_jets_into(out: Jets, Z: Jets, plan: JetPlan, ds: tuple[Tensor, ...]) -> Jets:
    nf = len(plan.firsts)
    out[0].copy_(ds[0])
    if nf:
        torch.mul(ds[1], Z[1:1 + nf], out=out[1:1 + nf])
    for b, (i, j) in enumerate(plan.seconds):
        c = 1 + nf + b
        torch.mul(ds[2], Z[1 + plan.firsts.index(i)], out=out[c])
        out[c].mul_(Z[1 + plan.firsts.index(j)]).addcmul_(ds[1], Z[c])
    return out


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


def jet_forward_reference(mlp, points: Points, plan: JetPlan) -> Tensor:
    """Output jets (J, N) of a scalar-output MLP by plain differentiable torch ops.

    The test oracle of the fused Functions and the inner function of the ``checkpoint``
    policy. Every intermediate is kept by autograd as usual.

    Raises:
        ValueError: if the network has more than one output.
    """
    if mlp.layers[-1].out_features != 1:
        raise ValueError(f"jets need a scalar-output network, got out_dim="
                         f"{mlp.layers[-1].out_features}")
    H = input_jets(mlp, points, plan)
    layers = list(mlp.layers)
    for k, layer in enumerate(layers):
        Z = H @ layer.weight.T
        Z = torch.cat([(Z[0] + layer.bias).unsqueeze(0), Z[1:]])
        if k + 1 < len(layers):
            H = activation_jets(mlp.activation, Z, plan)
    return Z[..., 0]

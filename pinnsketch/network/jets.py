"""Taylor-mode jets: the layout (:class:`JetPlan`) and the plain-torch jet rules of the parts.

A jet of a quantity h is a stacked tensor ``(J, N, w)``: component 0 is the value, then the
first derivatives d/dx_i for ``plan.firsts``, then the second derivatives d2/dx_i dx_j for
``plan.seconds`` (i <= j), at N points and for w features. The rules every part of a network
is written with (DESIGN.md section 8):

- the coordinates x: (x, e_i, 0) (:func:`coordinate_jets`);
- an affine map W h + b: every component by W, the bias on the value only
  (:func:`linear_jets`);
- an elementwise function s (an activation, sin of a Fourier phase), by the chain rule
  (:func:`activation_jets`):

      h0 = s(z0),   h_i = s'(z0) z_i,   h_ij = s''(z0) z_i z_j + s'(z0) z_ij;

- a product of two jets, by the Leibniz rule (:func:`product_jets`):

      c0 = a0 b0,  c_i = a_i b0 + a0 b_i,  c_ij = a_ij b0 + a_i b_j + a_j b_i + a0 b_ij;

- a pointwise function of the points given as code (a hard constraint's g and phi), by
  nested autograd (:func:`function_jets`).

With ``plan=None`` every rule computes plain values on (N, w) tensors instead of jets (the
value-only path: exactly the plain forward pass, the ops nested autograd then differentiates),
which is how a network's ``forward`` is the same code as its jets. Everything
here is plain differentiable torch (the ``out=`` path of :func:`activation_jets` excepted:
it serves the custom Functions of :mod:`pinnsketch.storage`, which run without autograd).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from pinnsketch._types import Jets, Points
from pinnsketch.activations import Activation
from pinnsketch.checks import is_int

__all__ = ["CoordKey", "JetPlan", "coordinate_jets", "linear_jets", "activation_jets",
           "activation_order", "product_jets", "function_jets"]

CoordKey = tuple[int, ...]
"""Sorted coordinate indices of a partial derivative: () the value, (0,) d/dx_0, (0, 1) ..."""


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
    def from_keys(cls, keys: Iterable[CoordKey], dim: int) -> JetPlan:
        """The smallest plan that carries every key (orders 0, 1, 2).

        Args:
            keys: coordinate keys (tuples of coordinate indices, any order inside a key), or
                derivative keys (field, coordinate key), whose fields do not matter here.
            dim: number of input coordinates.

        Raises:
            ValueError: for a key of order > 2 (use the ``autograd`` policy) or an index
                outside [0, dim).
        """
        firsts: set[int] = set()
        seconds: set[tuple[int, int]] = set()
        for key in keys:
            if key and isinstance(key[0], str):
                key = key[1]
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

    @classmethod
    def value(cls, dim: int) -> JetPlan:
        """The value-only plan (J = 1): the jet rules become the plain forward pass."""
        return cls(dim, (), ())

    @property
    def num_components(self) -> int:
        """J = 1 + len(firsts) + len(seconds)."""
        return 1 + len(self.firsts) + len(self.seconds)

    def keys(self) -> tuple[CoordKey, ...]:
        """The derivative key of every component, in component order."""
        return ((),) + tuple((i,) for i in self.firsts) + tuple(self.seconds)

    def index(self, key: CoordKey) -> int:
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


def coordinate_jets(points: Points, plan: JetPlan | None) -> Jets:
    """Jets (J, N, d) of the coordinates themselves: value x, d/dx_i the unit vector e_i,
    second derivatives 0 (``plan=None``: the points themselves). Differentiable with respect
    to ``points``.

    >>> coordinate_jets(torch.ones(3, 2), JetPlan.from_keys([(1,)], 2))[1, 0].tolist()
    [0.0, 1.0]
    """
    if plan is None:
        return points
    if points.dim() != 2 or points.shape[1] != plan.dim:
        raise ValueError(f"points must be (N, {plan.dim}), got {tuple(points.shape)}")
    if plan.num_components == 1:
        return points.unsqueeze(0)
    n, d = points.shape
    comps = [points]
    for i in plan.firsts:
        e = points.new_zeros(d)
        e[i] = 1.0
        comps.append(e.expand(n, d))
    zero = points.new_zeros(n, d)
    comps.extend(zero for _ in plan.seconds)
    return torch.stack(comps)


def _value_pad(b: Tensor, num_components: int) -> Tensor:
    """(J, 1, w): b on the value component, 0 on the derivative components."""
    pad = b.new_zeros(num_components, 1, b.shape[-1])
    return pad.index_copy(0, torch.zeros(1, dtype=torch.long, device=b.device), b.reshape(1, 1, -1))


def linear_jets(H: Jets, W: Tensor, b: Tensor | None = None) -> Jets:
    """Jets of W h + b: every component times W^T, the bias added to the value only.

    Args:
        H: (J, N, w_in) jets, or (N, w_in) values (the ``plan=None`` path); W: (w_out,
            w_in); b: (w_out,) or None.
    """
    if H.dim() == 2:  # values: the plain affine map (one addmm)
        return torch.nn.functional.linear(H, W, b)
    Z = torch.matmul(H, W.T)
    return Z if b is None else Z + _value_pad(b, H.shape[0])


def activation_order(plan: JetPlan, backward: bool = False) -> int:
    """Highest derivative of s the jet map (or its VJP when ``backward``) needs."""
    order = 2 if plan.seconds else (1 if plan.firsts else 0)
    return order + 1 if backward else order


def activation_jets(act: Activation, Z: Jets, plan: JetPlan | None,
                    ds: tuple[Tensor, ...] | None = None, out: Jets | None = None) -> Jets:
    """Jets of s(z) from jets of z (chain rule), with pure differentiable torch ops.

    h0 = s(z0), h_i = s1(z0) z_i, h_ij = s2(z0) z_i z_j + s1(z0) z_ij.

    Args:
        act: the elementwise function s with its derivatives.
        Z: (J, N, w) jets of z laid out by ``plan`` (``plan=None``: values, s(z) itself).
        ds: (s, s1, s2, ...) at Z[0] if already computed (see :func:`activation_order`).
        out: a (J, N, w) buffer to write into (no autograd: for the custom Functions, which
            run with autograd off); without it the result is built by differentiable ops.

    Returns:
        (J, N, w) jets of s(z).
    """
    if out is not None:
        if ds is None:
            ds = act.derivatives(Z[0], activation_order(plan))
        return _activation_jets_into(out, Z, plan, ds)
    if plan is None:  # values: s(z), by the activation's own function
        return act.f(Z)
    if Z.shape[0] == 1:
        return act.derivatives(Z, 0)[0] if ds is None else ds[0].unsqueeze(0)
    # On unbound components: the backward of unbind is one stack, whereas every select or
    # slice of Z would allocate and zero a whole (J, N, w) gradient.
    z = Z.unbind(0)
    if ds is None:
        ds = act.derivatives(z[0], activation_order(plan))
    nf = len(plan.firsts)
    s1 = ds[1]
    comps = [ds[0]] + [s1 * z[1 + a] for a in range(nf)]
    if plan.seconds:
        s2 = ds[2]
        for b, (i, j) in enumerate(plan.seconds):
            zi, zj = z[1 + plan.firsts.index(i)], z[1 + plan.firsts.index(j)]
            comps.append(s2 * zi * zj + s1 * z[1 + nf + b])
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


def product_jets(A: Jets, B: Jets, plan: JetPlan | None) -> Jets:
    """Jets of the elementwise product a * b (Leibniz rule to order 2; ``plan=None``: a * b).

    c0 = a0 b0, c_i = a_i b0 + a0 b_i, c_ij = a_ij b0 + a_i b_j + a_j b_i + a0 b_ij.
    ``A`` and ``B`` broadcast against each other in their last two dimensions.
    """
    if plan is None or A.shape[0] == 1:
        return A * B
    a, b = A.unbind(0), B.unbind(0)  # see activation_jets: unbind, not select
    nf = len(plan.firsts)
    comps = [a[0] * b[0]] + [a[c] * b[0] + a[0] * b[c] for c in range(1, 1 + nf)]
    for k, (i, j) in enumerate(plan.seconds):
        ci, cj, c = 1 + plan.firsts.index(i), 1 + plan.firsts.index(j), 1 + nf + k
        comps.append(a[c] * b[0] + a[ci] * b[cj] + a[cj] * b[ci] + a[0] * b[c])
    return torch.stack(comps)


def function_jets(fn: Callable[[Points], Tensor], points: Points, plan: JetPlan | None,
                  what: str = "function") -> Jets:
    """Jets (J, N) of a pointwise scalar function of the points, by nested autograd
    (``plan=None``: its (N,) values, differentiable as ``fn`` is).

    ``fn`` maps (N, d) points to (N,) values, each row depending on its own point only (the
    derivative of the sum is then the per-point derivative). The jets are differentiable
    with respect to ``points`` only when ``points`` requires grad.

    Raises:
        ValueError: ``fn`` does not return an (N,) tensor (``what`` names it in the message).
    """
    if plan is None:
        return _checked(fn(points), points, what)
    keep = points.requires_grad and torch.is_grad_enabled()
    # A detached evaluation builds a private graph, dropped on return: an identity pair of
    # saved-tensor hooks keeps outer hooks (held-bytes counting, torch.utils.checkpoint)
    # from seeing it.
    hooks = contextlib.nullcontext() if keep else \
        torch.autograd.graph.saved_tensors_hooks(_same, _same)
    with torch.enable_grad(), hooks:
        x = points if keep else points.detach().requires_grad_(True)
        v = _checked(fn(x), points, what)
        comps = [v]
        if plan.firsts:
            grad = _grad(v, x, create=bool(plan.seconds) or keep)
            comps.extend(grad[:, i] for i in plan.firsts)
            rows = {i: _grad(grad[:, i], x, create=keep)
                    for i in sorted({i for i, _ in plan.seconds})}
            comps.extend(rows[i][:, j] for i, j in plan.seconds)
        out = torch.stack(comps)
    return out if keep else out.detach()


def _checked(v: object, points: Points, what: str) -> Tensor:
    n = points.shape[0]
    if not isinstance(v, Tensor) or tuple(v.shape) != (n,):
        shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
        raise ValueError(f"{what} must return one value per point, shape ({n},) for "
                         f"{n} points of shape {tuple(points.shape)}, got {shape}")
    return v.to(points.dtype)


def _same(t: Tensor) -> Tensor:
    return t


def _grad(v: Tensor, x: Tensor, create: bool) -> Tensor:
    if not v.requires_grad:  # v does not depend on x
        return torch.zeros_like(x)
    # retain_graph: the second derivatives differentiate columns of one first-derivative
    # tensor, one call each (the graph goes when the tensors do)
    (g,) = torch.autograd.grad(v.sum(), x, create_graph=create, retain_graph=True,
                               allow_unused=True)
    return torch.zeros_like(x) if g is None else g

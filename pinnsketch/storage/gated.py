"""The modified MLP's gated layer as one fused custom Function (the fast route).

A gated segment of :class:`~pinnsketch.network.ModifiedMLPTrunk` maps the pre-activation
jets Z of a hidden layer and P_u, P_v of the two encoders to

    Zn = W H + b (b on the value),  H = U + S (V - U),  S = s(Z), U = s(P_u), V = s(P_v)

(jets throughout: s by the chain rule, the product by the Leibniz rule). The generic
:class:`~pinnsketch.storage.segment.SegmentFunction` differentiates this rule by autograd;
:class:`GatedDense` computes the same values and gradients with in-place block loops and a
hand-written vector-Jacobian product, like :class:`~pinnsketch.storage.functions.ActLinear`:

- Leibniz VJP (C = S D, D = V - U; c_ij = s_ij d0 + s_i d_j + s_j d_i + s0 d_ij):
  dS_0 = sum_c dC_c D_c, dS_i = dC_i D_0 + sum_(i,j) dC_ij D_j (twice for (i, i)),
  dS_ij = dC_ij D_0, and the same with S and D exchanged for dD;
- then dU = dH - dD, dV = dD, and dZ, dP_u, dP_v by
  :func:`~pinnsketch.storage.jets.activation_jets_vjp`.

What is kept is decided by the options of each input (as for the generic segment: Z, P_u,
P_v themselves under ``exact``, or their sketches, codes, projections; P_u and P_v are the
same tensors for every layer). The weight may be factorized (random weight factorization):
its gradient is carried to s and V by autograd on the small W = diag(exp(s)) V.
Exactness: as the generic segment (exact with exactly kept inputs; at the reconstruction
otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.autograd import Function

from pinnsketch._types import Jets
from pinnsketch.activations import Activation
from pinnsketch.network.jets import JetPlan, activation_jets, activation_order
from pinnsketch.storage.functions import _block_buffer, _row_blocks
from pinnsketch.storage.jets import activation_jets_vjp

__all__ = ["GateSpec", "GatedDense", "gated_dense"]


@dataclass(frozen=True, eq=False)
class GateSpec:
    """A gated segment's tensor-free description: the activation, the plan, the dense layer
    (its parameters alive anyway), and per input (Z, P_u, P_v) the options whose
    ``restorer`` rebuilds it and the number of its kept tensors."""

    act: Activation
    plan: JetPlan
    dense: nn.Module
    options: tuple[object, object, object]
    kept_counts: tuple[int, int, int]


def _gate_into(act: Activation, plan: JetPlan, Zb: Jets, Pub: Jets, Pvb: Jets, bufs: dict,
               order: int) -> tuple[Jets, Jets, tuple[Tensor, ...], tuple[Tensor, ...],
                                    tuple[Tensor, ...]]:
    """Per block: S, H (in ``bufs["u"]``) and D (in ``bufs["v"]``), and the activation
    derivatives at Z0, P_u0, P_v0 (``order`` of them)."""
    nb = Zb.shape[1]
    ds_z = act.derivatives(Zb[0], order, out=bufs["ds_z"][:, :nb])
    ds_u = act.derivatives(Pub[0], order, out=bufs["ds_u"][:, :nb])
    ds_v = act.derivatives(Pvb[0], order, out=bufs["ds_v"][:, :nb])
    S = activation_jets(act, Zb, plan, ds_z, out=bufs["s"][:, :nb])
    H = activation_jets(act, Pub, plan, ds_u, out=bufs["u"][:, :nb])  # U, then H
    D = activation_jets(act, Pvb, plan, ds_v, out=bufs["v"][:, :nb])  # V, then D
    D.sub_(H)
    nf = len(plan.firsts)
    H[0].addcmul_(S[0], D[0])
    for c in range(1, 1 + nf):
        H[c].addcmul_(S[c], D[0]).addcmul_(S[0], D[c])
    for k, (i, j) in enumerate(plan.seconds):
        c, ci, cj = 1 + nf + k, 1 + plan.firsts.index(i), 1 + plan.firsts.index(j)
        H[c].addcmul_(S[c], D[0]).addcmul_(S[ci], D[cj]).addcmul_(S[cj], D[ci]) \
            .addcmul_(S[0], D[c])
    return S, H, ds_z, ds_u, ds_v


def _product_vjp_into(plan: JetPlan, A: Jets, B: Jets, dC: Jets, dA: Jets) -> Jets:
    """dA of C = A B (Leibniz) from dC, written into ``dA`` (call with A, B exchanged for
    dB)."""
    nf = len(plan.firsts)
    torch.mul(dC, B[0], out=dA)  # dA_c = dC_c B_0 (every component's first term)
    for c in range(1, dC.shape[0]):
        dA[0].addcmul_(dC[c], B[c])
    for k, (i, j) in enumerate(plan.seconds):
        c, ci, cj = 1 + nf + k, 1 + plan.firsts.index(i), 1 + plan.firsts.index(j)
        dA[ci].addcmul_(dC[c], B[cj])
        dA[cj].addcmul_(dC[c], B[ci])  # (i, i): twice
    return dA


class GatedDense(Function):
    """Zn = dense(gate(Z, P_u, P_v)) (module doc). ``apply(spec, Z, P_u, P_v, *params,
    *kept)``, ``params`` the dense layer's parameters (``weight``, ``bias``; or
    ``log_scale``, ``direction``, ``bias``)."""

    @staticmethod
    def forward(spec: GateSpec, Z: Jets, Pu: Jets, Pv: Jets, *rest: Tensor) -> Jets:
        plan, act, dense = spec.plan, spec.act, spec.dense
        W, b = dense.weight, dense.bias
        J, n, w = Z.shape
        out = Z.new_empty(J, n, W.shape[0])
        order = activation_order(plan)
        blocks = _row_blocks(n, 3 * J * w)
        bufs = _buffers(Z, blocks, w, order, backward=False)
        for rows in blocks:
            _, H, *_ = _gate_into(act, plan, Z[:, rows], Pu[:, rows], Pv[:, rows], bufs, order)
            for j in range(J):
                torch.mm(H[j], W.T, out=out[j, rows])
        out[0] += b
        return out

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        spec, Z, _pu, _pv, *rest = inputs
        n_params = len(rest) - sum(spec.kept_counts)
        ctx.save_for_backward(*rest)  # the parameters (version check), then the kept tensors
        ctx.spec, ctx.n_params, ctx.shape = spec, n_params, tuple(Z.shape)

    @staticmethod
    def backward(ctx, dZn: Jets):
        spec = ctx.spec
        plan, act, dense = spec.plan, spec.act, spec.dense
        needs = ctx.needs_input_grad[1:]
        need_in, need_p = needs[:3], needs[3:3 + ctx.n_params]
        saved = ctx.saved_tensors
        kept = saved[ctx.n_params:]
        J, n, w = ctx.shape
        sources, at = [], 0
        for opts, count in zip(spec.options, spec.kept_counts, strict=True):
            sources.append(opts.restorer(tuple(kept[at:at + count]), n, w, J))
            at += count
        W = dense.weight.detach()
        w_out = W.shape[0]
        need_w = any(need_p)
        d_in = [dZn.new_empty(ctx.shape) if need else None for need in need_in]
        dW = torch.zeros_like(W) if need_w else None
        order = activation_order(plan, backward=True)
        blocks = _row_blocks(n, 3 * J * max(w, w_out))
        bufs = _buffers(dZn, blocks, w, order, backward=True)
        for rows in blocks:
            nb = rows.stop - rows.start
            Zb = sources[0](rows, bufs["z"][:, :nb])
            Pub = sources[1](rows, bufs["pu"][:, :nb])
            Pvb = sources[2](rows, bufs["pv"][:, :nb])
            S, H, ds_z, ds_u, ds_v = _gate_into(act, plan, Zb, Pub, Pvb, bufs, order)
            dZnb = dZn[:, rows]
            if need_w:
                for j in range(J):
                    dW.addmm_(dZnb[j].T, H[j])
            if not any(need_in):
                continue
            dH = bufs["dh"][:, :nb]
            if w_out == 1:
                torch.mul(dZnb, W[0], out=dH)
            else:
                for j in range(J):
                    torch.mm(dZnb[j], W, out=dH[j])
            D = bufs["v"][:, :nb]
            dS = _product_vjp_into(plan, S, D, dH, bufs["da"][:, :nb])
            dD = _product_vjp_into(plan, D, S, dH, bufs["db"][:, :nb])
            scratch = bufs["scratch"][:, :nb]
            if need_in[0]:
                activation_jets_vjp(act, Zb, dS, plan, ds_z, out=d_in[0][:, rows],
                                    scratch=scratch)
            if need_in[2]:
                activation_jets_vjp(act, Pvb, dD, plan, ds_v, out=d_in[2][:, rows],
                                    scratch=scratch)
            if need_in[1]:
                dU = torch.sub(dH, dD, out=dS)  # dS is spent
                activation_jets_vjp(act, Pub, dU, plan, ds_u, out=d_in[1][:, rows],
                                    scratch=scratch)
        d_params = [None] * ctx.n_params
        if need_w:
            params = list(dense.parameters())  # weight, bias | log_scale, direction, bias
            db = dZn[0].sum(0)
            if dense.factorized:
                with torch.enable_grad():
                    gs = torch.autograd.grad(dense.weight, params[:2], dW)
                d_params = [*gs, db]
            else:
                d_params = [dW, db]
            d_params = [g if need else None for g, need in zip(d_params, need_p, strict=True)]
        return (None, *d_in, *d_params, *(None,) * len(kept))


def _buffers(like: Tensor, blocks: list[slice], w: int, order: int, backward: bool) -> dict:
    names = ["s", "u", "v"] + (["z", "pu", "pv", "dh", "da", "db"] if backward else [])
    bufs = {k: _block_buffer(like, blocks, w) for k in names}
    for k in ("ds_z", "ds_u", "ds_v"):
        bufs[k] = _block_buffer(like, blocks, w, order + 1)
    if backward:
        bufs["scratch"] = _block_buffer(like, blocks, w, 2)
    return bufs


def gated_dense(act: Activation, plan: JetPlan, dense: nn.Module, inputs: list[Tensor],
                options: list[object], kept: list[tuple[Tensor, ...]]) -> Jets:
    """``dense(gate(Z, P_u, P_v))`` through :class:`GatedDense` (``inputs`` = [Z, P_u, P_v],
    their options and kept tensors)."""
    spec = GateSpec(act, plan, dense, tuple(options), tuple(len(k) for k in kept))
    return GatedDense.apply(spec, *inputs, *dense.parameters(), *(t for k in kept for t in k))

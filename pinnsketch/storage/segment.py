"""The generic segment Function: any network segment under any jet storage policy.

A segment (:class:`~pinnsketch.network.program.Segment`) computes a stored activation or the
output from earlier stored activations Z_1, ..., Z_m (pre-activation jets, (J, N, w_i)) and
possibly the points x, by a rule in plain torch. :class:`SegmentFunction` runs the rule
without autograd and keeps, for backward, only

- each stored input in the policy's representation (an ``options.keep(Z)`` result computed
  once per stored activation by the engine: Z itself for ``exact``, a sketch, 8-bit codes,
  a projection), the same tensors for every segment that reads it, so they are held once;
- the points x (alive anyway) and the parameters (excluded from held bytes).

Backward walks the points in row blocks: per block it rebuilds each input (``restorer``),
re-runs the rule with autograd on and calls ``torch.autograd.grad`` with the output's
cotangent. The rule is pointwise in the points (row i of the output depends on row i of the
inputs only), so the blocks only reorder sums over points: with exactly kept inputs the
gradients are exact (up to round-off), with a sketch they are those of the rule at the
reconstruction Z_hat (exact at full rank). The memory of backward beyond the gradients is
one block's autograd graph.

Hygiene (STYLE.md item 7): separate ``forward`` and ``setup_context``; tensors only via
``ctx.save_for_backward``; ctx holds the frozen :class:`SegmentSpec` (the segment's rule and
its modules, whose parameters are alive anyway; the per-input options, which carry seeds,
never test matrices); ``ctx.needs_input_grad`` is honoured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd import Function

from pinnsketch._types import Jets
from pinnsketch.network.jets import JetPlan
from pinnsketch.network.program import POINTS, Segment
from pinnsketch.storage.functions import _row_blocks

__all__ = ["SegmentSpec", "SegmentFunction", "run_segment"]


@dataclass(frozen=True, eq=False)
class SegmentSpec:
    """A segment call's tensor-free description.

    Attributes:
        segment: the segment (its ``inputs`` order is the order of the tensors).
        plan: the jet plan.
        options: per input, None for the points, else the options object whose ``restorer``
            rebuilds that stored activation from its kept tensors.
        kept_counts: per input, how many kept tensors follow (0 for the points).
        num_params: how many parameter tensors follow the inputs.
    """

    segment: Segment
    plan: JetPlan
    options: tuple[object | None, ...]
    kept_counts: tuple[int, ...]
    num_params: int


def _rows(name: str, t: Tensor, rows: slice) -> Tensor:
    return t[rows] if name == POINTS else t[:, rows]


class SegmentFunction(Function):
    """One segment of a network (module doc). ``apply(spec, *inputs, *params, *kept)``.

    Inputs: the segment's inputs (points (N, d) or jets (J, N, w_i)) in ``segment.inputs``
    order; its parameters (``segment.parameters()``); for each stored input, its kept tensors
    (``kept_counts``). Output: the segment's output jets (J, N, w_out).
    """

    @staticmethod
    def forward(spec: SegmentSpec, *tensors: Tensor) -> Jets:
        seg, plan = spec.segment, spec.plan
        inputs = tensors[:len(seg.inputs)]
        n = inputs[0].shape[0] if seg.inputs[0] == POINTS else inputs[0].shape[1]
        out = None
        for rows in _row_blocks(n, _block_target(seg, tuple(t.shape for t in inputs))):
            y = seg.rule(plan, *(_rows(name, t, rows) for name, t in
                                 zip(seg.inputs, inputs, strict=True)))
            if out is None:
                out = y.new_empty(y.shape[0], n, *y.shape[2:])
            out[:, rows] = y
        return out

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        spec, *tensors = inputs
        m, p = len(spec.segment.inputs), spec.num_params
        ins, params, kept = tensors[:m], tensors[m:m + p], tensors[m + p:]
        points = [t for name, t in zip(spec.segment.inputs, ins, strict=True) if name == POINTS]
        ctx.save_for_backward(*points, *params, *kept)
        ctx.spec = spec
        ctx.shapes = tuple(tuple(t.shape) for t in ins)

    @staticmethod
    def backward(ctx, dout: Jets):
        spec = ctx.spec
        seg, plan = spec.segment, spec.plan
        m, p = len(seg.inputs), spec.num_params
        needs = ctx.needs_input_grad[1:]
        need_in, need_p = needs[:m], needs[m:m + p]
        nones = (None,) * (len(needs) - m - p)
        if not any(need_in) and not any(need_p):
            return (None,) * (1 + len(needs))
        saved = ctx.saved_tensors
        n_points = sum(1 for name in seg.inputs if name == POINTS)
        points = saved[0] if n_points else None
        params = seg.parameters()  # the live parameters the rule reads (saved ones: version check)
        kept = saved[n_points + p:]
        sources, at = [], 0
        for name, opts, count, shape in zip(seg.inputs, spec.options, spec.kept_counts,
                                            ctx.shapes, strict=True):
            if name == POINTS:
                sources.append(None)
                continue
            J, n, w = shape
            sources.append(opts.restorer(tuple(kept[at:at + count]), n, w, J))
            at += count
        n = ctx.shapes[0][0] if seg.inputs[0] == POINTS else ctx.shapes[0][1]
        d_in = [dout.new_empty(shape) if need else None  # every row block is written
                for shape, need in zip(ctx.shapes, need_in, strict=True)]
        d_par = [torch.zeros_like(q) if need else None
                 for q, need in zip(params, need_p, strict=True)]
        blocks = _row_blocks(n, _block_target(seg, ctx.shapes))
        rows0 = blocks[0].stop - blocks[0].start if blocks else 0
        bufs = [None if name == POINTS else dout.new_empty(shape[0], rows0, shape[2])
                for name, shape in zip(seg.inputs, ctx.shapes, strict=True)]
        for rows in blocks:
            nb = rows.stop - rows.start
            with torch.enable_grad():
                args = []
                for i, name in enumerate(seg.inputs):
                    t = points[rows] if name == POINTS else sources[i](rows, bufs[i][:, :nb])
                    args.append(t.detach().requires_grad_(need_in[i]))
                y = seg.rule(plan, *args)
                wrt = [a for a, need in zip(args, need_in, strict=True) if need]
                wrt += [q for q, need in zip(params, need_p, strict=True) if need]
                grads = torch.autograd.grad(y, wrt, dout[:, rows], allow_unused=True)
            k = 0
            for i, name in enumerate(seg.inputs):
                if need_in[i]:
                    block = _rows(name, d_in[i], rows)
                    block.copy_(grads[k]) if grads[k] is not None else block.zero_()
                    k += 1
            for j in range(p):
                if need_p[j]:
                    if grads[k] is not None:
                        d_par[j] += grads[k]
                    k += 1
        return (None, *d_in, *d_par, *nones)


def _block_target(seg: Segment, shapes) -> int:
    """Numbers per point of the inputs (sets the row-block size)."""
    per = 0
    for name, shape in zip(seg.inputs, shapes, strict=True):
        per += shape[1] if name == POINTS else shape[0] * shape[2]
    return max(per, 1)


def run_segment(seg: Segment, plan: JetPlan, inputs: list[Tensor],
                options: list[object | None], kept: list[tuple[Tensor, ...]]) -> Jets:
    """``seg``'s output jets through :class:`SegmentFunction`.

    Args:
        inputs: the tensors named by ``seg.inputs``.
        options: per input, None for the points, else its options (``restorer``).
        kept: per input, its kept tensors (empty for the points).
    """
    params = seg.parameters()
    spec = SegmentSpec(seg, plan, tuple(options), tuple(len(k) for k in kept), len(params))
    flat = [t for k in kept for t in k]
    return SegmentFunction.apply(spec, *inputs, *params, *flat)

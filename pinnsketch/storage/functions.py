"""The hand-fused custom autograd Functions of the jet policies (with
:mod:`~pinnsketch.storage.segment` and :mod:`~pinnsketch.storage.gated`, the only code that
touches ctx), and the options objects that say how each policy keeps a stored activation.

Each Function fuses "activation jets, then a linear layer" so that a hidden layer keeps only
its pre-activation jets Z (J, N, w) (``exact``), a per-component low-rank sketch of them
(``sketch``), or a per-component compressed copy (``quant8``: 8-bit stochastic rounding;
``projection``: a one-sided random projection); the post-activation jets are recomputed in
backward. The first layer keeps only the points x (N, d): its input jets are determined by x.

Hygiene (STYLE.md item 7): separate ``forward`` and ``setup_context``; every tensor kept for
backward goes through ``ctx.save_for_backward`` (so saved-tensor hooks and byte counts see
it); ctx attributes hold only ints, floats, strings and frozen non-tensor descriptions (the
activation, the jet plan, the sketch options, which carry seeds and never test matrices);
``ctx.needs_input_grad`` is honoured. The weight W is saved too (a parameter, alive anyway;
byte counts exclude parameters), which also lets autograd detect an in-place update of W
between forward and backward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd import Function

from pinnsketch._types import Jets, Points
from pinnsketch.activations import Activation
from pinnsketch.checks import is_int
from pinnsketch.sketch import (
    SKETCH_FAMILIES,
    RangeFinderApprox,
    SketchSpec,
    ThreeSketch,
    check_method,
    ema_update,
    reconstruct,
    sketch,
)
from pinnsketch.sketch.projection import project, unproject
from pinnsketch.sketch.quantize import QUANT_BLOCK_ROWS, Quantized, dequantize, quantize
from pinnsketch.sketch.range_finder import TWO_FACTOR_METHODS, low_rank_factors
from pinnsketch.storage.jets import (
    JetPlan,
    activation_jets,
    activation_jets_vjp,
    activation_order,
)

__all__ = ["COMPRESSORS", "ExactOptions", "SketchOptions", "CompressOptions", "InputLinear",
           "ActLinear",
           "SketchedActLinear", "CompressedActLinear", "input_linear", "act_linear",
           "sketched_act_linear", "compressed_act_linear", "sketch_approximations",
           "sketch_tensor_count", "compress_jets", "decompress_jets"]

COMPRESSORS = ("quant8", "projection")
"""The compressed (not low-rank) storages of a layer's jets, each a storage policy."""


@dataclass(frozen=True)
class ExactOptions:
    """Keep a stored activation exactly (the ``exact`` policy): the jets Z themselves.

    The same ``keep`` / ``restorer`` protocol as :class:`SketchOptions` and
    :class:`CompressOptions`, so a generic segment treats every policy alike.
    """

    def keep(self, Z: Jets, old: tuple[Tensor, ...] = ()) -> list[Tensor]:
        """[Z] (the tensor itself: no copy)."""
        return [Z]

    def restorer(self, kept: tuple[Tensor, ...], n_points: int, width: int,
                 num_components: int) -> RowSource:
        """(rows, buf) -> Z[:, rows], a view of the kept Z (``buf`` unused)."""
        (Z,) = kept
        return lambda rows, _buf: Z[:, rows]


@dataclass(frozen=True)
class SketchOptions:
    """How one layer's pre-activation jets are sketched (a frozen, tensor-free description).

    Attributes:
        method: one of ``pinnsketch.sketch.SKETCH_METHODS``.
        rank: k, with 1 <= k <= min(N, w) (the engine clamps).
        seeds: one seed per jet component (regenerates its test matrices).
        family: test-matrix family (``pinnsketch.sketch.SKETCH_FAMILIES``).
        exact_value: keep component 0 (the value jet) exactly, sketch only the derivatives.
        beta: EMA weight of the past (``ema`` only), 0 <= beta < 1.
    """

    method: str
    rank: int
    seeds: tuple[int, ...]
    family: str = "gaussian"
    exact_value: bool = False
    beta: float = 0.0

    def __post_init__(self) -> None:
        check_method(self.method)
        if not is_int(self.rank) or self.rank < 1:
            raise ValueError(f"rank must be an int >= 1, got {self.rank!r}")

    def sketched(self, j: int) -> bool:
        """Whether component j is sketched (False for the value under ``exact_value``)."""
        return not (self.exact_value and j == 0)

    def spec(self, j: int, n_points: int, width: int) -> SketchSpec:
        """The three-sketch spec of component j: M = Z[j]^T, (width x n_points)."""
        return SketchSpec(m=width, n=n_points, k=self.rank, seed=self.seeds[j],
                          family=self.family)

    def keep(self, Z: Jets, old: tuple[Tensor, ...]) -> list[Tensor]:
        """The tensors kept for Z (``ema``: updating the previous sketch ``old``)."""
        return _sketch_components(Z, self, old)

    def restorer(self, kept: tuple[Tensor, ...], n_points: int, width: int,
                 num_components: int) -> RowSource:
        """(rows, buf) -> Z_hat[:, rows] (J, rows, w) from the tensors of :meth:`keep`,
        rebuilt into ``buf`` one block of points at a time (coeffs[rows] basis^T), never as
        a whole."""
        approx = sketch_approximations(kept, self, n_points, width, num_components)

        def rows_of(rows: slice, block: Jets) -> Jets:
            for j, a in enumerate(approx):
                if isinstance(a, RangeFinderApprox):
                    torch.mm(a.coeffs[rows], a.basis.T, out=block[j])
                else:
                    block[j].copy_(a[rows] if isinstance(a, Tensor)
                                   else a.row_block(rows.start, rows.stop))
            return block

        return rows_of


def sketch_tensor_count(opts: SketchOptions, j: int) -> int:
    """Tensors kept for component j: 1 (exact), 3 (three_sketch, ema: X, Y, Z), 2 (coeffs,
    basis: the two-factor methods)."""
    if not opts.sketched(j):
        return 1
    return 2 if opts.method in TWO_FACTOR_METHODS else 3


_BLOCK_ELEMENTS = 1 << 21  # ~8 MB of float32 per transient jet block

RowSource = Callable[[slice, Jets], Jets]
"""(rows, buf) -> Z[:, rows]: a block of points of a layer's pre-activation jets, a view of the
kept Z or rebuilt into ``buf`` (a (J, rows, w) buffer the caller reuses for every block)."""


def _row_blocks(n: int, per_row: int) -> list[slice]:
    """Slices of at most ~_BLOCK_ELEMENTS / per_row points (at least 512) covering [0, n)."""
    step = max(512, _BLOCK_ELEMENTS // max(per_row, 1))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _block_buffer(like: Tensor, blocks: list[slice], width: int, count: int | None = None
                  ) -> Tensor:
    """One (count, rows of the first block, width) buffer (count defaults to like's J),
    reused by every block (sliced)."""
    rows = blocks[0].stop - blocks[0].start if blocks else 0
    return like.new_empty(like.shape[0] if count is None else count, rows, width)


def _act_linear_forward(act: Activation, plan: JetPlan, Z: Jets, W: Tensor, b: Tensor) -> Jets:
    """Zn = act_jet(Z) W^T (+ b on component 0), block by block of points.

    The post-activation jets exist one block of points at a time (a few MB), not as a
    second (J, N, w) tensor: the transient memory of the forward is the output alone.
    The block buffers are allocated once per pass, so the loop allocates nothing.
    """
    J, n, w_in = Z.shape
    out = Z.new_empty(J, n, W.shape[0])
    order = activation_order(plan)
    blocks = _row_blocks(n, J * max(w_in, W.shape[0]))
    buf = _block_buffer(Z, blocks, w_in)
    ds_buf = _block_buffer(Z, blocks, w_in, order + 1)
    for rows in blocks:
        Zb = Z[:, rows]
        nb = Zb.shape[1]
        ds = act.derivatives(Zb[0], order, out=ds_buf[:, :nb])
        H = activation_jets(act, Zb, plan, ds, out=buf[:, :nb])
        for j in range(J):
            torch.mm(H[j], W.T, out=out[j, rows])
    out[0] += b
    return out


def _act_linear_backward(ctx, rows_of: RowSource, shape: tuple[int, int, int], W: Tensor,
                         dZn: Jets) -> tuple:
    """(dZ, dW, db) of Zn = W act_jet(Z) (+ b), block by block of points.

    ``rows_of(rows, buf)`` gives Z[:, rows] (the kept Z, or a sketch's reconstruction of it
    written into ``buf``); ``shape`` is Z's (J, N, w_in).

    Per block: s and its derivatives at Z[0] once, shared by the recomputed H = act_jet(Z)
    (for dW = sum_j dZn[j]^T H[j], accumulated over blocks) and by the VJP
    dZ = act_jet_vjp(Z, dZn W). Only dZ and dW are full-size; H and dH exist one block at
    a time. Gradients are exact (the blocks only reorder the sums over points).
    """
    need_z, need_w, need_b = ctx.needs_input_grad[:3]
    J, n, w_in = shape
    w_out = W.shape[0]
    dZ = dZn.new_empty(shape) if need_z else None
    dW = torch.zeros_like(W) if need_w else None
    order = activation_order(ctx.plan, backward=need_z)
    if need_z or need_w:
        blocks = _row_blocks(n, J * max(w_in, w_out))
        z_buf = _block_buffer(dZn, blocks, w_in)  # untouched (no pages) for a kept Z
        h_buf = _block_buffer(dZn, blocks, w_in) if need_w else None
        dh_buf = _block_buffer(dZn, blocks, w_in) if need_z else None
        ds_buf = _block_buffer(dZn, blocks, w_in, order + 1)
        scratch = _block_buffer(dZn, blocks, w_in, 2) if need_z else None
        for rows in blocks:
            nb = rows.stop - rows.start
            Zb, dZnb = rows_of(rows, z_buf[:, :nb]), dZn[:, rows]
            ds = ctx.act.derivatives(Zb[0], order, out=ds_buf[:, :nb])
            if need_w:
                H = activation_jets(ctx.act, Zb, ctx.plan, ds, out=h_buf[:, :nb])
                for j in range(J):
                    dW.addmm_(dZnb[j].T, H[j])
            if need_z:
                dH = dh_buf[:, :nb]
                if w_out == 1:  # an outer product for the scalar output layer
                    torch.mul(dZnb, W[0], out=dH)
                else:  # per component: dZn[j] rows are contiguous, no copy of the block
                    for j in range(J):
                        torch.mm(dZnb[j], W, out=dH[j])
                activation_jets_vjp(ctx.act, Zb, dH, ctx.plan, ds, out=dZ[:, rows],
                                    scratch=scratch[:, :nb])
    db = dZn[0].sum(0) if need_b else None
    return dZ, dW, db


class InputLinear(Function):
    """First layer on input jets: Z1 = W J(x) (+ b on the value), J(x) the input jets.

    Inputs: x (N, d), W (w, d), b (w,), scale and shift (tuples of d floats: the MLP's
    ``in_scale``, ``in_shift``), plan. Output: (J, N, w).

    Keeps only x (and W). Gradients with respect to x, W, b are exact.
    """

    @staticmethod
    def forward(x: Points, W: Tensor, b: Tensor, scale: tuple[float, ...],
                shift: tuple[float, ...], plan: JetPlan) -> Jets:
        sc = torch.tensor(scale, dtype=x.dtype, device=x.device)
        sh = torch.tensor(shift, dtype=x.dtype, device=x.device)
        n, w = x.shape[0], W.shape[0]
        out = x.new_empty(plan.num_components, n, w)
        torch.addmm(b, x * sc + sh, W.T, out=out[0])
        for a, i in enumerate(plan.firsts):
            out[1 + a] = (W[:, i] * sc[i]).expand(n, w)
        out[1 + len(plan.firsts):].zero_()  # the second derivatives of a linear map
        return out

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, W, _b, scale, shift, plan = inputs
        ctx.save_for_backward(x, W)
        ctx.scale, ctx.shift, ctx.plan = scale, shift, plan

    @staticmethod
    def backward(ctx, dZ: Jets):
        x, W = ctx.saved_tensors
        sc = torch.tensor(ctx.scale, dtype=x.dtype, device=x.device)
        dx = dW = db = None
        if ctx.needs_input_grad[0]:
            dx = (dZ[0] @ W) * sc
        if ctx.needs_input_grad[1]:
            sh = torch.tensor(ctx.shift, dtype=x.dtype, device=x.device)
            dW = dZ[0].T @ (x * sc + sh)
            for a, i in enumerate(ctx.plan.firsts):
                dW[:, i] += dZ[1 + a].sum(0) * sc[i]
        if ctx.needs_input_grad[2]:
            db = dZ[0].sum(0)
        return dx, dW, db, None, None, None


class ActLinear(Function):
    """Fused activation jets + linear layer: Zn = W act_jet(Z) (+ b on the value component).

    Inputs: Z (J, N, w_in) pre-activation jets, W (w_out, w_in), b (w_out,), the activation,
    the plan. Output: (J, N, w_out).

    Keeps only Z (and W); backward recomputes H = act_jet(Z) and forms
    dW = sum_j dZn[j]^T H[j], db = sum over points of dZn[0],
    dZ = activation_jets_vjp(Z, dZn W). All gradients are exact.
    """

    @staticmethod
    def forward(Z: Jets, W: Tensor, b: Tensor, act: Activation, plan: JetPlan) -> Jets:
        return _act_linear_forward(act, plan, Z, W, b)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        Z, W, _b, act, plan = inputs
        ctx.save_for_backward(Z, W)
        ctx.act, ctx.plan = act, plan

    @staticmethod
    def backward(ctx, dZn: Jets):
        Z, W = ctx.saved_tensors
        dZ, dW, db = _act_linear_backward(ctx, lambda rows, _buf: Z[:, rows], Z.shape, W, dZn)
        return dZ, dW, db, None, None


def _sketch_components(Z: Jets, opts: SketchOptions, old: tuple[Tensor, ...]
                       ) -> list[Tensor]:
    """The flat list of tensors kept for Z (J, N, w), component by component."""
    n, w = Z.shape[1], Z.shape[2]
    out: list[Tensor] = []
    pos = 0
    for j in range(Z.shape[0]):
        if not opts.sketched(j):
            out.append(Z[0].clone())
            continue
        if opts.method in TWO_FACTOR_METHODS:
            approx = low_rank_factors(Z[j], opts.method, opts.rank, opts.seeds[j], opts.family)
            out.extend((approx.coeffs, approx.basis))
            continue
        spec = opts.spec(j, n, w)
        M = Z[j].T
        if opts.method == "ema" and old:
            sk = ema_update(ThreeSketch(*old[pos:pos + 3], spec=spec), M, opts.beta)
        else:
            sk = sketch(M, spec)
        pos += 3
        out.extend((sk.X, sk.Y, sk.Z))
    return out


def sketch_approximations(saved: tuple[Tensor, ...], opts: SketchOptions, n_points: int,
                          width: int, num_components: int) -> list:
    """Per component, what the kept tensors represent as an (N, w) approximation of Z[j].

    Returns a list with, for each component, either the exact (N, w) tensor or an object
    with ``dense()`` and ``row_block`` (:class:`~pinnsketch.sketch.RangeFinderApprox`, or the
    transposed :class:`~pinnsketch.sketch.LowRank` reconstruction of a three-sketch).
    """
    out: list = []
    pos = 0
    for j in range(num_components):
        count = sketch_tensor_count(opts, j)
        parts = saved[pos:pos + count]
        pos += count
        if not opts.sketched(j):
            out.append(parts[0])
        elif opts.method in TWO_FACTOR_METHODS:
            out.append(RangeFinderApprox(coeffs=parts[0], basis=parts[1]))
        else:
            sk = ThreeSketch(*parts, spec=opts.spec(j, n_points, width))
            out.append(reconstruct(sk).transpose())
    if pos != len(saved):
        raise RuntimeError(f"kept {len(saved)} sketch tensors, the layout expects {pos}")
    return out


class SketchedActLinear(Function):
    """Fused activation jets + linear layer that keeps a per-component sketch of Z.

    Inputs: Z (J, N, w_in), W, b, the activation, the plan, a :class:`SketchOptions`, and
    (``ema`` only, after the first step) the previous EMA sketch tensors. Outputs: Zn
    (J, N, w_out) and the kept sketch tensors (non-differentiable; the caller stores them
    as the next EMA state or measures the sketch error from them).

    For each jet component j separately, the (N x w) matrix Z[j] is replaced by a low-rank
    sketch: ``three_sketch`` keeps the Tropp et al. sketch of M = Z[j]^T (X (k x N),
    Y (w x k), core (s x s)), its test matrices regenerated in backward from seeds on the
    options; ``range_finder`` keeps Q (w x k) and Z[j] Q (N x k); ``ema`` keeps
    beta * old + (1 - beta) * new three-sketches with fixed test matrices. With
    ``exact_value`` component 0 is kept exactly.

    The options object decides what is kept (``opts.keep``) and how Z_hat is rebuilt
    (``opts.restorer``): the same Function serves :class:`CompressOptions` (``quant8``,
    ``projection``; see :data:`CompressedActLinear`).

    Exactness: the forward output is exact. Backward rebuilds Z_hat one block of points at a
    time (``opts.restorer``) and proceeds exactly as :class:`ActLinear` with Z_hat,
    so the gradients with respect to W, b and Z are approximate, their error set by the
    sketch error of Z; at full rank (k = min(N, w_in)) the reconstruction, hence every
    gradient, is exact up to round-off. ``ema`` gradients are biased by design (the sketch
    mixes past batches).
    """

    @staticmethod
    def forward(Z: Jets, W: Tensor, b: Tensor, act: Activation, plan: JetPlan,
                opts: SketchOptions | CompressOptions, *old: Tensor):
        with torch.no_grad():
            kept = opts.keep(Z, old)
        return (_act_linear_forward(act, plan, Z, W, b), *kept)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        Z, W, _b, act, plan, opts = inputs[:6]
        kept = output[1:]
        ctx.mark_non_differentiable(*kept)
        ctx.save_for_backward(W, *kept)
        ctx.act, ctx.plan, ctx.opts = act, plan, opts
        ctx.n_points, ctx.width, ctx.num_components = Z.shape[1], Z.shape[2], Z.shape[0]
        ctx.num_old = len(inputs) - 6

    @staticmethod
    def backward(ctx, dZn: Jets, *_unused):
        W, *kept = ctx.saved_tensors
        nones = (None,) * (3 + ctx.num_old)
        if not any(ctx.needs_input_grad[:3]):
            return (None, None, None) + nones
        rows_of = ctx.opts.restorer(tuple(kept), ctx.n_points, ctx.width, ctx.num_components)
        shape = (ctx.num_components, ctx.n_points, ctx.width)
        dZ, dW, db = _act_linear_backward(ctx, rows_of, shape, W, dZn)
        return (dZ, dW, db) + nones


@dataclass(frozen=True)
class CompressOptions:
    """How one layer's pre-activation jets are compressed (a frozen, tensor-free description).

    Attributes:
        method: ``"quant8"`` or ``"projection"`` (:data:`COMPRESSORS`).
        seeds: one seed per jet component: the rounding noise (``quant8``) or the
            projection R (``projection``) of that component; never the noise or R itself.
        rank: the projected width k >= 1 (``projection``; the engine clamps it to w);
            0 for ``quant8``, which has no rank.
        family: test-matrix family of R (``projection``).
        block_rows: points per block sharing one range per column (``quant8``).
    """

    method: str
    seeds: tuple[int, ...]
    rank: int = 0
    family: str = "gaussian"
    block_rows: int = QUANT_BLOCK_ROWS

    def __post_init__(self) -> None:
        if self.method not in COMPRESSORS:
            raise ValueError(f"unknown compressor {self.method!r}; valid: {', '.join(COMPRESSORS)}")
        if not is_int(self.rank):
            raise ValueError(f"rank must be an int, got {self.rank!r}")
        if self.method == "projection" and self.rank < 1:
            raise ValueError(f"projection needs a rank (projected width) >= 1, got {self.rank}")
        if self.method == "quant8" and self.rank != 0:
            raise ValueError(f"quant8 has no rank; pass rank=0, got {self.rank}")
        if self.family not in SKETCH_FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; valid: {', '.join(SKETCH_FAMILIES)}")
        if not is_int(self.block_rows) \
                or self.block_rows < 1:
            raise ValueError(f"block_rows must be an int >= 1, got {self.block_rows!r}")

    @property
    def tensors_per_component(self) -> int:
        """3 for quant8 (codes, lo, step), 1 for projection (A R)."""
        return 3 if self.method == "quant8" else 1

    def keep(self, Z: Jets, old: tuple[Tensor, ...] = ()) -> list[Tensor]:
        """The tensors kept for Z (no state across steps: ``old`` is empty)."""
        return compress_jets(Z, self)

    def restorer(self, kept: tuple[Tensor, ...], n_points: int, width: int,
                 num_components: int) -> RowSource:
        """(rows, buf) -> Z_hat[:, rows] from the tensors of :meth:`keep` (decompressed
        whole; ``buf`` unused)."""
        Zhat = decompress_jets(kept, self, width, num_components)
        return lambda rows, _buf: Zhat[:, rows]


def compress_jets(Z: Jets, opts: CompressOptions) -> list[Tensor]:
    """The flat list of tensors kept for Z (J, N, w), component by component."""
    out: list[Tensor] = []
    for j in range(Z.shape[0]):
        if opts.method == "quant8":
            q = quantize(Z[j], opts.seeds[j], opts.block_rows)
            out.extend((q.codes, q.lo, q.step))
        else:
            out.append(project(Z[j], opts.rank, opts.seeds[j], opts.family))
    return out


def decompress_jets(saved: tuple[Tensor, ...], opts: CompressOptions, width: int,
                    num_components: int) -> Jets:
    """Z_hat (J, N, w) from the tensors of :func:`compress_jets`."""
    per = opts.tensors_per_component
    if len(saved) != per * num_components:
        raise RuntimeError(f"kept {len(saved)} tensors, the layout expects "
                           f"{per * num_components}")
    comps = []
    for j in range(num_components):
        parts = saved[j * per:(j + 1) * per]
        if opts.method == "quant8":
            comps.append(dequantize(Quantized(*parts, block_rows=opts.block_rows)))
        else:
            comps.append(unproject(parts[0], width, opts.seeds[j], opts.family))
    return torch.stack(comps)


CompressedActLinear = SketchedActLinear
"""The same fused Function with :class:`CompressOptions`: each component Z[j] (N x w) is kept
as ``quant8`` uint8 codes with stochastic rounding and per row-block, per column ranges
(:func:`~pinnsketch.sketch.quantize.quantize`) or as the ``projection`` Z[j] R (N x k), R
regenerated from the component's seed (:func:`~pinnsketch.sketch.projection.project`). Both
reconstructions are unbiased, E[Z_hat] = Z; the gradients are approximate (dW, db are
nonlinear in Z_hat) and exact up to round-off where Z_hat = Z (``quant8`` with
``block_rows=1``; ``projection`` with the ``srft`` family at k = w)."""


def input_linear(points: Points, affine, dense, plan: JetPlan) -> Jets:
    """Jets (J, N, w) of ``dense(affine(points))``, keeping only the points (``affine`` an
    :class:`~pinnsketch.network.AffineInput`, ``dense`` a plain dense layer)."""
    return InputLinear.apply(points, dense.weight, dense.bias,
                             tuple(float(v) for v in affine.in_scale.tolist()),
                             tuple(float(v) for v in affine.in_shift.tolist()), plan)


def act_linear(Z: Jets, layer: torch.nn.Linear, act: Activation, plan: JetPlan) -> Jets:
    """Exact fused activation + linear: keeps Z only."""
    return ActLinear.apply(Z, layer.weight, layer.bias, act, plan)


def sketched_act_linear(Z: Jets, layer: torch.nn.Linear, act: Activation, plan: JetPlan,
                        opts: SketchOptions, old: tuple[Tensor, ...] = ()
                        ) -> tuple[Jets, tuple[Tensor, ...]]:
    """Sketched fused activation + linear: (Zn, kept sketch tensors)."""
    out = SketchedActLinear.apply(Z, layer.weight, layer.bias, act, plan, opts, *old)
    return out[0], tuple(out[1:])


def compressed_act_linear(Z: Jets, layer: torch.nn.Linear, act: Activation, plan: JetPlan,
                          opts: CompressOptions) -> Jets:
    """Compressed fused activation + linear (``quant8`` or ``projection``): Zn only."""
    return CompressedActLinear.apply(Z, layer.weight, layer.bias, act, plan, opts)[0]

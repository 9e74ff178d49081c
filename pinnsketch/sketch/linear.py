"""A drop-in linear layer for classifiers that keeps a low-rank sketch of its input.

For y = a W^T + b with a (N x w_in) the layer input (optionally a = relu(x), fused), plain
autograd keeps a whole for the weight gradient dW = dy^T a. :class:`SketchedLinear` keeps
instead a low-rank approximation a_hat of a and forms

    dW = dy^T a_hat = (dy^T (a Q)) Q^T          (range finder: a_hat = (a Q) Q^T)
    dW = ((dy^T P) C^T) Q^T                     (three-sketch of a^T: a^T ~ Q C P^T)

without materializing a_hat, while da = dy W (hence dx) and db = sum(dy) stay exact: they
do not need a. Methods: ``truncated_svd`` (the optimal rank-k a_hat, from the smaller Gram
matrix), ``range_finder``, ``three_sketch`` (a fresh sketch of the current batch every step)
and ``ema``, the paper's mode (Antil & Verma 2025): one three-sketch of a^T with fixed test
matrices kept across steps as an exponential moving average, S <- beta S + (1 - beta)
sketch(a^T); its gradient mixes past batches in and is biased by design (DESIGN.md section 2).
A fused ReLU needs in backward only the sign pattern of x, which is kept bit-packed (8 signs
per byte), so its cost is N w_in / 8 bytes instead of 4 N w_in.

Held for backward per layer (``itemsize`` bytes per number, k the rank, s = min(2k + 1,
N, w_in)): ``truncated_svd``, ``range_finder`` k (N + w_in), ``three_sketch``, ``ema``
k (N + w_in) + s^2 numbers, plus
ceil(N w_in / 8) bytes with the fused ReLU; with k >= min(N, w_in) the input is kept exactly
(N w_in numbers, and the ReLU signs are read from it). See :func:`held_bytes_formula`.
Optionally (``sketch_dtype="bfloat16"`` or ``"float16"``) the sketch factors are stored in
2-byte floats and cast back in backward: half the bytes for a relative rounding error of
2^-8 (bf16) or 2^-11 (fp16) per entry, far below the truncation error of the sketch. An
exactly kept input is never rounded.

The module is the only place here that touches ``ctx`` (STYLE.md item 7): separate
``forward`` and ``setup_context``, tensors through ``save_for_backward``, a seed (never a
test matrix) on ctx, ``ctx.needs_input_grad`` honoured.

>>> lin = torch.nn.Linear(6, 3)
>>> sk = SketchedLinear.from_linear(lin, rank=2)
>>> x = torch.randn(5, 6)
>>> torch.equal(sk(x), lin(x))
True
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from pinnsketch.checks import is_int, is_real
from pinnsketch.seeds import derive_seed
from pinnsketch.sketch.methods import held_numel
from pinnsketch.sketch.range_finder import (
    TWO_FACTOR_METHODS,
    RangeFinderApprox,
    low_rank_factors,
)
from pinnsketch.sketch.test_matrices import check_family, derive_seeds
from pinnsketch.sketch.three_sketch import (
    SketchSpec,
    ThreeSketch,
    ema_update,
    reconstruct,
    relative_error,
    sketch,
)

__all__ = ["LINEAR_SKETCH_METHODS", "LinearSketchOptions", "SketchedLinearFunction",
           "SketchedLinear", "sketchify", "pack_signs", "unpack_signs", "held_bytes_formula",
           "call_seed", "SKETCH_DTYPES"]

LINEAR_SKETCH_METHODS = TWO_FACTOR_METHODS + ("three_sketch", "ema")
SKETCH_DTYPES = ("float32", "float64", "bfloat16", "float16")
_BIT_WEIGHTS = tuple(1 << i for i in range(8))


def pack_signs(mask: Tensor) -> Tensor:
    """Pack a boolean tensor into uint8, 8 entries per byte (entry 8 j + i is bit i of byte j).

    Returns a 1-D uint8 tensor of ceil(numel / 8) bytes; :func:`unpack_signs` inverts it.

    >>> m = torch.tensor([True, False, True, True, False, False, False, False, True])
    >>> pack_signs(m).tolist()
    [13, 1]
    """
    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=mask.device)
    return (flat.view(-1, 8) * weights).sum(dim=1, dtype=torch.uint8)


def unpack_signs(packed: Tensor, shape: tuple[int, ...] | torch.Size) -> Tensor:
    """The boolean tensor of ``shape`` packed by :func:`pack_signs`.

    >>> unpack_signs(torch.tensor([13, 1], dtype=torch.uint8), (9,)).int().tolist()
    [1, 0, 1, 1, 0, 0, 0, 0, 1]
    """
    n = math.prod(shape)
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=packed.device)
    bits = (packed.reshape(-1, 1) & weights) != 0
    return bits.reshape(-1)[:n].reshape(shape)


def call_seed(base: int, call: int) -> int:
    """A seed in [0, 2**63) for forward call ``call`` of a layer with base seed ``base``.

    >>> call_seed(0, 1) == call_seed(0, 1) != call_seed(0, 2)
    True
    """
    return derive_seed(base, call)


def _check_rank(rank: object) -> None:
    if not is_int(rank) or rank < 1:
        raise ValueError(f"rank must be an int >= 1, got {rank!r}")


def _check_sketch_dtype(name: str | None) -> None:
    if name is not None and name not in SKETCH_DTYPES:
        raise ValueError(f"unknown sketch dtype {name!r}; valid: None (the input's dtype), "
                         f"{', '.join(SKETCH_DTYPES)}")


def _check_beta(beta: object) -> None:
    if not is_real(beta) or not 0.0 <= beta < 1.0:
        raise ValueError(f"beta={beta!r} must satisfy 0 <= beta < 1 (the EMA weight of the "
                         "past; beta = 1 would ignore every new batch); e.g. 0.9")


def _check_method(method: str) -> None:
    if method not in LINEAR_SKETCH_METHODS:
        raise ValueError(f"unknown sketch method {method!r} for linear layers; valid methods: "
                         f"{', '.join(LINEAR_SKETCH_METHODS)}")


@dataclass(frozen=True)
class LinearSketchOptions:
    """How one call of :class:`SketchedLinearFunction` keeps its input (tensor-free).

    Attributes:
        rank: k >= 1; k >= min(N, w_in) keeps the input exactly.
        method: ``"truncated_svd"``, ``"range_finder"`` (two-pass, one power iteration),
            ``"three_sketch"`` (Tropp et al. 2019, single pass, of a^T) or ``"ema"`` (the
            three-sketch averaged with the previous one passed to the Function).
        seed: regenerates this call's test matrices (``ema``: the same every call).
        relu: fuse a ReLU before the layer (a = relu(x)).
        family: test-matrix family.
        sketch_dtype: None (the input's dtype) or a name in :data:`SKETCH_DTYPES`: the
            float type the sketch factors are stored in.
        beta: EMA weight of the past (``ema`` only), 0 <= beta < 1.
    """

    rank: int
    method: str = "range_finder"
    seed: int = 0
    relu: bool = False
    family: str = "gaussian"
    sketch_dtype: str | None = None
    beta: float = 0.9

    def __post_init__(self) -> None:
        _check_rank(self.rank)
        _check_method(self.method)
        _check_beta(self.beta)
        check_family(self.family)
        _check_sketch_dtype(self.sketch_dtype)

    def exact(self, n: int, w: int) -> bool:
        """Whether the input (N x w) is kept exactly: k >= min(N, w)."""
        return self.rank >= min(n, w)


def held_bytes_formula(n: int, w_in: int, rank: int, method: str = "range_finder",
                       relu: bool = False, itemsize: int = 4,
                       sketch_itemsize: int | None = None) -> int:
    """Bytes one :class:`SketchedLinear` call keeps for backward (parameters excluded).

    ``itemsize`` is the input's bytes per number, ``sketch_itemsize`` the sketch's (default
    the same; 2 with ``sketch_dtype="bfloat16"``).

    >>> held_bytes_formula(128, 784, 16)              # 16 (128 + 784) floats
    58368
    >>> held_bytes_formula(128, 512, 16, relu=True)   # + 128 * 512 / 8 sign bytes
    49152
    >>> held_bytes_formula(8, 512, 16, relu=True)     # rank >= N: exact
    16384
    """
    _check_rank(rank)
    _check_method(method)
    if rank >= min(n, w_in):
        return itemsize * n * w_in
    numbers = held_numel(method, n, w_in, rank)
    size = itemsize if sketch_itemsize is None else sketch_itemsize
    return size * numbers + (math.ceil(n * w_in / 8) if relu else 0)


class SketchedLinearFunction(Function):
    """y = a W^T + b, a = relu(x) if fused else x, keeping a low-rank sketch of a.

    Inputs: x (N, w_in), W (w_out, w_in), b (w_out,) or None, a
    :class:`LinearSketchOptions`, and for ``ema`` optionally the previous EMA sketch
    (X, Y, Z) (non-differentiable; none: start from this batch's sketch). Outputs:
    y (N, w_out), then the kept tensors (non-differentiable; for ``ema`` the first three are
    the new EMA state, X, Y, Z).

    Exactness: y is exact. dx = (dy W) * [x > 0] (fused ReLU) or dy W, and db = sum_N dy,
    are exact at every rank. dW = dy^T a_hat is approximate, its error set by the sketch
    error of a; at k >= min(N, w_in) a is kept and dW is exact (for ``ema`` too: the
    average is then skipped). With ``ema``, a_hat reconstructs beta S_old + (1 - beta)
    sketch(a^T), i.e. the sketch of the mix beta a_old + (1 - beta) a (sketching is linear).
    """

    @staticmethod
    def forward(x: Tensor, W: Tensor, b: Tensor | None, opts: LinearSketchOptions,
                *old: Tensor):
        a = F.relu(x) if opts.relu else x
        y = F.linear(a, W, b)
        n, w = x.shape
        if opts.exact(n, w):
            return (y, a) if opts.relu else (y,)  # without ReLU x itself is saved
        if opts.method in TWO_FACTOR_METHODS:
            approx = low_rank_factors(a, opts.method, opts.rank, opts.seed, opts.family)
            kept = [approx.coeffs, approx.basis]
        else:
            spec = SketchSpec(m=w, n=n, k=opts.rank, seed=opts.seed, family=opts.family)
            if opts.method == "ema" and old:
                prev = ThreeSketch(*(t.to(a.dtype) for t in old), spec=spec)
                sk = ema_update(prev, a.T.contiguous(), float(opts.beta))
            else:
                sk = sketch(a.T, spec)
            kept = [sk.X, sk.Y, sk.Z]
        if opts.sketch_dtype is not None:
            dt = getattr(torch, opts.sketch_dtype)
            kept = [t.to(dt) for t in kept]
        if opts.relu:
            kept.append(pack_signs(x > 0))
        return (y, *kept)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, W, b, opts, *old = inputs
        kept = output[1:]
        ctx.num_old = len(old)
        if kept:
            ctx.mark_non_differentiable(*kept)
        n, w = x.shape
        ctx.opts, ctx.n, ctx.w = opts, n, w
        ctx.exact = opts.exact(n, w)
        ctx.has_bias = b is not None
        if ctx.exact and not opts.relu:
            ctx.save_for_backward(W, x)
        else:
            ctx.save_for_backward(W, *kept)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor, *_unused):
        W, *kept = ctx.saved_tensors
        opts = ctx.opts
        if not ctx.exact and opts.sketch_dtype is not None:
            factors = 2 if opts.method in TWO_FACTOR_METHODS else 3
            kept[:factors] = [t.to(dy.dtype) for t in kept[:factors]]
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx = dW = db = None
        if need_x:
            dx = dy @ W
            if opts.relu:
                mask = kept[0] > 0 if ctx.exact else unpack_signs(kept[-1], (ctx.n, ctx.w))
                dx = dx * mask
        if need_w:
            if ctx.exact:
                dW = dy.T @ kept[0]
            elif opts.method in TWO_FACTOR_METHODS:
                coeffs, basis = kept[0], kept[1]
                dW = (dy.T @ coeffs) @ basis.T
            else:
                spec = SketchSpec(m=ctx.w, n=ctx.n, k=opts.rank, seed=opts.seed,
                                  family=opts.family)
                low = reconstruct(ThreeSketch(kept[0], kept[1], kept[2], spec=spec))
                # a^T ~ Q C P^T, so dy^T a_hat = ((dy^T P) C^T) Q^T
                dW = ((dy.T @ low.P) @ low.C.T) @ low.Q.T
        if need_b and ctx.has_bias:
            db = dy.sum(0)
        return (dx, dW, db, None) + (None,) * ctx.num_old


class SketchedLinear(nn.Module):
    """nn.Linear that keeps a rank-``rank`` sketch of its input for the weight gradient.

    Args:
        in_features, out_features, bias: as :class:`torch.nn.Linear`.
        rank: sketch rank k >= 1 (k >= min(batch, in_features) keeps the input exactly);
            :meth:`set_rank` changes it between steps.
        method: ``"range_finder"`` (default), ``"truncated_svd"``, ``"three_sketch"`` or
            ``"ema"``.
        seed: base seed; forward call c sketches with :func:`call_seed` (seed, c), so every
            training step draws fresh test matrices, deterministically. ``ema`` uses the
            test matrices of call 0 at every call (the average needs fixed ones).
        activation: None, or ``"relu"`` to apply a fused ReLU to the input first
            (y = relu(x) W^T + b), keeping only the bit-packed signs for it.
        family: test-matrix family (``pinnsketch.sketch.SKETCH_FAMILIES``).
        sketch_dtype: None, or a float type name the sketch factors are stored in
            (``"bfloat16"``: half the bytes).
        beta: EMA weight of the past (``ema`` only), 0 <= beta < 1; beta = 0 is a fresh
            three-sketch of every batch with fixed test matrices.

    ``ema`` keeps its sketch (X, Y, Z) between steps (``ema_state``; the same tensors that
    backward holds, so it adds no bytes); it needs the same batch size at every training
    call (:meth:`reset_ema` forgets it). With ``measure_error = True`` each training call
    records in ``last_error`` the exact relative error ||a - a_hat||_F / ||a||_F of the
    kept approximation (0 where a is kept exactly), for rank control.

    Without gradient (``torch.no_grad``, or nothing requiring grad) it is a plain linear
    layer and keeps nothing. Inputs of any shape (..., in_features) are accepted.

    >>> layer = SketchedLinear(8, 4, rank=2, activation="relu")
    >>> layer(torch.randn(3, 8)).shape
    torch.Size([3, 4])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 rank: int, method: str = "range_finder", seed: int = 0,
                 activation: str | None = None, family: str = "gaussian",
                 sketch_dtype: str | None = None, beta: float = 0.9, device=None, dtype=None,
                 _init: bool = True):
        super().__init__()
        LinearSketchOptions(rank=rank, method=method, family=family,
                            sketch_dtype=sketch_dtype, beta=beta)  # validates
        if activation not in (None, "relu"):
            raise ValueError(f"activation must be None or 'relu', got {activation!r}")
        derive_seeds(seed, 1)  # validates the seed
        self.in_features, self.out_features = in_features, out_features
        self.rank, self.method, self.seed = int(rank), method, int(seed)
        self.activation, self.family, self.sketch_dtype = activation, family, sketch_dtype
        self.beta = float(beta)
        self.calls = 0
        self.ema_state: tuple[Tensor, ...] = ()
        self.measure_error = False
        self.last_error: float | None = None
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.bias = nn.Parameter(torch.empty(out_features, **kw)) if bias else None
        if _init:
            self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The initialisation of :class:`torch.nn.Linear` (uniform, bound 1/sqrt(fan_in))."""
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        nn.init.uniform_(self.weight, -bound, bound, generator=generator)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound, generator=generator)

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, method: str = "range_finder",
                    seed: int = 0, activation: str | None = None,
                    family: str = "gaussian", sketch_dtype: str | None = None,
                    beta: float = 0.9) -> SketchedLinear:
        """A SketchedLinear with a copy of ``linear``'s weight and bias (same dtype, device)."""
        w = linear.weight
        out = cls(linear.in_features, linear.out_features, linear.bias is not None, rank=rank,
                  method=method, seed=seed, activation=activation, family=family,
                  sketch_dtype=sketch_dtype, beta=beta, device=w.device, dtype=w.dtype,
                  _init=False)
        with torch.no_grad():
            out.weight.copy_(w)
            if linear.bias is not None:
                out.bias.copy_(linear.bias)
        out.weight.requires_grad_(w.requires_grad)
        return out

    def set_rank(self, rank: int) -> None:
        """Change the sketch rank (between steps); forgets the EMA sketch."""
        _check_rank(rank)
        self.rank = int(rank)
        self.reset_ema()

    def reset_ema(self) -> None:
        """Forget the EMA sketch (the next ``ema`` call starts from its own batch's sketch)."""
        self.ema_state = ()

    def forward(self, x: Tensor) -> Tensor:
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters()))
        if not needs_grad:
            a = F.relu(x) if self.activation == "relu" else x
            return F.linear(a, self.weight, self.bias)
        ema = self.method == "ema"
        opts = LinearSketchOptions(rank=self.rank, method=self.method,
                                   seed=call_seed(self.seed, 0 if ema else self.calls),
                                   relu=self.activation == "relu", family=self.family,
                                   sketch_dtype=self.sketch_dtype, beta=self.beta)
        self.calls += 1
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        n = flat.shape[0]
        exact = opts.exact(n, self.in_features)
        old = self.ema_state if ema and not exact else ()
        if old and old[0].shape[1] != n:
            raise ValueError(f"method='ema' keeps a sketch across steps and needs the same "
                             f"batch size every training call: had {old[0].shape[1]}, got {n}; "
                             "use a fixed batch size, call reset_ema(), or use method="
                             "'three_sketch'")
        out = SketchedLinearFunction.apply(flat, self.weight, self.bias, opts, *old)
        if ema and not exact:
            self.ema_state = tuple(t.detach() for t in out[1:4])
        if self.measure_error:
            self.last_error = self._sketch_error(flat, out[1:], opts, exact)
        return out[0].reshape(*lead, self.out_features)

    @torch.no_grad()
    def _sketch_error(self, x: Tensor, kept: tuple[Tensor, ...], opts: LinearSketchOptions,
                      exact: bool) -> float:
        """||a - a_hat||_F / ||a||_F of what this call keeps (0.0 when a is kept exactly)."""
        if exact:
            return 0.0
        a = F.relu(x) if opts.relu else x
        if opts.method in TWO_FACTOR_METHODS:
            approx = RangeFinderApprox(coeffs=kept[0].to(a.dtype), basis=kept[1].to(a.dtype))
            return float(relative_error(a, approx))
        spec = SketchSpec(m=a.shape[1], n=a.shape[0], k=opts.rank, seed=opts.seed,
                          family=opts.family)
        low = reconstruct(ThreeSketch(*(t.to(a.dtype) for t in kept[:3]), spec=spec))
        return float(relative_error(a.T, low))

    def extra_repr(self) -> str:
        act = f", activation={self.activation}" if self.activation else ""
        dt = f", sketch_dtype={self.sketch_dtype}" if self.sketch_dtype else ""
        beta = f", beta={self.beta}" if self.method == "ema" else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, rank={self.rank}, method={self.method}"
                f"{beta}{act}{dt}")


def sketchify(model: nn.Module, rank: int, method: str = "range_finder",
              skip_last: bool = True, seed: int = 0, fuse_relu: bool = True,
              family: str = "gaussian", sketch_dtype: str | None = None,
              beta: float = 0.9) -> nn.Module:
    """A copy of ``model`` with its nn.Linear layers replaced by :class:`SketchedLinear`.

    Weights and biases are copied, so outputs are bitwise equal. In every nn.Sequential an
    nn.ReLU directly before a converted layer is fused into it (replaced by nn.Identity):
    the pair then keeps only the sketch and the packed signs.

    Args:
        model: any module (not modified).
        rank: sketch rank of every converted layer.
        method: one of :data:`LINEAR_SKETCH_METHODS`.
        skip_last: keep the last nn.Linear (in module order; usually the output layer) as
            it is.
        seed: base seed; each converted layer gets its own seed derived from it.
        fuse_relu: fuse a preceding nn.ReLU as described.
        family: test-matrix family.
        sketch_dtype: None or the float type name the sketch factors are stored in.
        beta: EMA weight of the past (``method="ema"`` only).

    Returns:
        The converted copy.

    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> sketchify(net, rank=2, skip_last=False)[2]
    SketchedLinear(in_features=8, out_features=2, bias=True, rank=2, method=range_finder, activation=relu)
    """
    LinearSketchOptions(rank=rank, method=method, family=family,
                        sketch_dtype=sketch_dtype, beta=beta)  # validates
    model = copy.deepcopy(model)
    targets = [(name, m) for name, m in model.named_modules() if type(m) is nn.Linear]
    if skip_last and targets:
        targets = targets[:-1]
    if not targets:
        return model
    seeds = derive_seeds(seed, len(targets))
    converted: set[int] = set()
    for (name, linear), s in zip(targets, seeds, strict=True):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        new = SketchedLinear.from_linear(linear, rank, method, s, family=family,
                                         sketch_dtype=sketch_dtype, beta=beta)
        setattr(parent, child, new)
        converted.add(id(new))
    if fuse_relu:
        for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
            names = list(seq._modules)
            for i in range(len(names) - 1):
                cur, nxt = seq._modules[names[i]], seq._modules[names[i + 1]]
                if (type(cur) is nn.ReLU and id(nxt) in converted
                        and nxt.activation is None):
                    nxt.activation = "relu"
                    seq._modules[names[i]] = nn.Identity()
    return model

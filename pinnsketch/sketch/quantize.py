"""8-bit quantization with stochastic rounding (ActNN-style), pure torch.

A matrix A (N x w: N points, w features) is cut into row blocks of ``block_rows`` points;
within each block every column c gets its own range [lo, hi] (min and max over the block's
rows) and step = (hi - lo) / 255. An entry a becomes the code

    q = floor((a - lo) / step + u),   u ~ U[0, 1) drawn from a seeded generator,

an integer in [0, 255] kept as uint8, and is restored as a_hat = lo + q step. Since
E[floor(y + u)] = y for any real y, E[a_hat] = a (unbiased), with
|a_hat - a| < step and Var(a_hat) = step^2 f (1 - f) <= step^2 / 4, f = frac((a - lo) / step).
A column that is constant within a block (step = 0) is restored exactly.

Held: N w one-byte codes plus lo and step, 2 ceil(N / block_rows) w numbers in A's dtype,
i.e. about 1/4 of a float32 A (1/8 of a float64 one) for block_rows >> 8. The noise is
drawn from the seed and never stored; only the codes and the ranges are.

Why per column within row blocks: the columns are neurons, whose pre-activations have very
different ranges (per-channel scaling, as in ActNN's per-group ranges); row blocks keep a few
extreme points (e.g. near a shock) from coarsening the step of every other point, at a cost
of 8 / block_rows bytes per number in float32 (3% at the default 256).

Reference: J. Chen, L. Zheng, Z. Yao, D. Wang, I. Stoica, M. W. Mahoney, J. E. Gonzalez,
"ActNN: Reducing training memory footprint via 2-bit activation compressed training",
ICML 2021.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pinnsketch.checks import is_int

__all__ = ["QUANT_BLOCK_ROWS", "QUANT_LEVELS", "Quantized", "dequantize", "quant8_numbytes",
           "quantize"]

QUANT_LEVELS = 255
"""Largest code: 8 bits give the codes 0..255, i.e. 255 steps between lo and hi."""

QUANT_BLOCK_ROWS = 256
"""Default rows (points) per block sharing one range per column."""


def _check_block_rows(block_rows: int) -> int:
    if not is_int(block_rows) or block_rows < 1:
        raise ValueError(f"block_rows={block_rows!r} must be an int >= 1 (points per block "
                         f"sharing one range per column); e.g. {QUANT_BLOCK_ROWS}")
    return block_rows


@dataclass(frozen=True, eq=False)
class Quantized:
    """A_hat = lo + codes * step, per row block and column.

    Attributes:
        codes: (N, w) uint8.
        lo: (B, w) per block and column minimum, B = ceil(N / block_rows).
        step: (B, w) per block and column (max - min) / 255.
        block_rows: rows per block (the last block may be shorter).
    """

    codes: Tensor
    lo: Tensor
    step: Tensor
    block_rows: int

    def __post_init__(self) -> None:
        if self.codes.dtype != torch.uint8 or self.codes.dim() != 2:
            raise ValueError(f"codes must be a 2-D uint8 tensor, got {self.codes.dtype} "
                             f"{tuple(self.codes.shape)}")
        n, w = self.codes.shape
        blocks = math.ceil(n / _check_block_rows(self.block_rows))
        for name in ("lo", "step"):
            t = getattr(self, name)
            if tuple(t.shape) != (blocks, w):
                raise ValueError(f"{name} must be (ceil(N / block_rows), w) = ({blocks}, {w}) "
                                 f"for codes {tuple(self.codes.shape)} and block_rows "
                                 f"{self.block_rows}, got {tuple(t.shape)}")

    @property
    def shape(self) -> tuple[int, int]:
        """(N, w), the shape of A_hat."""
        return (self.codes.shape[0], self.codes.shape[1])

    def nbytes(self) -> int:
        """Bytes held: the codes plus lo and step."""
        return sum(t.numel() * t.element_size() for t in (self.codes, self.lo, self.step))

    def dense(self) -> Tensor:
        """A_hat (N, w) in the dtype of ``lo``."""
        return dequantize(self)


def quant8_numbytes(n: int, w: int, itemsize: int, block_rows: int = QUANT_BLOCK_ROWS) -> int:
    """Bytes :func:`quantize` keeps for an (N x w) matrix: N w + 2 ceil(N / block_rows) w itemsize.

    >>> quant8_numbytes(1000, 50, 4)
    51600
    """
    _check_block_rows(block_rows)
    return n * w + 2 * math.ceil(n / block_rows) * w * itemsize


def _block_minmax(A: Tensor, block_rows: int) -> tuple[Tensor, Tensor]:
    n, w = A.shape
    full = n // block_rows * block_rows
    los, his = [], []
    if full:
        blocks = A[:full].reshape(full // block_rows, block_rows, w)
        los.append(blocks.amin(1))
        his.append(blocks.amax(1))
    if full < n:
        los.append(A[full:].amin(0, keepdim=True))
        his.append(A[full:].amax(0, keepdim=True))
    return torch.cat(los), torch.cat(his)


def _rows(per_block: Tensor, block_rows: int, n: int) -> Tensor:
    """Expand (B, w) per-block values to (N, w) per-row values."""
    return per_block.repeat_interleave(block_rows, dim=0)[:n]


def quantize(A: Tensor, seed: int, block_rows: int = QUANT_BLOCK_ROWS) -> Quantized:
    """Stochastically rounded 8-bit codes of A, per row block and column (module docstring).

    Args:
        A: (N, w) real floating matrix (finite).
        seed: int in [0, 2**63): seeds the rounding noise (a generator on A's device).
        block_rows: rows per block sharing one range per column, >= 1 (1: every entry its
            own range, hence exact; larger blocks cost fewer bytes and add more noise).

    Returns:
        :class:`Quantized` with uint8 codes and lo, step in A's dtype.

    Raises:
        ValueError: A not a 2-D floating matrix, a non-finite entry, a bad seed or block size.

    >>> A = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.5, 1.0]], dtype=torch.float64)
    >>> q = quantize(A, seed=0, block_rows=2)
    >>> q.codes.tolist()[0], q.step.tolist()
    ([0, 0], [[0.00392156862745098, 0.0], [0.0, 0.0]])
    >>> bool((dequantize(q) - A).abs().max() < 1 / 255)
    True
    """
    if not isinstance(A, Tensor) or A.dim() != 2 or not A.dtype.is_floating_point:
        raise ValueError(f"A must be a 2-D real floating tensor, got {type(A).__name__} "
                         f"{tuple(getattr(A, 'shape', ()))} {getattr(A, 'dtype', '')}")
    if not is_int(seed) or not 0 <= seed < 2**63:
        raise ValueError(f"seed={seed!r} must be an int in [0, 2**63)")
    _check_block_rows(block_rows)
    n, w = A.shape
    if n == 0 or w == 0:
        raise ValueError(f"A must be non-empty, got shape {tuple(A.shape)}")
    lo, hi = _block_minmax(A, block_rows)
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise ValueError("A has a non-finite entry (inf or nan); it cannot be quantized")
    step = (hi - lo) / QUANT_LEVELS
    safe = torch.where(step > 0, step, torch.ones_like(step))  # step 0: codes 0, exact
    y = (A - _rows(lo, block_rows, n)).div_(_rows(safe, block_rows, n))
    gen = torch.Generator(device=A.device).manual_seed(seed)
    y.add_(torch.rand(y.shape, generator=gen, dtype=A.dtype, device=A.device))
    codes = y.floor_().clamp_(0, QUANT_LEVELS).to(torch.uint8)
    return Quantized(codes=codes, lo=lo, step=step, block_rows=block_rows)


def dequantize(q: Quantized) -> Tensor:
    """A_hat = lo + codes * step, an (N, w) tensor in the dtype of ``q.lo``."""
    n = q.codes.shape[0]
    out = q.codes.to(q.lo.dtype).mul_(_rows(q.step, q.block_rows, n))
    return out.add_(_rows(q.lo, q.block_rows, n))

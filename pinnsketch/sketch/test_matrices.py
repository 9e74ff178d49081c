"""Random test matrices for sketching, regenerated from an integer seed.

A sketch stores a seed, never its test matrix: the same ``(family, rows, cols, seed)``
gives the same matrix on every call, in every dtype, on every device. Each matrix is drawn
in float64 on the CPU from an explicit ``torch.Generator`` and only then cast and moved, so
a CUDA matrix equals the CPU one (float32 is the float64 draw rounded). No global random
state is read or changed.

Families (``rows`` is the sketch dimension, ``cols`` the dimension being compressed):

- ``gaussian``: i.i.d. N(0, 1) entries, the family the error theory is proved for.
- ``sparse_sign``: each column holds ``zeta = min(rows, 8)`` entries +-1 at distinct random
  rows, zeros elsewhere (stored dense here).
- ``srft``: ``sqrt(cols / rows) * R F D``, with D a random +-1 diagonal (cols x cols), F the
  orthonormal DCT-II matrix (cols x cols) and R a selection of ``rows`` distinct rows of F,
  chosen at random; needs ``rows <= cols``. Its rows are orthogonal with squared norm
  ``cols / rows``.

The module is named for what it builds and holds no pytest tests; ``test_matrix`` carries
``__test__ = False`` so that pytest does not collect it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pinnsketch.checks import check_seed, is_int
from pinnsketch.seeds import derive_seeds as _derive_seeds

__all__ = ["SKETCH_FAMILIES", "check_family", "derive_seeds", "test_matrix"]

SKETCH_FAMILIES = ("gaussian", "sparse_sign", "srft")

_SPARSE_SIGN_ZETA = 8


def check_family(family: str) -> None:
    """Raise ``ValueError`` unless ``family`` is one of :data:`SKETCH_FAMILIES`.

    Raises:
        ValueError: for an unknown family; the message lists the valid names.

    >>> check_family("srft")
    >>> check_family("fourier")
    Traceback (most recent call last):
    ...
    ValueError: unknown sketch family 'fourier'; valid families: gaussian, sparse_sign, srft
    """
    if family not in SKETCH_FAMILIES:
        raise ValueError(
            f"unknown sketch family {family!r}; valid families: {', '.join(SKETCH_FAMILIES)}"
        )


def derive_seeds(seed: int, count: int) -> tuple[int, ...]:
    """``count`` distinct sub-seeds of ``seed`` (a seed in [0, 2**63)), for a sketch's test
    matrices; see :func:`pinnsketch.seeds.derive_seeds`.

    >>> derive_seeds(0, 4) == derive_seeds(0, 4), len(set(derive_seeds(0, 4)))
    (True, 4)
    """
    return _derive_seeds(check_seed("seed", seed), count)


def _dct_rows(selected: Tensor, cols: int) -> Tensor:
    """Rows ``selected`` of the orthonormal DCT-II matrix of size ``cols`` (float64).

    F[j, i] = c_j sqrt(2 / cols) cos(pi (2 i + 1) j / (2 cols)), c_0 = 1 / sqrt(2), c_j = 1.
    The phase (2 i + 1) j is reduced modulo 4 cols in exact integer arithmetic first, so the
    cosine argument stays in [0, 2 pi) for any size.
    """
    i = torch.arange(cols, dtype=torch.int64)
    phase = torch.remainder((2 * i + 1)[None, :] * selected[:, None], 4 * cols)
    out = torch.cos(phase.to(torch.float64) * (math.pi / (2 * cols))) * math.sqrt(2.0 / cols)
    out[selected == 0] *= 1.0 / math.sqrt(2.0)
    return out


def test_matrix(
    family: str,
    rows: int,
    cols: int,
    seed: int,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A ``rows x cols`` random test matrix of ``family``, regenerated from ``seed``.

    Gaussian: S_ij ~ N(0, 1). Sparse sign: each column has min(rows, 8) entries +-1 at
    distinct random rows. SRFT: S = sqrt(cols / rows) R F D (see the module docstring).
    Drawn in float64 on the CPU from ``torch.Generator().manual_seed(seed)``, then cast to
    ``dtype`` and moved to ``device``: identical on CPU and CUDA.

    Args:
        family: one of :data:`SKETCH_FAMILIES`.
        rows: sketch dimension, >= 1 (for ``srft``, ``rows <= cols``).
        cols: dimension being sketched, >= 1.
        seed: int in [0, 2**63).
        dtype: floating dtype of the result; default ``torch.get_default_dtype()``.
        device: device of the result; default CPU.

    Returns:
        Tensor of shape (rows, cols).

    Raises:
        ValueError: for an unknown family, non-positive sizes, ``rows > cols`` with ``srft``,
            a bad seed, or a non-floating dtype.

    >>> a = test_matrix("sparse_sign", 3, 5, seed=7, dtype=torch.float64)
    >>> bool((a == test_matrix("sparse_sign", 3, 5, seed=7, dtype=torch.float64)).all())
    True
    >>> (a != 0).sum(dim=0).tolist()
    [3, 3, 3, 3, 3]
    """
    check_family(family)
    for name, value in (("rows", rows), ("cols", cols)):
        if not is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    check_seed("seed", seed)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    if family == "srft" and rows > cols:
        raise ValueError(
            f"an srft test matrix needs rows <= cols, got rows={rows} > cols={cols}; "
            "lower the sketch size or use family='gaussian' or 'sparse_sign'"
        )
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    f64 = torch.float64
    if family == "gaussian":
        out = torch.randn(rows, cols, generator=gen, dtype=f64)
    elif family == "sparse_sign":
        zeta = min(rows, _SPARSE_SIGN_ZETA)
        # Distinct rows per column: the first zeta entries of a random permutation of rows.
        where = torch.rand(rows, cols, generator=gen, dtype=f64).argsort(dim=0)[:zeta]
        signs = torch.randint(0, 2, (zeta, cols), generator=gen).to(f64) * 2.0 - 1.0
        out = torch.zeros(rows, cols, dtype=f64).scatter_(0, where, signs)
    else:  # srft
        selected = torch.randperm(cols, generator=gen)[:rows]
        signs = torch.randint(0, 2, (cols,), generator=gen).to(f64) * 2.0 - 1.0
        out = _dct_rows(selected, cols) * signs[None, :] * math.sqrt(cols / rows)
    return out.to(dtype=dtype, device=device)


test_matrix.__test__ = False  # type: ignore[attr-defined]

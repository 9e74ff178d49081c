"""One-sided random projection of an activation along its feature dimension (RAD/EXACT style).

For A (N x w: N points, w features) and a random R (w x k) regenerated from a seed, only
C = A R (N x k) is kept, and A is restored as

    A_hat = C R^T = A R R^T.

R = c S^T with S = ``test_matrix(family, k, w, seed)`` and c chosen so that E[R R^T] = I,
which makes A_hat unbiased, E[A_hat] = A:

- ``gaussian``: S_ij ~ N(0, 1), E[S^T S] = k I, c = 1 / sqrt(k);
- ``sparse_sign``: min(k, 8) entries +-1 per column, E[S^T S] = min(k, 8) I,
  c = 1 / sqrt(min(k, 8));
- ``srft``: S = sqrt(w / k) P F D (P selects k of the w rows of an orthonormal DCT), so
  E[S^T S] = I, c = 1; at k = w, R is orthogonal and A_hat = A exactly.

The noise is large: for the Gaussian family E||A_hat - A||_F^2 = ||A||_F^2 (w + 1) / k, so
even k = w leaves a relative error of about 1. Held: N k numbers (R is regenerated).

References: D. Oktay, N. McGreivy, J. Aduol, A. Beatson, R. P. Adams, "Randomized automatic
differentiation", ICLR 2021; Z. Liu, K. Zhou, F. Yang, L. Li, R. Chen, X. Hu, "EXACT:
Scalable graph neural networks training via extreme activation compression", ICLR 2022.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pinnsketch.checks import is_int
from pinnsketch.sketch.test_matrices import _SPARSE_SIGN_ZETA, check_family, test_matrix

__all__ = ["project", "projection_matrix", "unproject"]


def _check_sizes(w: int, k: int) -> None:
    for name, v in (("w", w), ("k", k)):
        if not is_int(v) or v < 1:
            raise ValueError(f"{name}={v!r} must be an int >= 1")
    if k > w:
        raise ValueError(f"k={k} must satisfy k <= w = {w}: a projection to more columns than "
                         "the activation has keeps more than the activation itself; lower k")


def projection_matrix(w: int, k: int, seed: int, family: str = "gaussian", *,
                      dtype: torch.dtype | None = None,
                      device: torch.device | str | None = None) -> Tensor:
    """R (w x k) with E[R R^T] = I, regenerated from ``seed`` (module docstring).

    Raises:
        ValueError: sizes below 1, k > w, an unknown family, or a bad seed.

    >>> R = projection_matrix(4, 4, seed=0, family="srft", dtype=torch.float64)
    >>> bool(torch.allclose(R @ R.T, torch.eye(4, dtype=torch.float64)))
    True
    """
    _check_sizes(w, k)
    check_family(family)
    S = test_matrix(family, k, w, seed, dtype=torch.float64)  # (k, w)
    if family == "gaussian":
        S = S / math.sqrt(k)
    elif family == "sparse_sign":
        S = S / math.sqrt(min(k, _SPARSE_SIGN_ZETA))
    return S.T.to(dtype=dtype or torch.get_default_dtype(), device=device)


def project(A: Tensor, k: int, seed: int, family: str = "gaussian") -> Tensor:
    """C = A R (N x k), R = :func:`projection_matrix` (w, k, seed, family).

    Raises:
        ValueError: A not a 2-D floating matrix, k outside [1, w], an unknown family.
    """
    if not isinstance(A, Tensor) or A.dim() != 2 or not A.dtype.is_floating_point:
        raise ValueError(f"A must be a 2-D real floating tensor, got {type(A).__name__} "
                         f"{tuple(getattr(A, 'shape', ()))} {getattr(A, 'dtype', '')}")
    return A @ projection_matrix(A.shape[1], k, seed, family, dtype=A.dtype, device=A.device)


def unproject(C: Tensor, w: int, seed: int, family: str = "gaussian") -> Tensor:
    """A_hat = C R^T (N x w) from C = A R (N x k), R regenerated from the same seed.

    >>> A = torch.randn(5, 3, dtype=torch.float64)
    >>> A_hat = unproject(project(A, 3, seed=1, family="srft"), 3, seed=1, family="srft")
    >>> bool(torch.allclose(A_hat, A))
    True
    """
    if not isinstance(C, Tensor) or C.dim() != 2:
        raise ValueError(f"C must be a 2-D tensor (N, k), got {tuple(getattr(C, 'shape', ()))}")
    R = projection_matrix(w, C.shape[1], seed, family, dtype=C.dtype, device=C.device)
    return C @ R.T

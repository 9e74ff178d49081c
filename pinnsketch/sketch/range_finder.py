"""Low-rank factors A_hat = coeffs basis^T of a matrix that exists whole (a layer activation).

:func:`range_finder` (below), :func:`randomized_svd` (k + p sampled directions, then the best
rank-k part) and :func:`truncated_svd` (the optimum, from a Gram matrix) all keep
coeffs (N x k) and basis (w x k); :func:`low_rank_factors` picks one by name.

The two-pass randomized range finder: for A (N x w: N points, w features) and a test matrix
Omega (N x k) regenerated from a seed,

    Q = orth(A^T Omega)              (w x k, orthonormal)
    Q <- orth(A^T (A Q))             (repeated ``power_iterations`` times)
    A_hat = (A Q) Q^T

and only ``coeffs = A Q`` (N x k) and ``basis = Q`` (w x k) are kept: k (N + w) numbers. This
reads A twice (more with power iterations), which the single-pass three-sketch avoids, and is
usually closer to the optimal truncated SVD at equal storage (Halko, Martinsson & Tropp,
SIAM Review 53(2), 2011, Alg. 4.3/4.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pinnsketch.checks import check_int, is_int
from pinnsketch.sketch.test_matrices import check_family, test_matrix
from pinnsketch.sketch.three_sketch import LowRank, _check_operand

__all__ = ["GRAM_SIDES", "RANDOMIZED_SVD_OVERSAMPLE", "TWO_FACTOR_METHODS", "RangeFinderApprox",
           "low_rank_factors", "randomized_svd", "range_finder", "range_finder_numel",
           "truncated_svd"]


@dataclass(frozen=True, eq=False)
class RangeFinderApprox:
    """A_hat = coeffs @ basis^T, the projection of A onto a k-dimensional row space.

    Attributes:
        coeffs: (N, k), equal to A Q.
        basis: (w, k), Q with orthonormal columns.

    Has the same interface as :class:`~pinnsketch.sketch.three_sketch.LowRank`
    (``dense``, ``left_multiply``, ``right_multiply``, ``row_block``, ``shape``, ``rank``,
    ``numel``).

    >>> a = RangeFinderApprox(coeffs=torch.ones(4, 1), basis=torch.eye(2, 1))
    >>> a.shape, a.rank, a.numel()
    ((4, 2), 1, 6)
    """

    coeffs: Tensor
    basis: Tensor

    def __post_init__(self) -> None:
        if (
            self.coeffs.dim() != 2
            or self.basis.dim() != 2
            or self.coeffs.shape[1] != self.basis.shape[1]
        ):
            raise ValueError(
                f"need coeffs (N, k) and basis (w, k); got coeffs {tuple(self.coeffs.shape)}, "
                f"basis {tuple(self.basis.shape)}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """(N, w), the shape of A_hat."""
        return (self.coeffs.shape[0], self.basis.shape[0])

    @property
    def rank(self) -> int:
        """k, the number of basis vectors."""
        return self.basis.shape[1]

    def numel(self) -> int:
        """Entries held, k (N + w)."""
        return self.coeffs.numel() + self.basis.numel()

    def dense(self) -> Tensor:
        """A_hat = coeffs basis^T as an (N, w) tensor."""
        return self.coeffs @ self.basis.T

    def left_multiply(self, G: Tensor) -> Tensor:
        """G @ A_hat = (G coeffs) basis^T without forming A_hat; G is (..., N)."""
        _check_operand(G, -1, self.shape[0], "left_multiply")
        return (G @ self.coeffs) @ self.basis.T

    def right_multiply(self, G: Tensor) -> Tensor:
        """A_hat @ G = coeffs (basis^T G) without forming A_hat; G is (w,) or (w, p)."""
        _check_operand(G, 0, self.shape[1], "right_multiply")
        return self.coeffs @ (self.basis.T @ G)

    def row_block(self, start: int, stop: int) -> Tensor:
        """Rows start:stop of A_hat."""
        return self.coeffs[start:stop] @ self.basis.T

    def to_lowrank(self) -> LowRank:
        """The same matrix as a :class:`LowRank` with Q = coeffs (not orthonormal), C = I,
        P = basis."""
        eye = torch.eye(self.rank, dtype=self.basis.dtype, device=self.basis.device)
        return LowRank(Q=self.coeffs, C=eye, P=self.basis)


def range_finder_numel(N: int, w: int, k: int) -> int:
    """Entries held by :func:`range_finder`: k (N + w).

    >>> range_finder_numel(1000, 50, 10)
    10500
    """
    return k * (N + w)


def _check_matrix(A: Tensor) -> tuple[int, int]:
    """(N, w) of A, after checking that it is a real floating matrix."""
    if not isinstance(A, Tensor) or A.dim() != 2 or not A.dtype.is_floating_point:
        raise ValueError(
            f"A must be a 2-D real floating tensor, got {type(A).__name__} "
            f"{tuple(getattr(A, 'shape', ()))} {getattr(A, 'dtype', '')}"
        )
    return A.shape[0], A.shape[1]


def _check_matrix_and_rank(A: Tensor, k: int) -> tuple[int, int]:
    """(N, w) of a real floating matrix A, after checking 1 <= k <= min(N, w)."""
    N, w = _check_matrix(A)
    if not is_int(k) or not 1 <= k <= min(N, w):
        raise ValueError(f"k={k!r} must be an int with 1 <= k <= min(N, w) = {min(N, w)}")
    return N, w


def range_finder(
    A: Tensor,
    k: int,
    seed: int,
    family: str = "gaussian",
    power_iterations: int = 1,
) -> RangeFinderApprox:
    """Randomized range finder of the row space of A: A_hat = (A Q) Q^T, Q (w x k).

    Q = orth(A^T Omega) with Omega = ``test_matrix(family, k, N, seed)``^T (N x k), then
    ``power_iterations`` steps Q <- orth(A^T (A Q)), each re-orthonormalized (Householder QR)
    so that the powers of A^T A never lose the small directions to round-off.

    Args:
        A: (N, w) real floating matrix.
        k: number of basis vectors, 1 <= k <= min(N, w).
        seed: int in [0, 2**63) regenerating Omega.
        family: one of ``SKETCH_FAMILIES``.
        power_iterations: q >= 0; each costs two more passes over A and sharpens the
            spectral decay seen by the sketch from sigma_j to sigma_j^(2q+1).

    Returns:
        :class:`RangeFinderApprox` with coeffs = A Q (N, k) and basis = Q (w, k).

    Raises:
        ValueError: for k outside [1, min(N, w)], a negative power_iterations, an unknown
            family, or A not a real floating matrix.

    >>> g = torch.Generator().manual_seed(0)
    >>> A = torch.randn(50, 2, generator=g, dtype=torch.float64) @ torch.randn(
    ...     2, 8, generator=g, dtype=torch.float64)
    >>> approx = range_finder(A, k=3, seed=0)
    >>> bool(torch.allclose(approx.dense(), A, rtol=0, atol=1e-12))
    True
    """
    N, w = _check_matrix_and_rank(A, k)
    check_int("power_iterations", power_iterations, low=0)
    check_family(family)
    omega_t = test_matrix(family, k, N, seed, dtype=A.dtype, device=A.device)  # Omega^T
    Q = torch.linalg.qr((omega_t @ A).T, mode="reduced").Q  # orth(A^T Omega)
    for _ in range(power_iterations):
        Q = torch.linalg.qr(A.T @ (A @ Q), mode="reduced").Q
    return RangeFinderApprox(coeffs=A @ Q, basis=Q)


RANDOMIZED_SVD_OVERSAMPLE = 8
"""Extra directions p sampled by :func:`randomized_svd` beyond the rank kept (Halko et al.
recommend 5 to 10); they cost passes, not storage."""


def randomized_svd(A: Tensor, k: int, seed: int, family: str = "gaussian",
                   oversample: int = RANDOMIZED_SVD_OVERSAMPLE) -> RangeFinderApprox:
    """A near-optimal rank-k A_hat = (A V) V^T, V (w x k) from a randomized subspace.

    With l = min(k + oversample, N, w) and Omega (w x l) regenerated from ``seed``:

        Q_N = orth(A Omega)          (N x l: the column space)
        Q   = orth(A^T Q_N)          (w x l: the row space, one power-iteration step)
        C   = A Q                    (N x l)
        C^T C = U diag(s^2) U^T      (l x l, float64), U_k its top k eigenvectors
        V = Q U_k,  coeffs = C U_k = A V

    (Halko, Martinsson & Tropp 2011, Alg. 4.4 with one half-iteration, and Alg. 5.1). The
    spectrum seen by Q decays like sigma_j^2 and the re-orthonormalization between the two
    products keeps round-off at eps ||A|| instead of eps ||A||^2 (no Gram of A is formed).
    Three passes over A: cost 3 N w l + O((N + w) l^2), against N w^2 for the Gram of
    :func:`truncated_svd`, whose error ||A - A_hat||_F it matches up to a factor that tends
    to 1 as the spectrum decays past k + oversample. Exact up to round-off when
    rank(A) <= l (then Q spans the row space of A) -- in particular at k = min(N, w).
    Where l >= w / 2 (or l >= N / 2) the Gram of :func:`truncated_svd` costs no more, and
    that exact truncated SVD is returned instead (no random numbers).

    Args:
        A: (N, w) real floating matrix.
        k: rank kept, 1 <= k <= min(N, w).
        seed: int in [0, 2**63) regenerating Omega.
        family: test-matrix family of Omega (``SKETCH_FAMILIES``).
        oversample: p >= 0 extra sampled directions.

    Returns:
        :class:`RangeFinderApprox` with coeffs = A V (N, k) and basis = V (w, k).

    Raises:
        ValueError: for k outside [1, min(N, w)], a negative oversample, an unknown family,
            or A not a real floating matrix.

    >>> g = torch.Generator().manual_seed(0)
    >>> A = torch.randn(60, 3, generator=g, dtype=torch.float64) @ torch.randn(
    ...     3, 20, generator=g, dtype=torch.float64)
    >>> bool(torch.allclose(randomized_svd(A, k=3, seed=1).dense(), A, rtol=0, atol=1e-12))
    True
    """
    N, w = _check_matrix_and_rank(A, k)
    if not is_int(oversample) or oversample < 0:
        raise ValueError(f"oversample={oversample!r} must be an int >= 0")
    check_family(family)
    l = min(k + oversample, N, w)
    if 2 * l >= min(N, w):
        return truncated_svd(A, k)
    omega = test_matrix(family, l, w, seed, dtype=A.dtype, device=A.device).T  # (w, l)
    q_cols = torch.linalg.qr(A @ omega, mode="reduced").Q
    Q = torch.linalg.qr(A.T @ q_cols, mode="reduced").Q
    C = A @ Q
    _, vecs = torch.linalg.eigh(_gram64(C))  # ascending
    top = vecs[:, -k:].flip(-1).to(A.dtype)
    return RangeFinderApprox(coeffs=C @ top, basis=Q @ top)


def low_rank_factors(A: Tensor, method: str, k: int, seed: int,
                     family: str = "gaussian") -> RangeFinderApprox:
    """coeffs (N x k) and basis (w x k) of A by one of the two-factor methods
    (:data:`TWO_FACTOR_METHODS`); ``seed`` and ``family`` are unused by ``truncated_svd``."""
    if method == "truncated_svd":
        return truncated_svd(A, k)
    if method == "randomized_svd":
        return randomized_svd(A, k, seed, family)
    if method == "range_finder":
        return range_finder(A, k, seed, family)
    raise ValueError(f"{method!r} is not a two-factor method; valid: "
                     f"{', '.join(TWO_FACTOR_METHODS)}")


TWO_FACTOR_METHODS = ("truncated_svd", "randomized_svd", "range_finder")
"""The methods that keep coeffs (N x k) and basis (w x k)."""


_GRAM_BLOCK_ROWS = 32768  # float64 copy of at most this many columns of A at a time
_GRAM_BLOCK_ELEMENTS = 1 << 17  # 1 MB of float64: one reused block of rows of A
GRAM_SIDES = ("features", "points")


def _gram64(A: Tensor) -> Tensor:
    """A^T A (w x w) in float64 for an (N, w) A of any float dtype.

    Rows of A are copied, a block at a time, into one reused float64 buffer of ~1 MB and
    their products accumulated in float64: no float64 copy of the whole A (whose fresh
    pages cost as much as the product itself).
    """
    n, w = A.shape
    rows = max(64, _GRAM_BLOCK_ELEMENTS // max(w, 1))
    G = torch.zeros(w, w, dtype=torch.float64, device=A.device)
    buf = torch.empty(min(rows, n), w, dtype=torch.float64, device=A.device)
    for start in range(0, n, rows):
        block = buf[:min(rows, n - start)]
        block.copy_(A[start:start + rows])
        G.addmm_(block.T, block)
    return G


def truncated_svd(A: Tensor, k: int, gram: str | None = None) -> RangeFinderApprox:
    """The optimal rank-k approximation A_hat = (A V_k) V_k^T of a matrix that exists whole.

    V_k holds the top-k right singular vectors of A (N x w), so ||A - A_hat||_F is the
    Eckart-Young minimum. They come from the smaller of the two Gram matrices:

    - ``gram="features"`` (w x w): V_k = the top-k eigenvectors of A^T A. Cost N w^2 + w^3.
    - ``gram="points"`` (N x N): with A A^T = U diag(sigma^2) U^T, A^T U_k = V_k diag(sigma_k),
      so V_k = orth(A^T U_k) (a thin QR: it divides by sigma_k, stably, and still returns an
      orthonormal basis where some sigma_j = 0, which then carry no energy). Cost N^2 w + N^3.

    The default (None) takes ``points`` when N < w (a batch of 128 examples on a 784- or
    512-wide layer: a 128 x 128 eigenproblem instead of 784 x 784), else ``features``. Both
    Gram matrices are accumulated in float64 over blocks of A (bounded extra memory), so
    singular values down to ~1e-8 ||A|| are resolved even for a float32 A; with a gap
    sigma_k > sigma_{k+1} both routes give the same A_hat up to float64 round-off. No random
    numbers. At k = min(N, w) it is exact up to round-off.

    >>> A = torch.randn(50, 6, dtype=torch.float64) @ torch.randn(6, 8, dtype=torch.float64)
    >>> approx = truncated_svd(A, 6)
    >>> bool(torch.allclose(approx.dense(), A))
    True
    >>> wide = A.T.contiguous()                                  # 8 x 50: the N x N route
    >>> bool(torch.allclose(truncated_svd(wide, 6).dense(), wide))
    True
    """
    n, w = _check_matrix(A)
    if not is_int(k) or not 1 <= k <= min(n, w):
        raise ValueError(f"rank k={k!r} must be an int in [1, min(N, w)] = [1, {min(n, w)}] "
                         f"for an activation of shape {tuple(A.shape)}")
    if gram is None:
        gram = "points" if n < w else "features"
    if gram not in GRAM_SIDES:
        raise ValueError(f"gram={gram!r} must be None (the smaller), 'features' (w x w A^T A) "
                         "or 'points' (N x N A A^T)")
    if gram == "features":
        _, vecs = torch.linalg.eigh(_gram64(A))  # ascending eigenvalues
        basis64 = vecs[:, -k:].flip(-1)
    else:
        G = torch.zeros(n, n, dtype=torch.float64, device=A.device)
        cols = A.split(_GRAM_BLOCK_ROWS, dim=1)
        for block in cols:
            b = block.double()
            G.addmm_(b, b.T)
        _, vecs = torch.linalg.eigh(G)
        top = vecs[:, -k:].flip(-1)  # U_k (N x k)
        at_u = torch.cat([block.double().T @ top for block in cols])  # A^T U_k = V_k S_k
        basis64 = torch.linalg.qr(at_u, mode="reduced").Q
    basis = basis64.to(A.dtype)
    return RangeFinderApprox(coeffs=A @ basis, basis=basis)

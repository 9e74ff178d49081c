"""The three-sketch of Tropp, Yurtsever, Udell & Cevher (2019) and its low-rank reconstruction.

For a matrix M (m x n) and test matrices Upsilon (k x m), Omega (k x n), Phi (s x m),
Psi (s x n), k <= s, only three sketches are kept:

    X = Upsilon M       (k x n)   co-range sketch
    Y = M Omega^T       (m x k)   range sketch
    Z = Phi M Psi^T     (s x s)   core sketch

and M is reconstructed as M_hat = Q C P^T with Q = orth(Y), P = orth(X^T) and
C = (Phi Q)^+ Z ((Psi P)^+)^T. The test matrices are regenerated from the seed of a
:class:`SketchSpec`, never stored, so what is held is k (m + n) + s^2 numbers. The sketches are
linear in M, so M <- beta M + (1 - beta) H maps to the same update of (X, Y, Z).

Reference: J. A. Tropp, A. Yurtsever, M. Udell, V. Cevher, "Streaming low-rank matrix
approximation with an application to scientific simulation", SIAM J. Sci. Comput. 41(4),
A2430-A2463, 2019.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from pinnsketch.checks import check_int, is_int, is_real
from pinnsketch.sketch.test_matrices import check_family, derive_seeds, test_matrix

__all__ = [
    "LowRank",
    "LowRankOperator",
    "SketchSpec",
    "SketchTestMatrices",
    "ThreeSketch",
    "default_core_size",
    "ema_update",
    "reconstruct",
    "relative_error",
    "sketch",
    "sketch_test_matrices",
    "storage_numel",
]

# Rows of M_hat formed at a time by relative_error: bounds its extra memory to about this
# many entries instead of a second m x n matrix.
_ERROR_BLOCK_NUMEL = 2**22


def default_core_size(k: int, m: int | None = None, n: int | None = None) -> int:
    """Default core-sketch size s = 2k + 1, clamped to min(m, n) when those are given.

    Tropp et al. recommend s >= 2k + 1 (their error bound has the factor
    (s - 1) / (s - k - 1), which is 2 at s = 2k + 1). The core sketch Z = Phi M Psi^T cannot
    hold more than min(m, n) independent directions, so rows of Phi or Psi beyond min(m, n)
    only cost storage; the clamp keeps s <= min(m, n) while k <= s still holds because
    k <= min(m, n).

    Args:
        k: range / co-range sketch size, >= 1.
        m, n: shape of the sketched matrix (optional).

    Returns:
        min(2k + 1, m, n) (the bounds that are given).

    Raises:
        ValueError: for a non-positive k, m or n.

    >>> default_core_size(5), default_core_size(5, 60, 8)
    (11, 8)
    """
    check_int("k", k, low=1)
    s = 2 * k + 1
    for name, bound in (("m", m), ("n", n)):
        if bound is not None:
            check_int(name, bound, low=1)
            s = min(s, bound)
    return s


@dataclass(frozen=True)
class SketchSpec:
    """Shape, sizes, seed and family of a three-sketch of an m x n matrix.

    The four test matrices are regenerated from ``seed`` (four sub-seeds derived by
    :func:`~pinnsketch.sketch.test_matrices.derive_seeds`), so the spec is all that must be
    kept besides the sketches themselves.

    Args:
        m, n: shape of the sketched matrix, >= 1.
        k: range and co-range sketch size, 1 <= k <= min(m, n).
        s: core sketch size, s >= k; ``None`` means :func:`default_core_size` (2k + 1 clamped
            to min(m, n)). An explicit s above min(m, n) is allowed for the gaussian and
            sparse_sign families but only costs storage; srft needs s <= min(m, n).
        seed: int in [0, 2**63).
        family: one of ``SKETCH_FAMILIES``.

    Raises:
        ValueError: naming the bad value and its valid range.

    >>> SketchSpec(m=60, n=40, k=5, seed=0).s
    11
    >>> SketchSpec(m=60, n=40, k=41, seed=0)
    Traceback (most recent call last):
    ...
    ValueError: k=41 must satisfy 1 <= k <= min(m, n) = 40; lower k
    """

    m: int
    n: int
    k: int
    s: int | None = None
    seed: int = 0
    family: str = "gaussian"

    def __post_init__(self) -> None:
        check_int("m", self.m, low=1)
        check_int("n", self.n, low=1)
        if not is_int(self.k):
            raise ValueError(f"k must be an int, got {self.k!r}")
        if not 1 <= self.k <= min(self.m, self.n):
            raise ValueError(
                f"k={self.k} must satisfy 1 <= k <= min(m, n) = {min(self.m, self.n)}; "
                + ("raise k" if self.k < 1 else "lower k")
            )
        check_family(self.family)
        if self.s is None:
            object.__setattr__(self, "s", default_core_size(self.k, self.m, self.n))
        if not is_int(self.s):
            raise ValueError(f"s must be an int or None, got {self.s!r}")
        if self.s < self.k:
            raise ValueError(
                f"s={self.s} must satisfy s >= k = {self.k} (the core sketch needs at least "
                "k rows); raise s or pass s=None for the default 2k + 1"
            )
        if self.family == "srft" and self.s > min(self.m, self.n):
            raise ValueError(
                f"s={self.s} must satisfy s <= min(m, n) = {min(self.m, self.n)} for "
                "family='srft'; lower s or pass s=None"
            )
        derive_seeds(self.seed, 4)  # validates the seed


class SketchTestMatrices(NamedTuple):
    """The test matrices of a :class:`SketchSpec`: Upsilon (k x m), Omega (k x n),
    Phi (s x m), Psi (s x n)."""

    upsilon: Tensor
    omega: Tensor
    phi: Tensor
    psi: Tensor


def sketch_test_matrices(
    spec: SketchSpec,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> SketchTestMatrices:
    """Regenerate the four test matrices of ``spec`` (identical on every call and device).

    Args:
        spec: the sketch specification.
        dtype, device: of the returned tensors (default dtype: ``torch.get_default_dtype()``).

    Returns:
        ``SketchTestMatrices(upsilon, omega, phi, psi)`` with shapes (k, m), (k, n), (s, m),
        (s, n).

    >>> t = sketch_test_matrices(SketchSpec(m=6, n=4, k=2, seed=1))
    >>> [tuple(a.shape) for a in t]
    [(2, 6), (2, 4), (4, 6), (4, 4)]
    """
    su, so, sp, ss = derive_seeds(spec.seed, 4)
    assert spec.s is not None  # set by __post_init__
    kw = {"dtype": dtype, "device": device}
    return SketchTestMatrices(
        upsilon=test_matrix(spec.family, spec.k, spec.m, su, **kw),
        omega=test_matrix(spec.family, spec.k, spec.n, so, **kw),
        phi=test_matrix(spec.family, spec.s, spec.m, sp, **kw),
        psi=test_matrix(spec.family, spec.s, spec.n, ss, **kw),
    )


@dataclass(frozen=True, eq=False)
class ThreeSketch:
    """The three sketches of a matrix M: X = Upsilon M, Y = M Omega^T, Z = Phi M Psi^T.

    Attributes:
        X: (k, n) co-range sketch.
        Y: (m, k) range sketch.
        Z: (s, s) core sketch.
        spec: the :class:`SketchSpec` whose seed regenerates the test matrices.
    """

    X: Tensor
    Y: Tensor
    Z: Tensor
    spec: SketchSpec

    def __post_init__(self) -> None:
        sp = self.spec
        want = {"X": (sp.k, sp.n), "Y": (sp.m, sp.k), "Z": (sp.s, sp.s)}
        for name, shape in want.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"{name} has shape {got}, expected {shape} from the spec")

    def numel(self) -> int:
        """Number of stored entries, k (m + n) + s^2 (equals ``storage_numel(spec)``)."""
        return self.X.numel() + self.Y.numel() + self.Z.numel()


def storage_numel(spec: SketchSpec) -> int:
    """Entries held by a three-sketch: k (m + n) + s^2 (the test matrices are not stored).

    >>> storage_numel(SketchSpec(m=60, n=40, k=5, seed=0))
    621
    """
    assert spec.s is not None
    return spec.k * (spec.m + spec.n) + spec.s**2


def _check_matrix(M: Tensor, spec: SketchSpec, name: str = "M") -> None:
    if not isinstance(M, Tensor) or M.dim() != 2:
        raise ValueError(
            f"{name} must be a 2-D tensor, got {type(M).__name__} {tuple(getattr(M, 'shape', ()))}"
        )
    if tuple(M.shape) != (spec.m, spec.n):
        raise ValueError(
            f"{name} has shape {tuple(M.shape)}, but the spec sketches ({spec.m}, {spec.n}) "
            "matrices; build a SketchSpec with that m and n"
        )
    if not M.dtype.is_floating_point:
        raise ValueError(f"{name} must have a real floating dtype, got {M.dtype}")


def sketch(M: Tensor, spec: SketchSpec) -> ThreeSketch:
    """Three-sketch of M: X = Upsilon M, Y = M Omega^T, Z = Phi M Psi^T.

    The test matrices are regenerated from ``spec`` in M's dtype and on M's device.

    Args:
        M: (m, n) real floating tensor.
        spec: sketch specification with the same m and n.

    Returns:
        :class:`ThreeSketch` holding X (k, n), Y (m, k), Z (s, s) and ``spec``.

    Raises:
        ValueError: if M is not a real floating (m, n) matrix.

    >>> M = torch.ones(6, 4, dtype=torch.float64)
    >>> sk = sketch(M, SketchSpec(m=6, n=4, k=2, seed=0))
    >>> tuple(sk.X.shape), tuple(sk.Y.shape), tuple(sk.Z.shape)
    ((2, 4), (6, 2), (4, 4))
    """
    _check_matrix(M, spec)
    t = sketch_test_matrices(spec, dtype=M.dtype, device=M.device)
    return ThreeSketch(
        X=t.upsilon @ M,
        Y=M @ t.omega.T,
        Z=(t.phi @ M) @ t.psi.T,
        spec=spec,
    )


def ema_update(old: ThreeSketch, M_new: Tensor, beta: float) -> ThreeSketch:
    """Exponential moving average of sketches: beta * old + (1 - beta) * sketch(M_new).

    The same test matrices are used, and sketching is linear, so if ``old = sketch(M_old)``
    the result equals ``sketch(beta * M_old + (1 - beta) * M_new)`` up to round-off.

    Args:
        old: the current sketch.
        M_new: (m, n) matrix, same dtype and device as ``old``.
        beta: weight of the past, 0 <= beta < 1 (beta = 0 keeps only M_new).

    Returns:
        A new :class:`ThreeSketch` with ``old.spec``.

    Raises:
        ValueError: for beta outside [0, 1) or a badly shaped M_new.

    >>> spec = SketchSpec(m=6, n=4, k=2, seed=0)
    >>> A, B = torch.ones(6, 4, dtype=torch.float64), torch.zeros(6, 4, dtype=torch.float64)
    >>> e = ema_update(sketch(A, spec), B, beta=0.25)
    >>> torch.allclose(e.Z, sketch(0.25 * A, spec).Z)
    True
    """
    if not is_real(beta) or not 0.0 <= beta < 1.0:
        raise ValueError(
            f"beta={beta!r} must satisfy 0 <= beta < 1 (beta = 1 would ignore every new "
            "matrix); use a value such as 0.9"
        )
    _check_matrix(M_new, old.spec, "M_new")
    if M_new.dtype != old.X.dtype or M_new.device != old.X.device:
        raise ValueError(
            f"M_new is {M_new.dtype} on {M_new.device} but the sketch is {old.X.dtype} on "
            f"{old.X.device}; convert M_new with .to(...)"
        )
    new = sketch(M_new, old.spec)
    b, a = float(beta), 1.0 - float(beta)
    return ThreeSketch(
        X=b * old.X + a * new.X,
        Y=b * old.Y + a * new.Y,
        Z=b * old.Z + a * new.Z,
        spec=old.spec,
    )


@runtime_checkable
class LowRankOperator(Protocol):
    """What backward needs from an approximation M_hat (m x n) held in factored form."""

    @property
    def shape(self) -> tuple[int, int]: ...

    @property
    def rank(self) -> int: ...

    def dense(self) -> Tensor: ...

    def left_multiply(self, G: Tensor) -> Tensor: ...

    def right_multiply(self, G: Tensor) -> Tensor: ...

    def row_block(self, start: int, stop: int) -> Tensor: ...

    def numel(self) -> int: ...


def _check_operand(G: Tensor, dim: int, expected: int, what: str) -> None:
    if not isinstance(G, Tensor) or G.dim() == 0 or G.shape[dim] != expected:
        raise ValueError(
            f"{what}: operand of shape {tuple(getattr(G, 'shape', ()))} needs size {expected} "
            f"along dimension {dim}"
        )


@dataclass(frozen=True, eq=False)
class LowRank:
    """A matrix in factored form M_hat = Q C P^T, never materialized unless asked.

    Attributes:
        Q: (m, r) orthonormal columns.
        C: (r, r) core (diagonal after a fixed-rank truncation).
        P: (n, r) orthonormal columns.

    >>> lr = LowRank(Q=torch.eye(3, 1), C=torch.tensor([[2.0]]), P=torch.eye(2, 1))
    >>> lr.dense().tolist()
    [[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    """

    Q: Tensor
    C: Tensor
    P: Tensor

    def __post_init__(self) -> None:
        r = self.C.shape[0]
        if (
            (self.Q.dim(), self.C.dim(), self.P.dim()) != (2, 2, 2)
            or self.C.shape[1] != r
            or self.Q.shape[1] != r
            or self.P.shape[1] != r
        ):
            raise ValueError(
                f"need Q (m, r), C (r, r), P (n, r); got Q {tuple(self.Q.shape)}, "
                f"C {tuple(self.C.shape)}, P {tuple(self.P.shape)}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """(m, n), the shape of M_hat."""
        return (self.Q.shape[0], self.P.shape[0])

    @property
    def rank(self) -> int:
        """r, the number of columns of Q and P (an upper bound on the rank of M_hat)."""
        return self.C.shape[0]

    def numel(self) -> int:
        """Entries held by the factors, r (m + n) + r^2."""
        return self.Q.numel() + self.C.numel() + self.P.numel()

    def dense(self) -> Tensor:
        """M_hat = Q C P^T as an (m, n) tensor."""
        return (self.Q @ self.C) @ self.P.T

    def left_multiply(self, G: Tensor) -> Tensor:
        """G @ M_hat = ((G Q) C) P^T without forming M_hat; G is (..., m), result (..., n)."""
        _check_operand(G, -1, self.shape[0], "left_multiply")
        return ((G @ self.Q) @ self.C) @ self.P.T

    def right_multiply(self, G: Tensor) -> Tensor:
        """M_hat @ G = Q (C (P^T G)) without forming M_hat; G is (n,) or (n, p)."""
        _check_operand(G, 0, self.shape[1], "right_multiply")
        return self.Q @ (self.C @ (self.P.T @ G))

    def row_block(self, start: int, stop: int) -> Tensor:
        """Rows start:stop of M_hat, (stop - start, n)."""
        return (self.Q[start:stop] @ self.C) @ self.P.T

    def transpose(self) -> LowRank:
        """M_hat^T = P C^T Q^T as a :class:`LowRank` (no copy of the factors)."""
        return LowRank(Q=self.P, C=self.C.T, P=self.Q)


def _orth(A: Tensor) -> Tensor:
    """Orthonormal basis of the columns of A (Householder QR, reduced)."""
    return torch.linalg.qr(A, mode="reduced").Q


def reconstruct(sk: ThreeSketch, rank: int | None = None) -> LowRank:
    """Low-rank reconstruction M_hat = Q C P^T from a three-sketch (Tropp et al. 2019).

    Q = orth(Y) (m x k), P = orth(X^T) (n x k), C = (Phi Q)^+ Z ((Psi P)^+)^T (k x k).
    C is computed, as Tropp et al. recommend, from thin QR factorizations
    Phi Q = U1 R1 and Psi P = U2 R2:  C = R1^{-1} (U1^T Z U2) R2^{-T}, two triangular
    solves. This is the least-squares solution, backward stable, costs O(s k^2), gives the
    same algorithm on CPU and CUDA, and never forms normal equations (which would square
    the condition number of Phi Q). A pseudo-inverse via SVD with a cutoff is avoided: its
    rank decision is arbitrary and discontinuous, and Phi Q, Psi P have full column rank with
    probability one (random, s >= k, drawn independently of Q and P).

    With ``rank=r``, C = U S V^T is truncated to its top r singular triplets and folded into
    the factors: Q_r = Q U_r, C_r = diag(S_r), P_r = P V_r (the best rank-r approximation of
    the un-truncated reconstruction).

    Args:
        sk: the three-sketch.
        rank: None (keep all k directions) or r with 1 <= r <= k.

    Returns:
        :class:`LowRank` with Q (m, r), C (r, r), P (n, r), r = k or ``rank``.

    Raises:
        ValueError: for a rank outside [1, k].

    >>> g = torch.Generator().manual_seed(0)
    >>> M = torch.randn(30, 3, generator=g, dtype=torch.float64) @ torch.randn(
    ...     3, 20, generator=g, dtype=torch.float64)
    >>> lr = reconstruct(sketch(M, SketchSpec(m=30, n=20, k=4, seed=1)))
    >>> bool(relative_error(M, lr) < 1e-12)
    True
    """
    spec = sk.spec
    if rank is not None:
        if not is_int(rank) or not 1 <= rank <= spec.k:
            raise ValueError(
                f"rank={rank!r} must be None or an int with 1 <= rank <= k = {spec.k}; "
                "raise k in the SketchSpec for a higher rank"
            )
    t = sketch_test_matrices(spec, dtype=sk.Z.dtype, device=sk.Z.device)
    Q = _orth(sk.Y)
    P = _orth(sk.X.T)
    U1, R1 = torch.linalg.qr(t.phi @ Q, mode="reduced")
    U2, R2 = torch.linalg.qr(t.psi @ P, mode="reduced")
    core = U1.T @ sk.Z @ U2  # (k, k)
    left = torch.linalg.solve_triangular(R1, core, upper=True)  # R1^{-1} core
    # C R2^T = left  <=>  R2 C^T = left^T
    C = torch.linalg.solve_triangular(R2, left.T, upper=True).T
    if rank is None:
        return LowRank(Q=Q, C=C, P=P)
    U, S, Vh = torch.linalg.svd(C)
    return LowRank(Q=Q @ U[:, :rank], C=torch.diag(S[:rank]), P=P @ Vh[:rank].T)


def relative_error(M: Tensor, approx: LowRankOperator) -> Tensor:
    """Exact relative error ||M - M_hat||_F / ||M||_F of a factored approximation.

    Computed from the entries of M - M_hat, formed in row blocks of about 4M entries (no
    second m x n matrix is held, and no cancellation-prone expansion
    ||M||^2 - 2 <M, M_hat> + ||M_hat||^2 is used). For M = 0 the result is 0 if M_hat = 0
    too and inf otherwise.

    Args:
        M: (m, n) matrix.
        approx: a :class:`LowRank` (or any :class:`LowRankOperator`) of the same shape.

    Returns:
        0-d tensor in M's dtype and device.

    Raises:
        ValueError: if the shapes differ.

    >>> M = torch.eye(3, dtype=torch.float64)
    >>> e1 = torch.eye(3, 1, dtype=torch.float64)
    >>> lr = LowRank(Q=e1, C=torch.ones(1, 1, dtype=torch.float64), P=e1)
    >>> round(float(relative_error(M, lr)) ** 2, 12)
    0.666666666667
    """
    if not isinstance(M, Tensor) or M.dim() != 2 or tuple(M.shape) != tuple(approx.shape):
        raise ValueError(
            f"M has shape {tuple(getattr(M, 'shape', ()))} but the approximation has shape "
            f"{tuple(approx.shape)}"
        )
    m, n = M.shape
    block = max(1, _ERROR_BLOCK_NUMEL // max(n, 1))
    # Norms of the row blocks, combined by another (overflow-safe) 2-norm.
    block_norms = [
        torch.linalg.vector_norm(
            M[start : min(m, start + block)] - approx.row_block(start, min(m, start + block))
        )
        for start in range(0, m, block)
    ]
    err = torch.linalg.vector_norm(torch.stack(block_norms)) if block_norms else M.new_zeros(())
    ref = torch.linalg.matrix_norm(M)
    zero = err == 0
    safe = torch.where(ref > 0, ref, torch.ones_like(ref))
    out = torch.where(ref > 0, err / safe, torch.where(zero, 0.0, math.inf).to(err))
    return out

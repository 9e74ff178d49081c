"""The low-rank storage methods of a layer activation, their names and their sizes.

One place for the list that storage, memory accounting and budget planning share. For an
activation A (N x w) at rank k (k <= min(N, w)), s = min(2k + 1, N, w):

- ``truncated_svd``: the optimal rank-k approximation (Eckart-Young), from the
  eigenvectors of the w x w Gram matrix A^T A; keeps A V_k (N x k) and V_k (w x k).
- ``randomized_svd``: a near-optimal rank-k approximation from a randomized subspace of
  k + 8 directions (three passes over A, no w x w Gram); keeps A V (N x k) and V (w x k).
- ``range_finder``: two-pass randomized range finder with one power iteration; keeps
  A Q (N x k) and Q (w x k).
- ``three_sketch``: the single-pass three-sketch of Tropp et al. (2019) of M = A^T; keeps
  X (k x N), Y (w x k), Z (s x s). Built for data that streams by.
- ``ema``: the paper's three-sketch kept across steps as an exponential moving average
  (Antil & Verma 2025); same size as ``three_sketch``.
"""

from __future__ import annotations

__all__ = ["SKETCH_METHODS", "check_method", "held_numel"]

SKETCH_METHODS = ("truncated_svd", "randomized_svd", "range_finder", "three_sketch", "ema")


def check_method(method: str) -> None:
    """Raise ValueError listing the valid methods if ``method`` is not one of them."""
    if method not in SKETCH_METHODS:
        raise ValueError(f"unknown sketch method {method!r}; valid methods: "
                         f"{', '.join(SKETCH_METHODS)}")


def held_numel(method: str, n: int, w: int, k: int) -> int:
    """Numbers kept for one (N x w) activation at rank k (clamped to min(N, w)).

    >>> held_numel("range_finder", 100, 10, 2), held_numel("three_sketch", 100, 10, 2)
    (220, 245)
    """
    check_method(method)
    k = min(k, n, w)
    numel = k * (n + w)
    if method in ("three_sketch", "ema"):
        numel += min(2 * k + 1, n, w) ** 2
    return numel

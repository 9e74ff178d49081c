"""Gradient-norm monitoring from small sketches (Antil & Verma 2025, second application).

For each layer's weight gradient G (m x n) a :class:`GradientMonitor` forms the range sketch

    Y = G Omega^T        (m x k),   Omega (k x n) with i.i.d. N(0, 1) entries,

with Omega regenerated from a per-layer seed at every call (never stored), and keeps only the
paper's EMA-smoothed monitoring sketch ``Y_ema <- beta Y_ema + (1 - beta) Y`` (started at the
first Y): k m numbers per layer, never an m x n tensor.

Estimates (sigma_i the singular values of G):

- **Frobenius norm.** E[Omega^T Omega] = k I_n, so E ||Y||_F^2 = tr(G E[Omega^T Omega] G^T)
  = k ||G||_F^2: ``||Y||_F^2 / k`` is an unbiased estimate of ||G||_F^2. Each column
  G omega_j of Y has ||G omega_j||^2 = sum_i sigma_i^2 xi_i^2 (xi_i i.i.d. N(0, 1)), of
  variance 2 sum_i sigma_i^4, and the k columns are independent, so
  Var(||Y||_F^2 / k) = (2 / k) sum_i sigma_i^4 and the relative standard deviation is
  sqrt(2 / k) * sqrt(sum sigma^4) / sum sigma^2 <= sqrt(2 / k) (equality for rank 1; for r
  equal singular values sqrt(2 / (k r))). ``norm_est`` is its square root (biased low by
  Jensen's inequality, by about Var / (8 ||G||_F^4) relative); ``sq_norm_est`` is the
  unbiased one.
- **Stable rank** ||G||_F^2 / ||G||_2^2, estimated by ``||Y||_F^2 / sigma_1(Y)^2`` (the k
  cancels): the stable rank of the sketch. Y Y^T / k is unbiased for G G^T, and lambda_max
  is convex, so sigma_1(Y)^2 / k over-estimates ||G||_2^2 on average, and the estimate never
  exceeds rank(Y) <= min(k, rank G): it is a lower-bound-like estimate that saturates at k.
  For rank-1 G (Y = u (Omega v)^T) it is exactly 1; as k grows it converges to the true
  stable rank.
- **EMA.** Omega is fixed per layer, so Y_ema = (EMA of G) Omega^T: ``ema_norm_est`` estimates
  the Frobenius norm of the exponentially averaged gradient (momentum-like smoothing), not
  the average of the norms. With beta = 0 it equals ``norm_est``.

Reference: H. Antil, D. Verma, "Randomized Matrix Sketching for Neural Network Training and
Gradient Monitoring", arXiv 2510.00442, 2025.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pinnsketch.checks import check_seed, is_int, is_real
from pinnsketch.seeds import derive_seed
from pinnsketch.sketch.test_matrices import test_matrix

__all__ = ["GradientMonitor", "exact_norm", "exact_stable_rank"]



def _accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other float (float32, float16, bfloat16) -> float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_matrix(grad: Tensor) -> None:
    if not isinstance(grad, Tensor):
        raise TypeError(f"grad must be a torch.Tensor, got {type(grad).__name__}")
    if grad.dim() != 2 or not grad.dtype.is_floating_point:
        raise ValueError(f"grad must be a 2-D floating tensor (a weight gradient m x n), got "
                         f"shape {tuple(grad.shape)} dtype {grad.dtype}; reshape a bias to "
                         "(m, 1)")


def exact_norm(grad: Tensor) -> float:
    """||G||_F, computed exactly (float32 or float64 accumulation).

    >>> exact_norm(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
    5.0
    """
    _check_matrix(grad)
    return float(torch.linalg.matrix_norm(grad.detach().to(_accumulate_dtype(grad.dtype))))


def exact_stable_rank(grad: Tensor) -> float:
    """||G||_F^2 / ||G||_2^2, computed exactly (nan for G = 0).

    >>> exact_stable_rank(torch.eye(3, dtype=torch.float64))
    3.0
    """
    _check_matrix(grad)
    s = torch.linalg.svdvals(grad.detach().to(_accumulate_dtype(grad.dtype)))
    top = float(s[0])
    return float((s**2).sum()) / top**2 if top > 0 else math.nan


class GradientMonitor:
    """Per-layer gradient-norm and stable-rank estimates from k-column Gaussian sketches.

    Args:
        k: sketch size (columns of Y), int >= 1; the relative standard deviation of the
            squared-norm estimate is at most sqrt(2 / k) (0.35 at k = 16).
        beta: EMA weight of the past, 0 <= beta < 1.
        seed: int in [0, 2**63); layer l's test matrix is seeded from (seed, l).

    Memory: one (m, k) tensor per observed layer (``numel()``); no gradient is kept.

    >>> mon = GradientMonitor(k=8, beta=0.0, seed=1)
    >>> est = mon.observe(0, torch.outer(torch.ones(5), torch.ones(3)))
    >>> round(est["stable_rank_est"], 6), est["ema_norm_est"] == est["norm_est"]
    (1.0, True)
    >>> mon.numel()
    40
    """

    def __init__(self, k: int = 16, beta: float = 0.9, seed: int = 0):
        if not is_int(k) or k < 1:
            raise ValueError(f"k={k!r} must be an int >= 1 (sketch columns); e.g. k=16")
        if not is_real(beta) or not 0 <= beta < 1:
            raise ValueError(f"beta={beta!r} must satisfy 0 <= beta < 1 (the EMA weight of the "
                             "past; 0 = no smoothing); e.g. beta=0.9")
        self.k = k
        self.beta = float(beta)
        self.seed = check_seed("seed", seed)
        self._ema: dict[int, Tensor] = {}
        self._shapes: dict[int, tuple[int, int]] = {}

    def layer_seed(self, layer_index: int) -> int:
        """The seed of layer ``layer_index``'s test matrix (fixed for the monitor's life)."""
        return derive_seed(self.seed, int(layer_index))

    def sketch(self, layer_index: int, grad: Tensor) -> Tensor:
        """Y = G Omega^T (m x k) in float32 or float64, Omega regenerated from the layer seed."""
        _check_matrix(grad)
        omega = test_matrix("gaussian", self.k, grad.shape[1], self.layer_seed(layer_index),
                            dtype=grad.dtype, device=grad.device)
        with torch.no_grad():
            return (grad.detach() @ omega.T).to(_accumulate_dtype(grad.dtype))

    def observe(self, layer_index: int, grad: Tensor) -> dict[str, float]:
        """Sketch ``grad`` (m x n) of layer ``layer_index``, update its EMA sketch, and estimate.

        Returns:
            ``{"norm_est", "sq_norm_est", "stable_rank_est", "ema_norm_est"}`` as floats
            (stable rank nan for a zero sketch).

        Raises:
            ValueError: a non-matrix, or a shape different from this layer's earlier ones
                (call ``reset(layer_index)`` first).
        """
        if not is_int(layer_index) or layer_index < 0:
            raise ValueError(f"layer_index={layer_index!r} must be an int >= 0")
        _check_matrix(grad)
        shape = (int(grad.shape[0]), int(grad.shape[1]))
        if self._shapes.get(layer_index, shape) != shape:
            raise ValueError(f"layer {layer_index} was observed with shape "
                             f"{self._shapes[layer_index]}, now {shape}; call "
                             f"monitor.reset({layer_index}) when a layer changes shape")
        y = self.sketch(layer_index, grad)
        with torch.no_grad():
            old = self._ema.get(layer_index)
            if old is None:
                ema = y.clone()
            else:
                ema = old.to(dtype=y.dtype, device=y.device).mul_(self.beta)
                ema.add_(y, alpha=1.0 - self.beta)
            self._ema[layer_index] = ema
            self._shapes[layer_index] = shape
            sq = float((y * y).sum())
            top = float(torch.linalg.matrix_norm(y, ord=2))
            ema_sq = float((ema * ema).sum())
        return {
            "norm_est": math.sqrt(sq / self.k),
            "sq_norm_est": sq / self.k,
            "stable_rank_est": sq / top**2 if top > 0 else math.nan,
            "ema_norm_est": math.sqrt(ema_sq / self.k),
        }

    def observe_parameters(self, parameters) -> list[dict[str, float]]:
        """``observe`` every 2-D parameter with a gradient, numbered in order from 0.

        Layer indices count the 2-D parameters that have a ``.grad`` (biases are skipped).
        """
        out, index = [], 0
        for p in parameters:
            if p.dim() == 2 and p.grad is not None:
                out.append(self.observe(index, p.grad))
                index += 1
        return out

    def ema_sketch(self, layer_index: int) -> Tensor | None:
        """Layer ``layer_index``'s EMA sketch Y_ema (m x k), or None before its first observe."""
        return self._ema.get(layer_index)

    def numel(self) -> int:
        """Numbers held: k m per observed layer."""
        return sum(t.numel() for t in self._ema.values())

    def reset(self, layer_index: int | None = None) -> None:
        """Forget the EMA sketch of one layer (or of all layers when None)."""
        if layer_index is None:
            self._ema.clear()
            self._shapes.clear()
        else:
            self._ema.pop(layer_index, None)
            self._shapes.pop(layer_index, None)

"""A run's adaptive loss weighting: the rules of :mod:`pinnsketch.tasks.weighting` with their
state, applied to a PINN task's loss during the Adam phases.

The task asks for each term's weight factor (gradient-norm balancing) and for the PDE term's
value (causal or residual-based attention weights), and reports what a step measured; what a
step changes (new balanced weights, new attention weights) is held as pending and applied
only when the step is committed (:meth:`AdaptiveWeights.commit`), so an abandoned step
changes nothing. Weights are global in a data-parallel run: slice losses, residual maxima
and gradient norms are reduced over processes before they are used.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pinnsketch.config import WeightingConfig
from pinnsketch.distributed import SINGLE, Cluster
from pinnsketch.tasks.weighting import (
    GradNormBalancing,
    GradNormState,
    ResidualBasedAttention,
    causal_weights,
)

__all__ = ["AdaptiveWeights"]


class AdaptiveWeights:
    """The state of a :class:`~pinnsketch.config.WeightingConfig` over one run.

    Args:
        config: the weighting.
        term_names: the loss terms ("pde", then the conditions).
        time: (column of the time coordinate, t0, t1), needed by ``causal``; None without
            a time coordinate.
        cluster: the data-parallel run (reductions); a single process by default.

    Raises:
        ValueError: ``causal`` on a problem without a time coordinate.
    """

    def __init__(self, config: WeightingConfig, term_names: tuple[str, ...],
                 time: tuple[int, float, float] | None, cluster: Cluster = SINGLE):
        if config.method == "causal" and time is None:
            raise ValueError("causal weights (--weighting causal) need a time coordinate; this "
                             "problem has none: choose gradnorm or rba")
        self.config, self.time, self.cluster = config, time, cluster
        self.method = config.method
        self.active = True  # Adam phases; a second-order phase freezes the weighting
        self._gn = GradNormBalancing(config.alpha, config.every)
        self.balance: GradNormState | None = (self._gn.init(term_names)
                                              if self.method == "gradnorm" else None)
        self._rba = ResidualBasedAttention(config.gamma, config.eta)
        self.attention: Tensor | None = None  # one weight per local interior point
        self.attention_batch: int | None = None  # the batch index the weights belong to
        self._pending: dict[str, Any] = {}

    # --- gradient-norm balancing ---

    def balancing_due(self, step: int) -> bool:
        """Whether this Adam step recomputes the balanced weights."""
        return self.method == "gradnorm" and self.active and step % self.config.every == 0

    def propose_balance(self, grad_norms: dict[str, float]) -> None:
        """New balanced weights from this step's ||grad L_i|| (used from this step on, kept
        if the step is committed)."""
        self._pending["balance"] = self._gn.update(self.balance, grad_norms)

    def factor(self, term: str) -> float:
        """The balancing factor of ``term`` (1 without gradnorm)."""
        state = self._pending.get("balance", self.balance)
        return 1.0 if state is None else state.weights[term]

    # --- the PDE term ---

    def pde_sum(self, r: Tensor, points: Tensor, count: float, batch_index: int | None
                ) -> Tensor:
        """This process's share of the PDE term: sum_i r_i^2 / count normally; with causal
        weights sum over slices w_s (sum_{i in s} r_i^2) / (M N_s); with attention weights
        sum_i (lambda_i r_i)^2 / count. ``count`` is the global number of interior points."""
        r = r.reshape(-1)
        if not self.active or self.method in ("none", "gradnorm"):
            return r.pow(2).sum() / count
        if self.method == "causal":
            return self._causal(r, points)
        return self._attention(r, count, batch_index)

    def _causal(self, r: Tensor, points: Tensor) -> Tensor:
        col, t0, t1 = self.time
        m = self.config.slices
        t = points[:, col].detach()
        idx = ((t - t0) / (t1 - t0) * m).floor().long().clamp(0, m - 1)
        sums = torch.zeros(m, dtype=r.dtype, device=r.device).index_add(0, idx, r.pow(2))
        counts = torch.bincount(idx, minlength=m).to(r.dtype)
        totals = self.cluster.sum_floats({**{f"s{i}": v for i, v in enumerate(sums.tolist())},
                                          **{f"n{i}": v for i, v in enumerate(counts.tolist())}})
        n = torch.tensor([max(totals[f"n{i}"], 1.0) for i in range(m)], dtype=r.dtype,
                         device=r.device)
        global_losses = torch.tensor([totals[f"s{i}"] for i in range(m)], dtype=r.dtype,
                                     device=r.device) / n
        w = causal_weights(global_losses, self.config.eps)
        return (w * sums / n).sum() / m

    def _attention(self, r: Tensor, count: float, batch_index: int | None) -> Tensor:
        lam = self.attention
        if lam is None or self.attention_batch != batch_index or lam.shape[0] != r.shape[0]:
            lam = self._rba.init(r.shape[0], dtype=torch.float64).to(r.device)
        top = self.cluster.max_floats([float(r.detach().abs().max())])[0]
        scaled = r.detach().abs().double() / top if top > 0 else torch.zeros_like(lam)
        self._pending["attention"] = (batch_index, self.config.gamma * lam
                                      + self.config.eta * scaled)
        return (lam.to(r.dtype) * r).pow(2).sum() / count

    # --- the step's changes ---

    def commit(self) -> None:
        """Keep what the committed step proposed."""
        if "balance" in self._pending:
            self.balance = self._pending["balance"]
        if "attention" in self._pending:
            self.attention_batch, self.attention = self._pending["attention"]
        self._pending.clear()

    def discard(self) -> None:
        """Forget what an abandoned step proposed."""
        self._pending.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"active": self.active,
                "balance": self.balance.to_dict() if self.balance is not None else None,
                "attention": self.attention, "attention_batch": self.attention_batch}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.active = bool(saved["active"])
        self.balance = (GradNormState.from_dict(saved["balance"])
                        if saved["balance"] is not None else None)
        self.attention, self.attention_batch = saved["attention"], saved["attention_batch"]
        self._pending.clear()

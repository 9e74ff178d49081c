"""The Task protocol: all the generic training loop knows about a learning problem."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

__all__ = ["Task"]


class Task(Protocol):
    """What :func:`pinnsketch.train.train` needs; the loop uses nothing else.

    - ``model``: the trainable module.
    - ``resample_every``: Adam steps per batch (a fresh ``sample(step // K)`` every K
      steps; 0: one batch for the whole Adam phase).
    - ``sample(index, density=None)``: the index-th batch (deterministic in the task's seed,
      index and density); ``index = -1`` is the fixed batch of a line-search phase.
    - ``adapt_every`` / ``adaptive_density(index)``: every K Adam steps (0: never) a new
      sampling density (plain data, e.g. RAD probabilities at the current weights) that the
      following ``sample`` calls draw from.
    - ``refine_every`` / ``refine(index, saved=None) -> (batch, saved)``: a second-order phase
      replaces its batch every K iterations (0: never) by ``refine`` (e.g. RAD at the current
      weights); ``saved`` (plain data) rebuilds the same batch when a run resumes.
    - ``backward(batch)``: accumulate into ``.grad`` the gradient of the weighted loss on the
      batch (possibly in chunks) and return the loss terms as floats, including ``"loss"``.
    - ``residual_jacobian(batch) -> (r, J)``: the residual vector (M,) with loss = ||r||^2 and
      its Jacobian (M, P) in the parameters, float64, for a Gauss-Newton-type phase
      (``lm``); a task without least-squares structure raises ValueError.
    - ``evaluate()``: headline metrics as floats (e.g. ``l2_relative_error``).
    - ``set_dtype(dtype)``: move model and future batches to a float type (for L-BFGS).
    - ``held_bytes`` / ``held_bytes_per_point``: bytes held for backward at the last
      ``backward`` (DESIGN.md section 4), or None if not measured.
    - ``before_step(step)``, ``after_step(step, terms) -> (extra history columns, log
      lines)``: around every Adam step (rank control).
    - ``enter_phase(name) -> log lines``: a phase begins ("adam", "lbfgs"); called again
      when a resumed run re-enters it, so it must be idempotent.
    - ``checkpoint_state() -> dict`` / ``restore_checkpoint_state(dict)``: the task's own
      resumable state (sketch seeds' counter, rank state) as plain data.
    """

    model: nn.Module
    held_bytes: int | None
    held_bytes_per_point: float | None
    resample_every: int
    refine_every: int
    adapt_every: int

    def sample(self, index: int, density: Any = None) -> Any: ...

    def adaptive_density(self, index: int) -> Any: ...

    def backward(self, batch: Any) -> dict[str, float]: ...

    def residual_jacobian(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]: ...

    def evaluate(self) -> dict[str, float]: ...

    def refine(self, index: int, saved: Any = None) -> tuple[Any, Any]: ...

    def set_dtype(self, dtype: torch.dtype) -> None: ...

    def before_step(self, step: int) -> None: ...

    def after_step(self, step: int, terms: dict[str, float]) -> tuple[dict[str, Any], list[str]]: ...

    def enter_phase(self, phase: str) -> list[str]: ...

    def checkpoint_state(self) -> dict[str, Any]: ...

    def restore_checkpoint_state(self, saved: dict[str, Any]) -> None: ...

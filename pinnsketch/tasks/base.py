"""The Task protocol: all the generic training loop knows about a learning problem."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

__all__ = ["Task"]


class Task(Protocol):
    """What :func:`pinnsketch.train.train` needs.

    - ``model``: the trainable module.
    - ``sample(index)``: the index-th batch (deterministic in the task's seed and index).
    - ``backward(batch)``: accumulate into ``.grad`` the gradient of the weighted loss on the
      batch (possibly in chunks) and return the loss terms as floats, including ``"loss"``.
    - ``evaluate()``: headline metrics as floats (e.g. ``l2_relative_error``).
    - ``set_dtype(dtype)``: move model and future batches to a float type (for L-BFGS).
    - ``held_bytes`` / ``held_bytes_per_point``: bytes held for backward at the last
      ``backward`` (DESIGN.md section 4), or None if not measured.

    Optional hooks (looked up with getattr): ``before_step(step)``,
    ``after_step(step, terms) -> (extra history columns, log lines)`` and
    ``enter_phase("lbfgs") -> log lines``.
    """

    model: nn.Module
    held_bytes: int | None
    held_bytes_per_point: float | None

    def sample(self, index: int) -> Any: ...

    def backward(self, batch: Any) -> dict[str, float]: ...

    def evaluate(self) -> dict[str, float]: ...

    def set_dtype(self, dtype: torch.dtype) -> None: ...

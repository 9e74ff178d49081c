"""Weight initialisers of the dense layers, by name (biases start at zero).

- ``glorot``: normal, std sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio 2010; DeepXDE's
  "Glorot normal", pinnsketch's default);
- ``glorot_uniform``: uniform on +-sqrt(6 / (fan_in + fan_out)) (same variance);
- ``he``: normal, std sqrt(2 / fan_in) (He et al. 2015).

Each draws from an explicit ``torch.Generator`` in float64 (no global RNG).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["INITIALIZERS", "check_init", "init_weight"]

INITIALIZERS = ("glorot", "glorot_uniform", "he")


def check_init(name: str) -> None:
    """Raise ValueError naming the valid initialisers if ``name`` is not one of them."""
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initialiser {name!r}; valid initialisers: "
                         f"{', '.join(INITIALIZERS)}")


def init_weight(name: str, fan_out: int, fan_in: int, generator: torch.Generator) -> Tensor:
    """A (fan_out, fan_in) float64 weight matrix drawn by the initialiser ``name``.

    >>> w = init_weight("glorot_uniform", 3, 5, torch.Generator().manual_seed(0))
    >>> bool(w.abs().max() <= (6 / 8) ** 0.5)
    True
    """
    check_init(name)
    if name == "glorot":
        std = math.sqrt(2.0 / (fan_in + fan_out))
        return torch.randn(fan_out, fan_in, generator=generator, dtype=torch.float64) * std
    if name == "glorot_uniform":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        u = torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float64)
        return (2.0 * u - 1.0) * bound
    std = math.sqrt(2.0 / fan_in)
    return torch.randn(fan_out, fan_in, generator=generator, dtype=torch.float64) * std

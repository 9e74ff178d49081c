"""Elementwise activations with their first two derivatives (for Taylor-mode jets).

A jet of z (value z0, first derivatives z_i, second derivatives z_ij) maps through an
elementwise s by the chain rule:

    h0 = s(z0),  h_i = s'(z0) z_i,  h_ij = s''(z0) z_i z_j + s'(z0) z_ij.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Activation", "ACTIVATIONS", "get_activation"]


@dataclass(frozen=True)
class Activation:
    """An activation s with s' and s'' (all elementwise, differentiable by autograd)."""

    name: str
    f: Callable[[Tensor], Tensor]
    df: Callable[[Tensor], Tensor]
    d2f: Callable[[Tensor], Tensor]
    d3f: Callable[[Tensor], Tensor]


def _tanh_d1(z):
    return 1.0 - torch.tanh(z) ** 2


def _tanh_d2(z):
    t = torch.tanh(z)
    return -2.0 * t * (1.0 - t * t)


def _tanh_d3(z):
    t = torch.tanh(z)
    return -2.0 * (1.0 - t * t) * (1.0 - 3.0 * t * t)


def _silu_parts(z):
    s = torch.sigmoid(z)
    return s, s * (1.0 - s)


def _silu_d1(z):
    s, ds = _silu_parts(z)
    return s + z * ds


def _silu_d2(z):
    s, ds = _silu_parts(z)
    return ds * (2.0 + z * (1.0 - 2.0 * s))


def _silu_d3(z):
    # s' = ds, s'' = ds (1 - 2 s), d/dz [ds (2 + z (1 - 2 s))]
    s, ds = _silu_parts(z)
    d2s = ds * (1.0 - 2.0 * s)
    return d2s * (2.0 + z * (1.0 - 2.0 * s)) + ds * ((1.0 - 2.0 * s) - 2.0 * z * ds)


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", torch.tanh, _tanh_d1, _tanh_d2, _tanh_d3),
    "sin": Activation("sin", torch.sin, torch.cos, lambda z: -torch.sin(z), lambda z: -torch.cos(z)),
    "silu": Activation("silu", torch.nn.functional.silu, _silu_d1, _silu_d2, _silu_d3),
}


def get_activation(name: str) -> Activation:
    """The activation called ``name``; the error lists the valid names."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid activations: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]

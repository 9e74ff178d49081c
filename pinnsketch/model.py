"""The multilayer perceptron that represents u, with inputs scaled to [-1, 1].

u(x) = W_L h_{L-1} + b_L,  h_l = s(W_l h_{l-1} + b_l),  h_0 = A x + c,

where A x + c maps the domain box onto [-1, 1]^d. Weights are Glorot-normal, biases zero.
``depth`` counts hidden layers, ``width`` their size.
"""

from __future__ import annotations

import torch
from torch import nn

from pinnsketch._types import Points
from pinnsketch.activations import Activation, get_activation

__all__ = ["MLP"]


class MLP(nn.Module):
    """Fully connected network R^d -> R with ``depth`` hidden layers of ``width`` units.

    Args:
        lo, hi: the domain box; inputs are mapped affinely from it onto [-1, 1]^d.
        width, depth: hidden size and number of hidden layers (both >= 1).
        activation: a name in :data:`pinnsketch.activations.ACTIVATIONS`.
        generator: seeds the Glorot initialisation (no global RNG is used).

    >>> net = MLP((0.0, 0.0), (1.0, 1.0), width=8, depth=2, generator=torch.Generator().manual_seed(0))
    >>> net(torch.zeros(5, 2)).shape
    torch.Size([5, 1])
    """

    def __init__(self, lo: tuple[float, ...], hi: tuple[float, ...], width: int = 50,
                 depth: int = 4, activation: str = "tanh", out_dim: int = 1,
                 generator: torch.Generator | None = None, dtype=torch.float32):
        super().__init__()
        if not (isinstance(width, int) and width >= 1):
            raise ValueError(f"width must be a positive integer, got {width!r}")
        if not (isinstance(depth, int) and depth >= 1):
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        self.activation: Activation = get_activation(activation)
        lo_t = torch.as_tensor(lo, dtype=torch.float64)
        hi_t = torch.as_tensor(hi, dtype=torch.float64)
        self.register_buffer("in_scale", (2.0 / (hi_t - lo_t)).to(dtype))
        self.register_buffer("in_shift", (-(hi_t + lo_t) / (hi_t - lo_t)).to(dtype))
        sizes = [len(lo)] + [width] * depth + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b, dtype=dtype) for a, b in zip(sizes, sizes[1:]))
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        with torch.no_grad():
            for layer in self.layers:
                fan_in, fan_out = layer.in_features, layer.out_features
                std = (2.0 / (fan_in + fan_out)) ** 0.5
                layer.weight.copy_(torch.randn(fan_out, fan_in, generator=gen,
                                               dtype=torch.float64) * std)
                layer.bias.zero_()

    @property
    def width(self) -> int:
        return self.layers[0].out_features

    @property
    def depth(self) -> int:
        return len(self.layers) - 1

    def scale_inputs(self, x: Points) -> Points:
        return x * self.in_scale + self.in_shift

    def forward(self, x: Points) -> torch.Tensor:
        h = self.scale_inputs(x)
        for layer in self.layers[:-1]:
            h = self.activation.f(layer(h))
        return self.layers[-1](h)

"""The multilayer perceptron that represents u, with inputs scaled to [-1, 1].

u(x) = W_L h_{L-1} + b_L,  h_l = s(W_l h_{l-1} + b_l),  h_0 = A x + c,

where A x + c maps the domain box onto [-1, 1]^d. Weights are Glorot-normal, biases zero.
``depth`` counts hidden layers, ``width`` their size. :class:`MLP` is the plain
:class:`~pinnsketch.network.Network` (affine input map, plain trunk, dense output); the
other architectures are built from the parts in :mod:`pinnsketch.network`.
"""

from __future__ import annotations

import torch

from pinnsketch.checks import is_int
from pinnsketch.network import AffineInput, Dense, MLPTrunk, Network

__all__ = ["MLP"]


class MLP(Network):
    """Fully connected network R^d -> R^out_dim with ``depth`` hidden layers of ``width`` units.

    Args:
        lo, hi: the domain box; inputs are mapped affinely from it onto [-1, 1]^d.
        width, depth: hidden size and number of hidden layers (both >= 1).
        activation: a name in :data:`pinnsketch.activations.ACTIVATIONS`.
        out_dim: number of outputs (fields ``u`` for one, ``u1, u2, ...`` for several).
        generator: seeds the Glorot initialisation (no global RNG is used).

    >>> net = MLP((0.0, 0.0), (1.0, 1.0), width=8, depth=2, generator=torch.Generator().manual_seed(0))
    >>> net(torch.zeros(5, 2)).shape
    torch.Size([5, 1])
    """

    def __init__(self, lo: tuple[float, ...], hi: tuple[float, ...], width: int = 50,
                 depth: int = 4, activation: str = "tanh", out_dim: int = 1,
                 generator: torch.Generator | None = None, dtype=torch.float32):
        if not is_int(out_dim) or out_dim < 1:
            raise ValueError(f"out_dim must be a positive integer, got {out_dim!r}")
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        inputs = AffineInput(lo, hi, dtype)
        trunk = MLPTrunk(inputs.out_features, width, depth, activation, generator=gen,
                         dtype=dtype)
        output = Dense(width, out_dim, generator=gen, dtype=dtype)
        fields = ("u",) if out_dim == 1 else tuple(f"u{i + 1}" for i in range(out_dim))
        super().__init__([inputs], trunk, output, fields)

    def scale_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """x * in_scale + in_shift: the box onto [-1, 1]^d."""
        return x * self.in_scale + self.in_shift

"""Dense (affine) layers, plain or with random weight factorization.

A dense layer maps h to W h + b. With random weight factorization (RWF, Wang et al. 2022,
"Random weight factorization improves the training of continuous neural representations",
arXiv 2210.01274) the weight is parametrised as

    W = diag(exp(s)) V,

each output row scaled by exp(s_i); at initialisation s ~ N(mu, sigma^2) and V = W0 / exp(s),
so the layer starts as the plain initialisation W0 and only the trained parametrisation
differs (jaxpi's ``Dense(reparam={"type": "weight_fact", ...})``; mu = 1, sigma = 0.1 there).

Both kinds expose ``weight`` (the matrix W, a parameter or computed from s and V), ``bias``,
``in_features``, ``out_features`` and ``factorized``; their jet rule is
:func:`~pinnsketch.network.jets.linear_jets` with that W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pinnsketch._types import Jets
from pinnsketch.checks import is_real
from pinnsketch.network.init import init_weight
from pinnsketch.network.jets import linear_jets

__all__ = ["RWF", "Dense", "FactorizedDense", "make_dense"]


@dataclass(frozen=True)
class RWF:
    """Random weight factorization settings: s ~ N(mu, sigma^2) at initialisation.

    Raises:
        ValueError: a non-finite mu, or a sigma that is negative or not finite.
    """

    mu: float = 1.0
    sigma: float = 0.1

    def __post_init__(self) -> None:
        for name in ("mu", "sigma"):
            v = getattr(self, name)
            if not is_real(v) or not math.isfinite(v):
                raise ValueError(f"RWF {name}={v!r} must be a finite number (jaxpi: mu=1.0, "
                                 "sigma=0.1)")
        if self.sigma < 0:
            raise ValueError(f"RWF sigma={self.sigma!r} must be >= 0 (the spread of the "
                             "log scales s); e.g. 0.1")


class Dense(nn.Module):
    """W h + b with W (out, in) a parameter, initialised by ``init``, and b = 0."""

    factorized = False

    def __init__(self, in_features: int, out_features: int, *, init: str = "glorot",
                 generator: torch.Generator, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        w0 = init_weight(init, out_features, in_features, generator)
        self.weight = nn.Parameter(w0.to(dtype))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype))

    def jets(self, H: Jets) -> Jets:
        """Jets of W h + b (the value rule is the same code with J = 1)."""
        return linear_jets(H, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class FactorizedDense(nn.Module):
    """W h + b with W = diag(exp(s)) V (random weight factorization, see the module doc).

    Parameters ``log_scale`` (s, shape (out,)), ``direction`` (V, shape (out, in)), ``bias``.
    """

    factorized = True

    def __init__(self, in_features: int, out_features: int, rwf: RWF, *, init: str = "glorot",
                 generator: torch.Generator, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        w0 = init_weight(init, out_features, in_features, generator)
        s = rwf.mu + rwf.sigma * torch.randn(out_features, generator=generator,
                                             dtype=torch.float64)
        self.log_scale = nn.Parameter(s.to(dtype))
        self.direction = nn.Parameter((w0 / torch.exp(s).unsqueeze(1)).to(dtype))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype))

    @property
    def weight(self) -> Tensor:
        """W = diag(exp(s)) V (differentiable in s and V)."""
        return torch.exp(self.log_scale).unsqueeze(1) * self.direction

    def jets(self, H: Jets) -> Jets:
        """Jets of W h + b (the value rule is the same code with J = 1)."""
        return linear_jets(H, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rwf"


def make_dense(in_features: int, out_features: int, *, init: str, rwf: RWF | None,
               generator: torch.Generator, dtype: torch.dtype) -> Dense | FactorizedDense:
    """A :class:`Dense` layer, or a :class:`FactorizedDense` one when ``rwf`` is given."""
    if rwf is None:
        return Dense(in_features, out_features, init=init, generator=generator, dtype=dtype)
    return FactorizedDense(in_features, out_features, rwf, init=init, generator=generator,
                           dtype=dtype)

"""The Cole-Hopf solution of the viscous Burgers equation with u(x, 0) = -sin(pi x).

The reference of the built-in ``burgers`` problem and the generator of ``burgers_inverse``'s
observations (Basdevant et al., Computers & Fluids 1986; the benchmark of Raissi,
Perdikaris & Karniadakis, J. Comput. Phys. 2019).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["cole_hopf_burgers"]


def cole_hopf_burgers(points: torch.Tensor, nu: float, nodes: int = 200,
                      chunk: int = 8192) -> torch.Tensor:
    """u(x, t) of u_t + u u_x = nu u_xx, u(x, 0) = -sin(pi x), by the Cole-Hopf integral.

    With f(y) = exp(-cos(pi y) / (2 pi nu)) and eta = sqrt(4 nu t) s,

        u(x, t) = - sum_k w_k sin(pi (x - eta_k)) f(x - eta_k) / sum_k w_k f(x - eta_k)

    where (s_k, w_k) are Gauss-Hermite nodes and weights (weight exp(-s^2)). The exponent
    is shifted by its maximum over k before exponentiating, so nothing overflows. The
    result is a smooth torch expression of the points: autograd gives its derivatives.
    On the solution's own domain the boundary values u(+-1, t) = 0 hold by symmetry.

    Args:
        points: (N, 2) float64 columns (x, t), t >= 0.
    """
    s, w = np.polynomial.hermite.hermgauss(nodes)
    s_t = torch.as_tensor(s, dtype=points.dtype, device=points.device)
    logw = torch.as_tensor(np.log(w), dtype=points.dtype, device=points.device)
    out = []
    for block in points.split(chunk):
        x, t = block[:, :1], block[:, 1:2]
        y = x - torch.sqrt(4.0 * nu * t) * s_t  # (n, nodes)
        logf = logw - torch.cos(math.pi * y) / (2.0 * math.pi * nu)
        weights = torch.softmax(logf, dim=1)
        out.append(-(weights * torch.sin(math.pi * y)).sum(1))
    return torch.cat(out)

"""Input maps: what the trunk sees of the coordinates x.

Each map is a small module with ``in_features``, ``out_features`` and one jet rule
``jets(H, plan)`` (the value rule is the same code with ``plan=None`` on (N, w) values);
maps compose in order, the first one reading the coordinate jets (x, e_i, 0).

- :class:`AffineInput`: the box prod [lo_i, hi_i] onto [-1, 1]^d (pinnsketch's default).
- :class:`FourierFeatures`: gamma(h) = [cos(B h), sin(B h)], B (m x d_in) with N(0, sigma^2)
  entries, frozen or trainable (random Fourier features: Tancik et al., NeurIPS 2020; for
  PINNs Wang, Wang & Perdikaris, CMAME 2021). cos is written sin(. + pi/2), so the map is
  "affine, then sin" and its jets are those of an activation.
- :class:`PeriodicEmbedding`: the chosen coordinates x_c by cos(2 pi k x_c / L_c),
  sin(2 pi k x_c / L_c), k = 1..K, L_c the length of the domain along c (exact periodicity:
  the network's output and all its derivatives agree on x_c = lo_c and x_c = hi_c, so a
  ``Periodic`` condition holds by construction; Dong & Ni, JCP 2021); the other coordinates
  scaled onto [-1, 1] as by :class:`AffineInput`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pinnsketch._types import Jets
from pinnsketch.activations import get_activation
from pinnsketch.checks import is_int, is_real
from pinnsketch.network.jets import JetPlan, activation_jets, linear_jets

__all__ = ["AffineInput", "FourierFeatures", "PeriodicEmbedding"]

_SIN = get_activation("sin")


def _box(lo: Sequence[float], hi: Sequence[float]) -> tuple[Tensor, Tensor]:
    lo_t = torch.as_tensor(tuple(lo), dtype=torch.float64)
    hi_t = torch.as_tensor(tuple(hi), dtype=torch.float64)
    if lo_t.dim() != 1 or lo_t.shape != hi_t.shape or lo_t.numel() < 1:
        raise ValueError(f"lo and hi must be equal-length sequences of numbers, got {lo}, {hi}")
    if not bool(torch.isfinite(lo_t).all() and torch.isfinite(hi_t).all() and (lo_t < hi_t).all()):
        raise ValueError(f"the input box needs finite lo < hi per coordinate, got {lo}, {hi}")
    return lo_t, hi_t


class AffineInput(nn.Module):
    """h = A x + c, the box [lo, hi] onto [-1, 1]^d coordinate-wise (buffers ``in_scale``,
    ``in_shift``: A = diag(2 / (hi - lo)), c = -(hi + lo) / (hi - lo)).

    >>> m = AffineInput((0.0, -1.0), (1.0, 1.0))
    >>> m.jets(torch.tensor([[1.0, 0.0]]), None).tolist()
    [[1.0, 0.0]]
    """

    def __init__(self, lo: Sequence[float], hi: Sequence[float], dtype=torch.float32):
        super().__init__()
        lo_t, hi_t = _box(lo, hi)
        self.in_features = self.out_features = lo_t.numel()
        self.register_buffer("in_scale", (2.0 / (hi_t - lo_t)).to(dtype))
        self.register_buffer("in_shift", (-(hi_t + lo_t) / (hi_t - lo_t)).to(dtype))

    periodic_coords: tuple[int, ...] = ()

    def jets(self, X: Jets, plan: JetPlan | None) -> Jets:
        """Jets of A x + c: each component scaled, the shift on the value only."""
        if plan is None or X.shape[0] == 1:
            return X * self.in_scale + self.in_shift
        H = X * self.in_scale
        return torch.cat([(H[0] + self.in_shift).unsqueeze(0), H[1:]])


class FourierFeatures(nn.Module):
    """gamma(h) = [cos(B h), sin(B h)] (2m outputs), B (m, in_features) ~ N(0, sigma^2).

    Args:
        in_features: width of its input (d after :class:`AffineInput`, so sigma is in
            units of the half-width of the box).
        count: m, the number of frequencies (the output width is 2m).
        sigma: the scale of the frequencies, > 0 (jaxpi uses 1 to 10).
        trainable: B is a parameter (trained) instead of a buffer (frozen).
        generator: draws B.
    """

    def __init__(self, in_features: int, count: int, sigma: float, trainable: bool = False, *,
                 generator: torch.Generator, dtype=torch.float32):
        super().__init__()
        if not is_int(count) or count < 1:
            raise ValueError(f"Fourier features: count={count!r} must be an int >= 1 "
                             "(the number of frequencies), e.g. 128")
        if not is_real(sigma) \
                or not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"Fourier features: sigma={sigma!r} must be a finite number > 0 "
                             "(the frequency scale), e.g. 1.0 to 10.0")
        self.in_features, self.count, self.sigma = in_features, count, float(sigma)
        self.out_features = 2 * count
        B = torch.randn(count, in_features, generator=generator, dtype=torch.float64) * sigma
        if trainable:
            self.frequencies = nn.Parameter(B.to(dtype))
        else:
            self.register_buffer("frequencies", B.to(dtype))
        phase = torch.cat([torch.full((count,), math.pi / 2, dtype=torch.float64),
                           torch.zeros(count, dtype=torch.float64)])
        self.register_buffer("phase", phase.to(dtype))

    periodic_coords: tuple[int, ...] = ()

    @property
    def trainable(self) -> bool:
        return isinstance(self.frequencies, nn.Parameter)

    def jets(self, H: Jets, plan: JetPlan | None) -> Jets:
        """Jets of sin([B; B] h + [pi/2; 0]) = [cos(B h), sin(B h)]."""
        B = self.frequencies
        return activation_jets(_SIN, linear_jets(H, torch.cat([B, B]), self.phase), plan)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, count={self.count}, sigma={self.sigma:g}, "
                f"trainable={self.trainable}")


class PeriodicEmbedding(nn.Module):
    """Exactly periodic features of the coordinates ``periodic`` (indices), the others scaled.

    Outputs, in order: the non-periodic coordinates mapped onto [-1, 1]; then for each
    periodic coordinate c and k = 1..K, cos(2 pi k x_c / L_c) (all k), then
    sin(2 pi k x_c / L_c) (all k), L_c = hi_c - lo_c. Width (d - P) + 2 K P.

    Raises:
        ValueError: no periodic coordinate, an index outside [0, d), a repeated one, K < 1.
    """

    def __init__(self, lo: Sequence[float], hi: Sequence[float], periodic: Sequence[int],
                 harmonics: int = 1, dtype=torch.float32):
        super().__init__()
        lo_t, hi_t = _box(lo, hi)
        d = lo_t.numel()
        periodic = tuple(periodic)
        if not periodic:
            raise ValueError("PeriodicEmbedding needs at least one periodic coordinate")
        if len(set(periodic)) != len(periodic) or any(
                not is_int(c) or not 0 <= c < d for c in periodic):
            raise ValueError(f"periodic coordinates {periodic} must be distinct indices in "
                             f"[0, {d})")
        if not is_int(harmonics) or harmonics < 1:
            raise ValueError(f"periodic harmonics K={harmonics!r} must be an int >= 1")
        self.in_features, self.harmonics = d, harmonics
        self.periodic_coords = tuple(sorted(periodic))
        rows, bias = [], []
        plain = [c for c in range(d) if c not in self.periodic_coords]
        for c in plain:
            row = torch.zeros(d, dtype=torch.float64)
            row[c] = 2.0 / (hi_t[c] - lo_t[c])
            rows.append(row)
            bias.append(float(-(hi_t[c] + lo_t[c]) / (hi_t[c] - lo_t[c])))
        for phase in (math.pi / 2, 0.0):  # cos = sin(. + pi/2), then sin
            for c in self.periodic_coords:
                for k in range(1, harmonics + 1):
                    row = torch.zeros(d, dtype=torch.float64)
                    row[c] = 2.0 * math.pi * k / float(hi_t[c] - lo_t[c])
                    rows.append(row)
                    bias.append(phase)
        self.num_plain = len(plain)
        self.out_features = len(rows)
        self.register_buffer("matrix", torch.stack(rows).to(dtype))
        self.register_buffer("offset", torch.tensor(bias, dtype=torch.float64).to(dtype))

    def jets(self, X: Jets, plan: JetPlan | None) -> Jets:
        """Jets of [A_plain x + c_plain, sin(A_trig x + phase)]."""
        Z = linear_jets(X, self.matrix, self.offset)
        p = self.num_plain
        trig = activation_jets(_SIN, Z[..., p:], plan)
        return trig if p == 0 else torch.cat([Z[..., :p], trig], dim=-1)

    def extra_repr(self) -> str:
        return f"periodic={self.periodic_coords}, harmonics={self.harmonics}"

"""Reference solutions of 1-D periodic semilinear PDEs by a Fourier spectral method with ETDRK4.

One equation (:func:`etdrk4_periodic`) or a system of several species with diagonal linear
parts coupled through the reaction (:func:`etdrk4_periodic_system`; the one-equation solver
is the system solver with one species).

The PDE  u_t = L u + f(u)  on a periodic interval [x0, x0 + P), L a constant-coefficient
linear operator given by its Fourier symbol L(k) (diffusion: -eps k^2) and f a pointwise
nonlinearity (a reaction term: Allen-Cahn's r (u - u^3), Fisher-KPP's r u (1 - u)).

Space: the truncated Fourier series  u = Re sum_{n=0}^{N/2-1} c_n exp(i k_n (x - x0)),
k_n = 2 pi n / P, N = ``modes`` collocation points; f(u) is evaluated on the N points (the
pseudo-spectral product) and its Nyquist mode dropped, so the series stays real and odd
derivatives stay well defined. The initial coefficients are the Fourier projection of u0,
computed by an FFT of u0 on 2^21 points (or 64 N if more), not the interpolant on the N points:
an initial condition whose periodic extension has a kink (x^2 cos(pi x) on [-1, 1]: u_x jumps
by 4 at x = +-1) has coefficients ~ 1/n^2, and interpolation would alias the discarded ones
back onto every kept mode, an O(N^-2) error that diffusion never removes; the projection's
error sits in the discarded modes only, which the equation damps like exp(-eps k^2 t).

Time: the exponential time-differencing fourth-order Runge-Kutta scheme of Cox & Matthews
(J. Comput. Phys. 2002) with the phi-functions evaluated by contour integrals as in Kassam &
Trefethen, "Fourth-order time-stepping for stiff PDEs" (SIAM J. Sci. Comput. 2005): each
coefficient is the mean of its formula over M points on a circle of radius 1 around h L(k),
which avoids the cancellation of the closed forms for small |h L|.

Evaluation at arbitrary (x, t): snapshots every ``snapshot_dt`` keep c, dc/dt and d2c/dt2
(from the ODE: c' = L c + F f(u), c'' = L c' + F f'(u) u_t), and a quintic Hermite polynomial
in t joins neighbouring snapshots (interpolation error O(h^6 |d6u/dt6|), its t-derivative
O(h^5)); in x the series is exact. The result is a smooth torch function of the points, so
autograd gives u_t, u_xx for residual checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pinnsketch._types import Field, Points

__all__ = ["etdrk4_periodic", "etdrk4_periodic_system", "etdrk4_coefficients",
           "PeriodicSpectralSolution"]

F64 = torch.float64
PROJECTION_POINTS = 2**21


def etdrk4_coefficients(lin: np.ndarray, h: float, contour_points: int = 64
                        ) -> tuple[np.ndarray, ...]:
    """(E, E2, Q, f1, f2, f3) of ETDRK4 for the diagonal linear part ``lin`` and step h.

    E = e^{hL}, E2 = e^{hL/2}, Q = h phi_1(hL/2)/2-type weight, f1..f3 the fourth-order
    weights (Kassam & Trefethen 2005, eq. (2.5)), each a mean over ``contour_points`` points
    of a circle of radius 1 around h L (real part: L is real here).

    >>> E, E2, Q, f1, f2, f3 = etdrk4_coefficients(np.array([0.0]), 0.1)
    >>> [round(float(v[0]), 12) for v in (E, Q, f1, f2, f3)]  # h, h/2, h/6, h/6, h/6 at L = 0
    [1.0, 0.05, 0.016666666667, 0.016666666667, 0.016666666667]
    """
    lin = np.asarray(lin, dtype=np.complex128)
    r = np.exp(1j * np.pi * (np.arange(1, contour_points + 1) - 0.5) / contour_points)
    lr = h * lin[..., None] + r
    E = np.exp(h * lin).real
    E2 = np.exp(h * lin / 2).real
    Q = h * np.mean((np.exp(lr / 2) - 1) / lr, axis=-1).real
    f1 = h * np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr**2)) / lr**3, axis=-1).real
    f2 = h * np.mean((2 + lr + np.exp(lr) * (-2 + lr)) / lr**3, axis=-1).real
    f3 = h * np.mean((-4 - 3 * lr - lr**2 + np.exp(lr) * (4 - lr)) / lr**3, axis=-1).real
    return E, E2, Q, f1, f2, f3


def _hermite5(tau: torch.Tensor) -> list[torch.Tensor]:
    """Quintic Hermite basis on [0, 1] for (p0, h p0', h^2 p0'', p1, h p1', h^2 p1'')."""
    t2, t3 = tau * tau, tau**3
    t4, t5 = t3 * tau, t3 * t2
    return [1 - 10 * t3 + 15 * t4 - 6 * t5, tau - 6 * t3 + 8 * t4 - 3 * t5,
            (t2 - 3 * t3 + 3 * t4 - t5) / 2,
            10 * t3 - 15 * t4 + 6 * t5, -4 * t3 + 7 * t4 - 3 * t5, (t3 - 2 * t4 + t5) / 2]


@dataclass(frozen=True, eq=False)
class PeriodicSpectralSolution:
    """u(x, t) from Fourier snapshots: series in x, quintic Hermite in t.

    ``coeffs[s, n]`` (complex128) is c_n at t = t0 + s * snapshot_dt, ``coeffs_t`` and
    ``coeffs_tt`` its first and second time derivatives; u = Re sum_n c_n e^{i k_n (x - x0)}.
    """

    x0: float
    period: float
    t0: float
    snapshot_dt: float
    coeffs: np.ndarray
    coeffs_t: np.ndarray
    coeffs_tt: np.ndarray
    modes: int
    dt: float

    @property
    def times(self) -> np.ndarray:
        return self.t0 + self.snapshot_dt * np.arange(self.coeffs.shape[0])

    @property
    def wavenumbers(self) -> np.ndarray:
        return 2 * np.pi * np.arange(self.coeffs.shape[1]) / self.period

    def tail(self, fraction: float = 0.125) -> np.ndarray:
        """Per snapshot: the largest |c_n| among the top ``fraction`` of the modes, relative to
        the largest |c_n|; a resolved solution has this near round-off."""
        c = np.abs(self.coeffs)
        top = c[:, int(round((1 - fraction) * c.shape[1])):].max(1)
        return top / c.max(1)

    def snapshots(self, x: np.ndarray) -> np.ndarray:
        """(S, len(x)) u at every snapshot time and the points x (numpy, for tables)."""
        phase = np.exp(1j * np.outer(np.asarray(x, dtype=float) - self.x0, self.wavenumbers))
        return (self.coeffs @ phase.T).real

    def __call__(self, points: Points, chunk_entries: int = 2**22) -> Field:
        """u at (N, 2) points (columns x, t; t within the solved interval), differentiable."""
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"points must be (N, 2) columns (x, t), got {tuple(points.shape)}")
        last = self.coeffs.shape[0] - 1
        s = (points[:, 1] - self.t0) / self.snapshot_dt
        if points.shape[0] and (float(s.detach().min()) < -1e-9 or float(s.detach().max()) > last + 1e-9):
            raise ValueError(f"t must lie in [{self.t0}, {self.t0 + last * self.snapshot_dt}] "
                             "(the solved interval)")
        j = torch.clamp(torch.floor(s.detach()).long(), 0, max(last - 1, 0))
        tau = s - j.to(s.dtype)
        k = torch.as_tensor(self.wavenumbers, dtype=points.dtype, device=points.device)
        scale = [1.0, self.snapshot_dt, self.snapshot_dt**2]
        stacks = [torch.as_tensor(np.stack([c.real, c.imag]), dtype=points.dtype, device=points.device)
                  for c in (self.coeffs, self.coeffs_t, self.coeffs_tt)]  # (2, S, K) each
        if not points.requires_grad:  # grids repeat their x values: one series per distinct x
            xu, inv = torch.unique(points[:, 0], return_inverse=True)
            n_rows = 3 * stacks[0].shape[1]
            if xu.numel() * 8 <= points.shape[0] and xu.numel() * n_rows <= chunk_entries:
                theta = (xu - self.x0)[:, None] * k
                re = torch.cat([st[0] for st in stacks]).T  # (K, 3S): c, c', c'' at each snapshot
                im = torch.cat([st[1] for st in stacks]).T
                table = torch.cos(theta) @ re - torch.sin(theta) @ im  # (U, 3S)
                n_snap = stacks[0].shape[1]
                cols = [(j + e) + o * n_snap for e in (0, 1) for o in (0, 1, 2)]
                vals = torch.stack([table[inv, c] * scale[i % 3] for i, c in enumerate(cols)], 1)
                return (vals * torch.stack(_hermite5(tau), dim=1)).sum(1)
        out = torch.zeros(points.shape[0], dtype=points.dtype, device=points.device)
        order = torch.argsort(j)
        groups, counts = torch.unique_consecutive(j[order], return_counts=True)
        pieces, start = [], 0
        size = max(1, chunk_entries // max(len(k), 1))
        for g, c in zip(groups.tolist(), counts.tolist()):
            idx = order[start:start + c]
            start += c
            rows = [st[:, g + e] * sc for e in (0, 1) for st, sc in zip(stacks, scale)]
            re = torch.stack([r[0] for r in rows])  # (6, K): c_j, h c_j', h^2 c_j'', c_j+1, ...
            im = torch.stack([r[1] for r in rows])
            for sub in idx.split(size):
                theta = (points[sub, 0] - self.x0)[:, None] * k
                vals = torch.cos(theta) @ re.T - torch.sin(theta) @ im.T  # (P, 6)
                basis = torch.stack(_hermite5(tau[sub]), dim=1)
                pieces.append((sub, (vals * basis).sum(1)))
        if pieces:
            idx = torch.cat([p[0] for p in pieces])
            out = out.index_put((idx,), torch.cat([p[1] for p in pieces]))
        return out


def etdrk4_periodic(symbol: Callable[[np.ndarray], np.ndarray],
                    reaction: Callable[[np.ndarray], np.ndarray],
                    reaction_tangent: Callable[[np.ndarray, np.ndarray], np.ndarray],
                    u0: Callable[[np.ndarray], np.ndarray], x_range: tuple[float, float],
                    t_range: tuple[float, float], modes: int = 2048, dt: float = 1e-3,
                    snapshot_dt: float = 5e-3, contour_points: int = 64
                    ) -> PeriodicSpectralSolution:
    """Solve u_t = L u + f(u) on the periodic interval ``x_range`` over ``t_range``.

    Args:
        symbol: k -> L(k), the linear operator's Fourier symbol at real wavenumbers k >= 0
            (diffusion eps u_xx: ``lambda k: -eps * k**2``); real (dissipative or neutral).
        reaction: u -> f(u) pointwise on the collocation points.
        reaction_tangent: (u, v) -> f'(u) v (gives d2u/dt2 at the snapshots).
        u0: x -> u(x, t0) on a periodic grid (projected onto the modes, see the module).
        modes: N collocation points (even, >= 8); N/2 Fourier modes are kept.
        dt: the ETDRK4 step; ``snapshot_dt`` a whole multiple of it, dividing t_range.

    Raises:
        ValueError: a bad resolution or interval, with the fix.

    >>> sol = etdrk4_periodic(lambda k: -k**2, lambda u: 0 * u, lambda u, v: 0 * v,
    ...                       lambda x: np.sin(x), (0.0, 2 * np.pi), (0.0, 0.5), modes=16,
    ...                       dt=0.05, snapshot_dt=0.25)
    >>> pts = torch.tensor([[1.0, 0.5], [2.0, 0.1]], dtype=torch.float64)
    >>> exact = torch.sin(pts[:, 0]) * torch.exp(-pts[:, 1])  # heat equation, one mode
    >>> bool((sol(pts) - exact).abs().max() < 1e-6)
    True
    """
    (sol,) = etdrk4_periodic_system(
        lambda k: np.asarray(symbol(k))[None], lambda u: np.asarray(reaction(u[0]))[None],
        lambda u, v: np.asarray(reaction_tangent(u[0], v[0]))[None],
        lambda x: np.asarray(u0(x))[None], x_range, t_range, modes=modes, dt=dt,
        snapshot_dt=snapshot_dt, contour_points=contour_points)
    return sol


def etdrk4_periodic_system(symbols: Callable[[np.ndarray], np.ndarray],
                           reaction: Callable[[np.ndarray], np.ndarray],
                           reaction_tangent: Callable[[np.ndarray, np.ndarray], np.ndarray],
                           u0: Callable[[np.ndarray], np.ndarray],
                           x_range: tuple[float, float], t_range: tuple[float, float],
                           modes: int = 2048, dt: float = 1e-3, snapshot_dt: float = 5e-3,
                           contour_points: int = 64) -> tuple[PeriodicSpectralSolution, ...]:
    """Solve the system U_t = L U + F(U) of S species on a periodic interval (the method of
    :func:`etdrk4_periodic`, applied to every species at once; L is diagonal: each species
    has its own symbol, the species couple only through F).

    Args:
        symbols: k -> (S, len(k)) array, row s the symbol of species s (diffusion D_s u_xx:
            ``-D_s * k**2``).
        reaction: U (S, N) -> F(U) (S, N) pointwise on the collocation points.
        reaction_tangent: (U, V) -> F'(U) V, (S, N).
        u0: x -> (S, len(x)) the initial values.

    Returns:
        One solution per species.

    Raises:
        ValueError: a bad resolution or interval, with the fix.

    >>> sols = etdrk4_periodic_system(
    ...     lambda k: np.stack([-k**2, -2 * k**2]), lambda u: 0 * u, lambda u, v: 0 * v,
    ...     lambda x: np.stack([np.sin(x), np.cos(x)]), (0.0, 2 * np.pi), (0.0, 0.5),
    ...     modes=16, dt=0.05, snapshot_dt=0.25)
    >>> pt = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    >>> exact = [np.sin(1.0) * np.exp(-0.5), np.cos(1.0) * np.exp(-1.0)]
    >>> [bool(abs(float(s(pt)[0]) - e) < 1e-6) for s, e in zip(sols, exact)]
    [True, True]
    """
    (x0, x1), (t0, t1) = (tuple(map(float, x_range)), tuple(map(float, t_range)))
    if not (isinstance(modes, int) and modes >= 8 and modes % 2 == 0):
        raise ValueError(f"modes must be an even integer >= 8, got {modes!r}")
    if not (x1 > x0 and t1 > t0 and dt > 0 and snapshot_dt > 0):
        raise ValueError(f"need x0 < x1, t0 < t1, dt > 0, snapshot_dt > 0; got x in [{x0}, {x1}], "
                         f"t in [{t0}, {t1}], dt={dt}, snapshot_dt={snapshot_dt}")
    per_snapshot = snapshot_dt / dt
    n_snap = (t1 - t0) / snapshot_dt
    if abs(per_snapshot - round(per_snapshot)) > 1e-9 * per_snapshot or \
            abs(n_snap - round(n_snap)) > 1e-9 * n_snap:
        raise ValueError(f"snapshot_dt={snapshot_dt} must be a whole multiple of dt={dt} and "
                         f"divide t1 - t0 = {t1 - t0}")
    per_snapshot, n_snap = int(round(per_snapshot)), int(round(n_snap))
    period = x1 - x0
    half = modes // 2
    k = 2 * np.pi * np.arange(half + 1) / period
    lin = np.asarray(symbols(k), dtype=float)
    if lin.ndim != 2 or lin.shape[1] != k.shape[0] or not np.isfinite(lin).all():
        raise ValueError("symbols(k) must return one finite real row per species, one value "
                         "per wavenumber")
    species = lin.shape[0]
    E, E2, Q, f1, f2, f3 = etdrk4_coefficients(lin, dt, contour_points)

    def transform(u: np.ndarray) -> np.ndarray:  # physical -> Galerkin coefficients (rfft scale)
        v = np.fft.rfft(u, axis=-1)
        v[..., half] = 0.0
        return v

    def forcing(v: np.ndarray) -> np.ndarray:
        return transform(reaction(np.fft.irfft(v, n=modes, axis=-1)))

    m = max(PROJECTION_POINTS, 64 * modes)
    fine = x0 + period * np.arange(m) / m
    start = np.asarray(u0(fine), dtype=float)
    if start.shape != (species, m):
        raise ValueError(f"u0(x) must return ({species}, len(x)) values (one row per species), "
                         f"got shape {start.shape}")
    v = np.fft.rfft(start, axis=-1)[:, : half + 1] * (modes / m)
    v[:, half] = 0.0

    def derivatives(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = np.fft.irfft(v, n=modes, axis=-1)
        vt = lin * v + forcing(v)
        ut = np.fft.irfft(vt, n=modes, axis=-1)
        vtt = lin * vt + transform(reaction_tangent(u, ut))
        return vt, vtt

    snaps, snaps_t, snaps_tt = [v.copy()], *[[d] for d in derivatives(v)]
    for _ in range(n_snap):
        for _ in range(per_snapshot):
            nv = forcing(v)
            a = E2 * v + Q * nv
            na = forcing(a)
            b = E2 * v + Q * na
            nb = forcing(b)
            c = E2 * a + Q * (2 * nb - nv)
            nc = forcing(c)
            v = E * v + nv * f1 + 2 * (na + nb) * f2 + nc * f3
        if not np.isfinite(v).all():
            raise ValueError(f"the ETDRK4 solution blew up; take a smaller dt than {dt}")
        vt, vtt = derivatives(v)
        snaps.append(v.copy())
        snaps_t.append(vt)
        snaps_tt.append(vtt)
    weight = np.full(half, 2.0 / modes)  # rfft scale -> series coefficients (Nyquist dropped)
    weight[0] = 1.0 / modes
    arr = [np.stack(s)[:, :, :half] * weight for s in (snaps, snaps_t, snaps_tt)]  # (T, S, K)
    return tuple(PeriodicSpectralSolution(x0, period, t0, float(snapshot_dt),
                                          *(a[:, s] for a in arr), modes=modes, dt=float(dt))
                 for s in range(species))

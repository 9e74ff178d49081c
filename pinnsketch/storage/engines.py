"""Storage policies: how the network's value and input derivatives are computed and what is
kept for backward.

- ``autograd``: nested reverse-mode autograd
  (:func:`~pinnsketch.pde.derivatives.autograd_derivatives`); any derivative order; keeps
  everything autograd keeps (the baseline).
- ``exact``: Taylor-mode jets through fused custom Functions; each hidden layer keeps its
  pre-activation jets (J, N, w), the first layer only the points. Exact gradients.
- ``sketch``: as ``exact``, but each hidden layer keeps a per-component low-rank sketch of its
  pre-activation jets (``method``: one of ``SKETCH_METHODS``, default ``randomized_svd``).
  The forward values are exact; the parameter gradient is approximate (exact at full rank).
- ``checkpoint``: the plain jet forward under ``torch.utils.checkpoint`` over the whole
  network: keeps only the inputs, recomputes everything in backward. Exact gradients.
- ``quant8``: as ``exact``, but each hidden layer keeps its pre-activation jets as 8-bit
  codes with stochastic rounding, per jet component, row block and column (ActNN-style,
  :mod:`pinnsketch.sketch.quantize`): about 1/4 of ``exact``'s bytes in float32. Unbiased
  reconstruction; approximate gradients. No rank.
- ``projection``: as ``exact``, but each hidden layer keeps a one-sided random projection
  Z[j] R (N x k) of each jet component along the features (RAD/EXACT style,
  :mod:`pinnsketch.sketch.projection`), R (w x k) regenerated from a seed, E[R R^T] = I;
  restored as Z[j] R R^T. ``rank`` is k (clamped to the width). Approximate gradients.

``quant8`` and ``projection`` are baselines for the sketches at equal held bytes; they draw
fresh noise (rounding noise, R) at every forward call from (seed, call).

Jet policies carry derivative orders <= 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from pinnsketch._types import Points
from pinnsketch.checks import check_seed, is_int, is_real
from pinnsketch.pde.derivatives import (
    DerivativeKey,
    Derivatives,
    autograd_derivatives,
    key_name,
)
from pinnsketch.pde.domain import Box
from pinnsketch.seeds import derive_seeds
from pinnsketch.sketch import SKETCH_METHODS, check_family, check_method, relative_error
from pinnsketch.storage.functions import (
    CompressOptions,
    SketchOptions,
    act_linear,
    compressed_act_linear,
    input_linear,
    sketch_approximations,
    sketched_act_linear,
)
from pinnsketch.storage.jets import JetPlan, jet_forward_reference

__all__ = ["STORAGE_POLICIES", "SKETCH_METHODS", "StorageConfig", "Engine", "make_engine"]

STORAGE_POLICIES = ("autograd", "exact", "sketch", "checkpoint", "quant8", "projection")
_RANKED = ("sketch", "projection")  # the policies that take a rank

AUTO_INITIAL_RANK = 32


@dataclass(frozen=True)
class StorageConfig:
    """What a PINN keeps for backward (an immutable policy; validated on construction).

    Args:
        policy: one of :data:`STORAGE_POLICIES`.
        rank: sketch rank k, an int for every hidden layer, a tuple with one per hidden
            layer, or ``"auto"`` (a rank controller chooses, ``--sketch-rank auto``);
            required for ``policy="sketch"``, refused otherwise. A rank above
            min(N, width) is clamped to it at run time (full rank: exact reconstruction).
            For ``policy="projection"`` (required there, no ``"auto"``) the projected
            width k, clamped to the width.
        method: one of :data:`SKETCH_METHODS` (``sketch`` only).
        family: test-matrix family, one of ``pinnsketch.sketch.SKETCH_FAMILIES`` (the
            sketch's test matrices, or the projection's R).
        beta: EMA weight of the past, 0 <= beta < 1 (``method="ema"`` only).
        exact_value: keep the value jet exactly, sketch only the derivative jets.
        seed: base seed in [0, 2**63); each forward call derives fresh sketch (rounding,
            projection) seeds from it and a call counter (deterministic).
        measure_error: measure each layer's exact relative sketch error at forward time
            (``engine.last_sketch_errors``); costs a reconstruction per layer and call.

    Raises:
        ValueError: naming the bad value and the fix.

    >>> StorageConfig(policy="sketch", rank=32).method
    'randomized_svd'
    >>> StorageConfig(policy="fast")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown storage policy 'fast'; valid policies: autograd, exact, sketch, ...
    """

    policy: str = "autograd"
    rank: int | tuple[int, ...] | str | None = None
    method: str = "randomized_svd"
    family: str = "gaussian"
    beta: float = 0.9
    exact_value: bool = False
    seed: int = 0
    measure_error: bool = False

    def __post_init__(self) -> None:
        if self.policy not in STORAGE_POLICIES:
            raise ValueError(f"unknown storage policy {self.policy!r}; valid policies: "
                             f"{', '.join(STORAGE_POLICIES)}")
        check_method(self.method)
        check_family(self.family)
        if not is_real(self.beta) \
                or not 0.0 <= self.beta < 1.0:
            raise ValueError(f"beta={self.beta!r} must satisfy 0 <= beta < 1 (the EMA weight "
                             "of the past; beta = 1 would ignore every new batch); e.g. 0.9")
        check_seed("seed", self.seed)
        for name in ("exact_value", "measure_error"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        rank = self.rank
        if rank == "auto":
            if self.policy != "sketch":
                raise ValueError(f"rank='auto' is used only by policy='sketch', not "
                                 f"{self.policy!r}; drop rank or set policy='sketch'")
            rank = None
        elif isinstance(rank, list):
            rank = tuple(rank)
            object.__setattr__(self, "rank", rank)
        if rank is not None:
            values = rank if isinstance(rank, tuple) else (rank,)
            if not values:
                raise ValueError("rank=() is empty; give one rank per hidden layer or one int")
            for v in values:
                if not is_int(v):
                    raise ValueError(f"rank={rank!r} must be an int >= 1 or a tuple of them")
                if v < 1:
                    raise ValueError(f"rank={rank!r}: every rank must be >= 1 (a sketch keeps "
                                     "at least one direction); e.g. rank=32")
            if self.policy not in _RANKED:
                why = " (8-bit codes have no rank)" if self.policy == "quant8" else ""
                raise ValueError(f"rank={rank!r} is used only by policy='sketch' or "
                                 f"'projection', not {self.policy!r}{why}; drop rank or set "
                                 "policy='sketch'")
        elif self.policy in _RANKED and self.rank != "auto":
            raise ValueError(f"policy={self.policy!r} needs a rank: StorageConfig(policy="
                             f"{self.policy!r}, rank=32), or a tuple with one rank per hidden "
                             "layer")
        if self.policy != "sketch":
            for name in ("exact_value", "measure_error"):
                if getattr(self, name):
                    raise ValueError(f"{name}=True applies only to policy='sketch', not "
                                     f"{self.policy!r}; drop it or set policy='sketch'")


def _call_seeds(base: int, call: int, count: int) -> tuple[int, ...]:
    """``count`` distinct seeds for forward call ``call``, derived from ``base``."""
    return derive_seeds((base, call), count)


class Engine:
    """Computes :class:`~pinnsketch.pde.derivatives.Derivatives` of an MLP under one policy.

    Build with :func:`make_engine`; call ``engine(points)`` once per loss evaluation.

    Attributes:
        plan: the :class:`JetPlan` (None under ``autograd``).
        calls: forward calls so far (the sketch seeds of call c derive from (seed, c)).
        measure_error: whether the next calls measure the sketch error (from the config;
            a rank controller switches it on every K steps).
        last_sketch_errors: with ``measure_error``, per hidden layer the exact relative
            Frobenius error ||Z - Z_hat|| / ||Z|| of its stacked pre-activation jets at the
            last call; else None.
        last_component_errors: the same per hidden layer and jet component.
    """

    def __init__(self, mlp, domain: Box, keys: tuple[DerivativeKey, ...],
                 config: StorageConfig):
        self.mlp = mlp
        self.domain = domain
        self.keys = keys
        self.config = config
        self.plan = None if config.policy == "autograd" else JetPlan.from_keys(keys, domain.dim)
        self.calls = 0
        self.measure_error = config.measure_error  # may be switched per call (rank control)
        self.last_sketch_errors: list[float] | None = None
        self.last_component_errors: list[list[float]] | None = None
        self._ranks: tuple[int, ...] | None = None
        self._ema: dict[int, tuple[Tensor, ...]] = {}
        self._ema_points: int | None = None
        if config.policy == "sketch":
            # "auto": a rank controller sets the ranks before the first call
            self.set_ranks(AUTO_INITIAL_RANK if config.rank == "auto" else config.rank)

    @property
    def ranks(self) -> tuple[int, ...] | None:
        """The requested rank of each hidden layer (before clamping), or None."""
        return self._ranks

    def set_ranks(self, ranks: int | tuple[int, ...]) -> None:
        """Change the per-hidden-layer sketch ranks (between steps). Resets EMA state.

        Raises:
            ValueError: not a sketch engine, a wrong number of ranks, or a rank < 1.
        """
        if self.config.policy != "sketch":
            raise ValueError(f"set_ranks needs policy='sketch', this engine is "
                             f"{self.config.policy!r}")
        depth = self.mlp.depth
        values = tuple(ranks) if isinstance(ranks, (tuple, list)) else (ranks,) * depth
        if len(values) != depth:
            raise ValueError(f"got {len(values)} ranks {values} for a network with {depth} "
                             "hidden layers; give one rank per hidden layer or one int")
        for v in values:
            if not is_int(v) or v < 1:
                raise ValueError(f"ranks {values}: every rank must be an int >= 1")
        self._ranks = tuple(int(v) for v in values)
        self.reset_ema()

    def reset_ema(self) -> None:
        """Forget the EMA sketches (the next ``ema`` call starts from its own sketch)."""
        self._ema = {}
        self._ema_points = None

    def sketch_options(self, layer: int, n_points: int, call: int | None = None
                       ) -> SketchOptions:
        """The :class:`SketchOptions` of hidden layer ``layer`` (0-based) at forward ``call``.

        The rank is clamped to min(n_points, width). ``ema`` always uses the seeds of call 0
        (fixed test matrices).
        """
        cfg = self.config
        assert self._ranks is not None
        call = self.calls if call is None else call
        if cfg.method == "ema":
            call = 0
        J = self.plan.num_components
        width = self.mlp.layers[layer].out_features
        seeds = _call_seeds(cfg.seed, call, self.mlp.depth * J)[layer * J:(layer + 1) * J]
        k = min(self._ranks[layer], n_points, width)
        return SketchOptions(cfg.method, k, seeds, cfg.family, cfg.exact_value, cfg.beta)

    def compress_options(self, layer: int, n_points: int, call: int | None = None
                         ) -> CompressOptions:
        """The :class:`CompressOptions` of hidden layer ``layer`` (0-based) at forward ``call``
        (``quant8`` and ``projection``); the projection rank is clamped to the width."""
        cfg = self.config
        call = self.calls if call is None else call
        J = self.plan.num_components
        width = self.mlp.layers[layer].out_features
        seeds = _call_seeds(cfg.seed, call, self.mlp.depth * J)[layer * J:(layer + 1) * J]
        rank = 0
        if cfg.policy == "projection":
            rank = cfg.rank[layer] if isinstance(cfg.rank, tuple) else cfg.rank
            rank = min(int(rank), width)
        return CompressOptions(cfg.policy, seeds, rank, cfg.family)

    def __call__(self, points: Points) -> Derivatives:
        """Derivatives of the network at ``points`` (N, d)."""
        if points.dim() != 2 or points.shape[1] != self.domain.dim:
            raise ValueError(f"points must be (N, {self.domain.dim}) for coordinates "
                             f"{self.domain.names}, got {tuple(points.shape)}")
        policy = self.config.policy
        if policy == "autograd":
            x = points.detach().requires_grad_(True)
            self.calls += 1
            return autograd_derivatives(self.domain, x, self.mlp)
        if policy == "checkpoint":
            jets = checkpoint(jet_forward_reference, self.mlp, points, self.plan,
                              use_reentrant=False)
        elif policy == "exact":
            Z = input_linear(self.mlp, points, self.plan)
            for layer in self.mlp.layers[1:]:
                Z = act_linear(Z, layer, self.mlp.activation, self.plan)
            jets = Z[..., 0]
        elif policy in ("quant8", "projection"):
            Z = input_linear(self.mlp, points, self.plan)
            for l, layer in enumerate(self.mlp.layers[1:]):
                opts = self.compress_options(l, points.shape[0])
                Z = compressed_act_linear(Z, layer, self.mlp.activation, self.plan, opts)
            jets = Z[..., 0]
        else:
            jets = self._sketch_forward(points)
        self.calls += 1
        return self._derivatives(points, jets)

    def _sketch_forward(self, points: Points) -> Tensor:
        cfg, mlp, n = self.config, self.mlp, points.shape[0]
        if cfg.method == "ema":
            if self._ema_points is not None and self._ema_points != n:
                raise ValueError(
                    f"method='ema' keeps sketches across steps and needs the same number of "
                    f"points every call: had {self._ema_points}, got {n}; use a fixed batch "
                    "size, call engine.reset_ema(), or use method='three_sketch'")
            self._ema_points = n
        errors, comp_errors = [], []
        Z = input_linear(mlp, points, self.plan)
        for l, layer in enumerate(mlp.layers[1:]):
            opts = self.sketch_options(l, n)
            old = self._ema.get(l, ()) if cfg.method == "ema" else ()
            Zn, kept = sketched_act_linear(Z, layer, mlp.activation, self.plan, opts, old)
            if cfg.method == "ema":
                self._ema[l] = kept
            if self.measure_error:
                total, comps = _sketch_error(Z.detach(), kept, opts)
                errors.append(total)
                comp_errors.append(comps)
            Z = Zn
        if self.measure_error:
            self.last_sketch_errors, self.last_component_errors = errors, comp_errors
        return Z[..., 0]

    def _derivatives(self, points: Points, jets: Tensor) -> Derivatives:
        plan, domain = self.plan, self.domain

        def compute(key: DerivativeKey) -> Tensor:
            try:
                return jets[plan.index(key)]
            except KeyError:
                carried = ", ".join(key_name(k, domain) for k in plan.keys())
                raise ValueError(
                    f"{key_name(key, domain)} is not computed by this engine (it carries "
                    f"{carried}); build it with make_engine(..., keys=...) including that key, "
                    "e.g. from required_derivatives over every residual you evaluate") from None

        return Derivatives(domain, points, compute)


@torch.no_grad()
def _sketch_error(Z: Tensor, kept: tuple[Tensor, ...], opts: SketchOptions
                  ) -> tuple[float, list[float]]:
    J, n, w = Z.shape
    approx = sketch_approximations(kept, opts, n, w, J)
    comps, sq_err, sq_ref = [], 0.0, 0.0
    for j, a in enumerate(approx):
        ref = float(torch.linalg.matrix_norm(Z[j]))
        rel = 0.0 if isinstance(a, Tensor) else float(relative_error(Z[j], a))
        comps.append(rel)
        sq_err += (rel * ref) ** 2
        sq_ref += ref**2
    total = (sq_err / sq_ref) ** 0.5 if sq_ref > 0 else (0.0 if sq_err == 0 else float("inf"))
    return total, comps


def make_engine(mlp, domain: Box, keys: Iterable[DerivativeKey],
                config: StorageConfig | None = None) -> Engine:
    """An :class:`Engine` computing ``keys`` of ``mlp`` on ``domain`` under ``config``.

    Args:
        mlp: a scalar-output :class:`~pinnsketch.model.MLP`.
        domain: the domain (coordinate names; its dim must match the network input).
        keys: derivative keys the residuals read (e.g. from
            :func:`~pinnsketch.pde.derivatives.required_derivatives`); () is always added.
        config: the storage policy (default ``StorageConfig()``: autograd).

    Raises:
        ValueError: a network with more than one output, a domain/network dimension
            mismatch, an order > 2 derivative under a jet policy (use ``autograd``), a
            rank tuple whose length is not the number of hidden layers.

    >>> from pinnsketch.model import MLP
    >>> from pinnsketch.pde.domain import rectangle
    >>> box = rectangle(x=(0.0, 1.0), y=(0.0, 1.0))
    >>> net = MLP(box.lo, box.hi, width=8, depth=2, dtype=torch.float64)
    >>> eng = make_engine(net, box, [(0, 0), (1, 1)], StorageConfig(policy="exact"))
    >>> tuple(eng(torch.rand(5, 2, dtype=torch.float64)).laplacian.shape)
    (5,)
    """
    config = StorageConfig() if config is None else config
    if not isinstance(config, StorageConfig):
        raise TypeError(f"config must be a StorageConfig, got {type(config).__name__}")
    if mlp.layers[-1].out_features != 1:
        raise ValueError(f"the network must have one output, got {mlp.layers[-1].out_features}")
    if mlp.layers[0].in_features != domain.dim:
        raise ValueError(f"the network takes {mlp.layers[0].in_features} inputs but the domain "
                         f"has {domain.dim} coordinates {domain.names}")
    keys = tuple(sorted({tuple(sorted(k)) for k in keys} | {()}, key=lambda k: (len(k), k)))
    if config.policy != "autograd":
        for k in keys:
            if len(k) > 2:
                raise ValueError(
                    f"{key_name(k, domain)} is a derivative of order {len(k)}; the "
                    f"{config.policy!r} policy propagates jets of orders <= 2 only: use "
                    "StorageConfig(policy='autograd') for higher orders")
    if config.policy in _RANKED and isinstance(config.rank, tuple) \
            and len(config.rank) != mlp.depth:
        raise ValueError(f"rank={config.rank} has {len(config.rank)} entries but the network "
                         f"has {mlp.depth} hidden layers; give one rank per hidden layer")
    return Engine(mlp, domain, keys, config)

"""Storage policies: how the network's values and input derivatives are computed and what is
kept for backward.

Every policy runs the same network description (:meth:`NetworkBase.program
<pinnsketch.network.NetworkBase.program>`: segments between the stored nonlinearities) and
applies itself at every stored activation, i.e. at the pre-activation jets Z (J, N, w) of every
elementwise nonlinearity of the trunk (the modified MLP's encoders included, kept once
however many layers read them); the input maps and the output transform are recomputed from
the points, which every policy keeps.

- ``autograd``: nested reverse-mode autograd
  (:func:`~pinnsketch.pde.derivatives.autograd_derivatives`); any derivative order; keeps
  everything autograd keeps (the baseline).
- ``exact``: Taylor-mode jets through custom Functions; each stored activation keeps its
  pre-activation jets (J, N, w), the first segment only the points. Exact gradients.
- ``sketch``: as ``exact``, but each stored activation keeps a per-component low-rank sketch
  of its pre-activation jets (``method``: one of ``SKETCH_METHODS``, default
  ``randomized_svd``). The forward values are exact; the parameter gradient is approximate
  (exact at full rank).
- ``checkpoint``: the plain jet forward under ``torch.utils.checkpoint`` over the whole
  network: keeps only the inputs, recomputes everything in backward. Exact gradients.
- ``quant8``: as ``exact``, but each stored activation keeps its pre-activation jets as 8-bit
  codes with stochastic rounding, per jet component, row block and column (ActNN-style,
  :mod:`pinnsketch.sketch.quantize`): about 1/4 of ``exact``'s bytes in float32. Unbiased
  reconstruction; approximate gradients. No rank.
- ``projection``: as ``exact``, but each stored activation keeps a one-sided random projection
  Z[j] R (N x k) of each jet component along the features (RAD/EXACT style,
  :mod:`pinnsketch.sketch.projection`), R (w x k) regenerated from a seed, E[R R^T] = I;
  restored as Z[j] R R^T. ``rank`` is k (clamped to the width). Approximate gradients.

``quant8`` and ``projection`` are baselines for the sketches at equal held bytes; they draw
fresh noise (rounding noise, R) at every forward call from (seed, call).

Jet policies carry derivative orders <= 2.

Segments that match a hand-fused Function (:mod:`pinnsketch.storage.functions`: the affine
input layer, "activation then dense" of the plain MLP) run through it (fast); every other
segment runs through the generic :class:`~pinnsketch.storage.segment.SegmentFunction`,
which keeps the same representation and gives the same gradients (tested in float64).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from pinnsketch._types import Points
from pinnsketch.checks import check_seed, is_int, is_real
from pinnsketch.network import NetworkBase
from pinnsketch.network.program import POINTS, ActDense, AffineDense, GateDense, Program, Segment
from pinnsketch.pde.derivatives import (
    DerivativeKey,
    Derivatives,
    autograd_derivatives,
    check_fields,
    key_name,
    normalize_key,
)
from pinnsketch.pde.domain import Box
from pinnsketch.seeds import derive_seeds
from pinnsketch.sketch import SKETCH_METHODS, check_family, check_method, relative_error
from pinnsketch.storage.functions import (
    ActLinear,
    CompressOptions,
    ExactOptions,
    SketchedActLinear,
    SketchOptions,
    input_linear,
    sketch_approximations,
)
from pinnsketch.storage.gated import gated_dense
from pinnsketch.storage.jets import JetPlan
from pinnsketch.storage.segment import run_segment

__all__ = ["STORAGE_POLICIES", "SKETCH_METHODS", "StorageConfig", "Engine", "make_engine",
           "describe_stored"]

STORAGE_POLICIES = ("autograd", "exact", "sketch", "checkpoint", "quant8", "projection")
_RANKED = ("sketch", "projection")  # the policies that take a rank

AUTO_INITIAL_RANK = 32


@dataclass(frozen=True)
class StorageConfig:
    """What a PINN keeps for backward (an immutable policy; validated on construction).

    Args:
        policy: one of :data:`STORAGE_POLICIES`.
        rank: sketch rank k, an int for every stored activation, a tuple with one per stored
            activation (``net.stored``: the hidden layers, and the modified MLP's two
            encoders first), or ``"auto"`` (a rank controller chooses, ``--sketch-rank auto``);
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
                raise ValueError("rank=() is empty; give one rank per stored activation or one "
                                 "int")
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
                             f"{self.policy!r}, rank=32), or a tuple with one rank per stored "
                             "activation")
        if self.policy != "sketch":
            for name in ("exact_value", "measure_error"):
                if getattr(self, name):
                    raise ValueError(f"{name}=True applies only to policy='sketch', not "
                                     f"{self.policy!r}; drop it or set policy='sketch'")


def _call_seeds(base: int, call: int, count: int) -> tuple[int, ...]:
    """``count`` distinct seeds for forward call ``call``, derived from ``base``."""
    return derive_seeds((base, call), count)


def describe_stored(net: NetworkBase) -> str:
    """``"4 stored activations (hidden1, ..., hidden4)"``: for messages."""
    names = [n for n, _ in net.stored]
    return f"{len(names)} stored activations ({', '.join(names)})"


class Engine:
    """Computes :class:`~pinnsketch.pde.derivatives.Derivatives` of a network under one policy.

    Build with :func:`make_engine`; call ``engine(points)`` once per loss evaluation.

    Attributes:
        net: the network (a :class:`~pinnsketch.network.NetworkBase`).
        plan: the :class:`JetPlan` (None under ``autograd``).
        stored: (name, width) of the network's stored activations; ``ranks``, the sketch
            errors and the seeds are per stored activation, in this order.
        calls: forward calls so far (the sketch seeds of call c derive from (seed, c)).
        fused: whether segments that match a hand-fused Function run through it.
        measure_error: whether the next calls measure the sketch error (from the config;
            a rank controller switches it on every K steps).
        last_sketch_errors: with ``measure_error``, per stored activation the exact relative
            Frobenius error ||Z - Z_hat|| / ||Z|| of its stacked pre-activation jets at the
            last call; else None.
        last_component_errors: the same per stored activation and jet component.
    """

    def __init__(self, net: NetworkBase, domain: Box, keys: tuple[DerivativeKey, ...],
                 config: StorageConfig, fused: bool = True):
        self.net = net
        self.domain = domain
        self.keys = keys
        self.config = config
        self.fused = fused
        self.fields = net.fields
        self.stored = net.stored
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
        """The requested rank of each stored activation (before clamping), or None."""
        return self._ranks

    def set_ranks(self, ranks: int | tuple[int, ...]) -> None:
        """Change the per-stored-activation sketch ranks (between steps). Resets EMA state.

        Raises:
            ValueError: not a sketch engine, a wrong number of ranks, or a rank < 1.
        """
        if self.config.policy != "sketch":
            raise ValueError(f"set_ranks needs policy='sketch', this engine is "
                             f"{self.config.policy!r}")
        count = len(self.stored)
        values = tuple(ranks) if isinstance(ranks, (tuple, list)) else (ranks,) * count
        if len(values) != count:
            raise ValueError(f"got {len(values)} ranks {values} for a network with "
                             f"{describe_stored(self.net)}; give one rank per stored "
                             "activation or one int")
        for v in values:
            if not is_int(v) or v < 1:
                raise ValueError(f"ranks {values}: every rank must be an int >= 1")
        self._ranks = tuple(int(v) for v in values)
        self.reset_ema()

    def reset_ema(self) -> None:
        """Forget the EMA sketches (the next ``ema`` call starts from its own sketch)."""
        self._ema = {}
        self._ema_points = None

    def options(self, index: int, n_points: int, call: int | None = None
                ) -> ExactOptions | SketchOptions | CompressOptions:
        """How stored activation ``index`` (0-based, in ``stored`` order) is kept at forward
        ``call``: :class:`ExactOptions`, :class:`SketchOptions` (the rank clamped to
        min(n_points, width); ``ema`` always uses the seeds of call 0, fixed test matrices)
        or :class:`CompressOptions` (the projection rank clamped to the width)."""
        cfg = self.config
        if cfg.policy == "exact":
            return ExactOptions()
        call = self.calls if call is None else call
        if cfg.method == "ema" and cfg.policy == "sketch":
            call = 0
        J = self.plan.num_components
        width = self.stored[index][1]
        seeds = _call_seeds(cfg.seed, call, len(self.stored) * J)[index * J:(index + 1) * J]
        if cfg.policy == "sketch":
            assert self._ranks is not None
            k = min(self._ranks[index], n_points, width)
            return SketchOptions(cfg.method, k, seeds, cfg.family, cfg.exact_value, cfg.beta)
        rank = 0
        if cfg.policy == "projection":
            rank = cfg.rank[index] if isinstance(cfg.rank, tuple) else cfg.rank
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
            return autograd_derivatives(self.domain, x, self.net, fields=self.fields)
        if policy == "checkpoint":
            jets = checkpoint(self.net.jets, points, self.plan, use_reentrant=False)
        else:
            if policy == "sketch" and self.config.method == "ema":
                n = points.shape[0]
                if self._ema_points is not None and self._ema_points != n:
                    raise ValueError(
                        f"method='ema' keeps sketches across steps and needs the same number "
                        f"of points every call: had {self._ema_points}, got {n}; use a fixed "
                        "batch size, call engine.reset_ema(), or use method='three_sketch'")
                self._ema_points = n
            jets = self._jet_forward(points)
        self.calls += 1
        return self._derivatives(points, jets)

    def _jet_forward(self, points: Points) -> Tensor:
        """Output jets (J, N, F): every segment of the program, its stored inputs kept the
        policy's way."""
        program: Program = self.net.program()
        index = {name: i for i, (name, _) in enumerate(program.stored)}
        consumers, last = program.consumers(), program.last_use()
        values: dict[str, Tensor] = {POINTS: points}
        kept: dict[str, tuple[Tensor, ...]] = {}
        opts = {name: self.options(i, points.shape[0]) for name, i in index.items()}
        errors: dict[str, tuple[float, list[float]]] = {}
        for s, seg in enumerate(program.segments):
            values[seg.output] = self._segment(seg, values, kept, opts, consumers, errors)
            for name in seg.inputs:
                if last[name] == s and name != POINTS:
                    del values[name]  # its kept representation lives on in the graph
        if self.measure_error and self.config.policy == "sketch":
            order = [name for name, _ in program.stored]
            self.last_sketch_errors = [errors[n][0] for n in order]
            self.last_component_errors = [errors[n][1] for n in order]
        outs = [values[n] for n in program.outputs]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)

    def _segment(self, seg: Segment, values, kept, opts, consumers, errors) -> Tensor:
        plan, policy, fast = self.plan, self.config.policy, seg.fast if self.fused else None
        if isinstance(fast, (AffineDense, ActDense)) and fast.dense.factorized:
            fast = None  # these fused Functions save W: a computed diag(exp(s)) V would be held
        if isinstance(fast, AffineDense):
            return input_linear(values[POINTS], fast.affine, fast.dense, plan)
        if isinstance(fast, ActDense) and consumers[seg.inputs[0]] == 1:
            name = seg.inputs[0]
            Z, W, b = values[name], fast.dense.weight, fast.dense.bias
            if policy == "exact":
                return ActLinear.apply(Z, W, b, fast.act, plan)
            out = SketchedActLinear.apply(Z, W, b, fast.act, plan, opts[name],
                                          *self._old(name))
            self._kept(name, Z, tuple(out[1:]), opts[name], errors)
            return out[0]
        for name in seg.inputs:
            if name != POINTS and name not in kept:
                Z = values[name].detach()
                with torch.no_grad():
                    kept[name] = tuple(opts[name].keep(Z, self._old(name)))
                self._kept(name, Z, kept[name], opts[name], errors)
        if isinstance(fast, GateDense):
            return gated_dense(fast.act, plan, fast.dense, [values[n] for n in seg.inputs],
                               [opts[n] for n in seg.inputs], [kept[n] for n in seg.inputs])
        return run_segment(seg, plan, [values[n] for n in seg.inputs],
                           [None if n == POINTS else opts[n] for n in seg.inputs],
                           [() if n == POINTS else kept[n] for n in seg.inputs])

    def _old(self, name: str) -> tuple[Tensor, ...]:
        """The previous EMA sketch of a stored activation (``ema`` only)."""
        if self.config.policy == "sketch" and self.config.method == "ema":
            return self._ema.get(self._index(name), ())
        return ()

    def _index(self, name: str) -> int:
        return [n for n, _ in self.stored].index(name)

    def _kept(self, name: str, Z: Tensor, kept: tuple[Tensor, ...], opts, errors) -> None:
        """Record what was kept for ``name``: the EMA state, the measured sketch error."""
        if self.config.policy != "sketch":
            return
        if self.config.method == "ema":
            self._ema[self._index(name)] = kept
        if self.measure_error:
            errors[name] = _sketch_error(Z.detach(), kept, opts)

    def _derivatives(self, points: Points, jets: Tensor) -> Derivatives:
        plan, domain, fields = self.plan, self.domain, self.fields

        def compute(key: DerivativeKey) -> Tensor:
            field, coords = key
            try:
                return jets[plan.index(coords), :, fields.index(field)]
            except KeyError:
                carried = ", ".join(key_name((f, c), domain) for f in fields
                                    for c in plan.keys())
                raise ValueError(
                    f"{key_name(key, domain)} is not computed by this engine (it carries "
                    f"{carried}); build it with make_engine(..., keys=...) including that key, "
                    "e.g. from required_derivatives over every residual you evaluate") from None

        return Derivatives(domain, points, compute, fields)


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


JET_MAX_ORDER = 2  # the highest derivative order the jet policies propagate


def make_engine(net: NetworkBase, domain: Box, keys: Iterable[DerivativeKey],
                config: StorageConfig | None = None, fused: bool = True) -> Engine:
    """An :class:`Engine` computing ``keys`` of ``net`` on ``domain`` under ``config``.

    Args:
        net: a :class:`~pinnsketch.network.NetworkBase` (e.g. :class:`~pinnsketch.model.MLP`,
            or a network built from the parts of :mod:`pinnsketch.network`).
        domain: the domain (coordinate names; its dim must match the network input).
        keys: derivative keys (field, coordinates) the residuals read (e.g. from
            :func:`~pinnsketch.pde.derivatives.required_derivatives`; bare coordinate keys
            with a single field); every field's value is always added.
        config: the storage policy (default ``StorageConfig()``: autograd).
        fused: run the segments that match a hand-fused Function through it (default);
            False runs every segment through the generic segment Function (the same
            values and gradients; for tests and measurements).

    Raises:
        ValueError: a network that is not a pinnsketch network, a domain/network dimension
            mismatch, a field named like a coordinate, an order > 2 derivative under a jet
            policy (use ``autograd``), a rank tuple whose length is not the number of
            stored activations.

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
    if not isinstance(net, NetworkBase):
        raise TypeError(f"net must be a pinnsketch network (pinnsketch.network.Network, "
                        f"FieldNetworks or pinnsketch.model.MLP), got {type(net).__name__}")
    if net.in_features != domain.dim:
        raise ValueError(f"the network takes {net.in_features} inputs but the domain "
                         f"has {domain.dim} coordinates {domain.names}")
    fields = check_fields(net.fields, domain)
    keys = {normalize_key(k, fields) for k in keys} | {(f, ()) for f in fields}
    keys = tuple(sorted(keys, key=lambda k: (fields.index(k[0]), len(k[1]), k[1])))
    if config.policy != "autograd":
        for k in keys:
            if len(k[1]) > JET_MAX_ORDER:
                raise ValueError(
                    f"{key_name(k, domain)} is a derivative of order {len(k[1])}; the "
                    f"{config.policy!r} policy propagates jets of orders <= {JET_MAX_ORDER} only: use "
                    "StorageConfig(policy='autograd') for higher orders")
    if config.policy in _RANKED and isinstance(config.rank, tuple) \
            and len(config.rank) != len(net.stored):
        raise ValueError(f"rank={config.rank} has {len(config.rank)} entries but the network "
                         f"has {describe_stored(net)}; give one rank per stored activation")
    return Engine(net, domain, keys, config, fused)

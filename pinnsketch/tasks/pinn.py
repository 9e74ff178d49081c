"""The PINN task: a Problem, a network, collocation sampling, and the physics-informed loss.

Loss = sum_terms w_term * mean_points residual_term^2. The terms: the PDE residual on
interior points ("pde", or one term per equation of a system, "pde:<name>",
:mod:`pinnsketch.pde.equations`), each condition on its own points (named by the condition),
and, with observations, one data term per observed field on the observation points
("data:<field>" = u_field - y, :mod:`pinnsketch.pde.observations`). A weight given for
"pde" or "data" applies to every term of that prefix not weighted by name.
The loss is a mean over points, so accumulating gradients over chunks of points gives the
exact gradient of the whole batch in bounded memory; the same sum, split over processes
(:mod:`pinnsketch.distributed`), gives data-parallel training (the interior and the
observation points are split, the condition points replicated).

Unknown parameters (:mod:`pinnsketch.pde.unknowns`) are trained with the weights: they are
attached to the network as the submodule ``unknowns``, so every phase, checkpoint, dtype
change and data-parallel collective treats them like weights; the residual reads their
current values, and every history row records them ("param:<name>").

Conditions that the network satisfies by construction leave the loss (``task.notes`` says
which): those a problem's output transform names in ``satisfies``, and the ``Periodic``
conditions of the coordinates its input map embeds periodically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import traceback
from dataclasses import dataclass, field

import torch

from pinnsketch._types import Points
from pinnsketch.config import ModelConfig, OptimConfig, SamplingConfig
from pinnsketch.control import RankController
from pinnsketch.distributed import SINGLE, Cluster
from pinnsketch.memory import HeldBytes
from pinnsketch.network import NetworkBase, build_network
from pinnsketch.pde.adaptive_sampling import draw_by_probabilities, rad_probabilities, rad_sample
from pinnsketch.pde.conditions import Condition, Periodic
from pinnsketch.pde.derivatives import (
    Derivatives,
    check_fields,
    record_derivatives,
    required_derivatives,
)
from pinnsketch.pde.equations import PDE, equation_names, equations_of, term_name, term_weight
from pinnsketch.pde.observations import Observations
from pinnsketch.pde.problem import Problem
from pinnsketch.pde.sampling import sample_interior
from pinnsketch.pde.unknowns import (
    UnknownParameters,
    UnknownValueError,
    with_guesses,
    with_values,
)
from pinnsketch.seeds import derive_seed
from pinnsketch.storage import JET_MAX_ORDER, StorageConfig, make_engine
from pinnsketch.tasks.adaptive_weights import AdaptiveWeights
from pinnsketch.tasks.jacobian import residual_jacobian
from pinnsketch.tasks.rank_driver import RankDriver

__all__ = ["PINNTask", "PINNBatch"]


@dataclass(frozen=True)
class PINNBatch:
    """Point sets, float64: ``sets[name] = (points (N, d), aux)``, ``aux`` the outward normals
    (N, d) of a condition's points (zeros for the interior), or the observed values (N, F)
    of the ``"data"`` set, one column per observed field.

    ``counts[name]``: the N that term's mean divides by (the global count when the set is
    this process's share of a data-parallel batch); the set's own size when absent.
    ``index``: the index of :meth:`PINNTask.sample` that drew it (per-point attention weights
    belong to one batch).
    """

    sets: dict[str, tuple[Points, Points]]
    counts: dict[str, float] = field(default_factory=dict)
    index: int | None = None  # the sample index it was drawn with (None: not from sample())

    def count(self, name: str) -> float:
        return self.counts.get(name, self.sets[name][0].shape[0])

    @property
    def num_points(self) -> int:
        return sum(p.shape[0] for p, _ in self.sets.values())


class PINNTask:
    """Trains a network to satisfy a Problem's PDE and conditions.

    Args:
        problem: the PDE problem.
        model: a :class:`~pinnsketch.config.ModelConfig` (the network is built from it,
            seeded by ``seed``), or a network built from the parts of
            :mod:`pinnsketch.network` (used as given: trained in place).
        sampling, optim, storage: configurations.
        seed: seeds the initialisation and every point set.
        device, dtype: where and in what float type the model lives.
        controller, control_every: the rank policy of ``--sketch-rank auto`` and how often
            it measures the sketch errors.
        cluster: this process's place in a data-parallel run: it samples only its share of
            the interior points and of the observations, and ``backward`` sums gradients and
            loss terms over all processes (:mod:`pinnsketch.distributed`).
        observations: observed field values (a data file's); None: the problem's own
            (``problem.observations(seed)``), if any.

    Raises:
        ValueError: before any work: a residual reading an undeclared field or a declared
            field that nothing reads, equations that differ from the declared ones, an
            output transform of the wrong shape or naming an unknown condition, a periodic
            coordinate outside the domain, observations of an unknown field or outside the
            domain, an unknown parameter that no term reads, ...
    """

    def __init__(self, problem: Problem, model: ModelConfig | NetworkBase,
                 sampling: SamplingConfig, optim: OptimConfig, storage: StorageConfig,
                 seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 controller: RankController | None = None, control_every: int = 50,
                 cluster: Cluster = SINGLE, observations: Observations | None = None):
        self.problem = problem
        self.cluster = cluster
        self.domain = _named(problem, lambda: problem.domain)  # e.g. a polygon that is not simple
        self.sampling = sampling
        self.optim = optim
        self.storage = storage
        self.seed = seed
        self.device = torch.device(device)
        self.fields = check_fields(problem.fields, self.domain)
        self.unknowns = problem.unknowns()
        self.observations = self._checked_observations(problem, observations)
        conditions: tuple[Condition, ...] = tuple(problem.conditions())
        labels = [PDE] + [c.label for c in conditions]
        if len(set(labels)) != len(labels):
            raise ValueError(f"{problem.name}: loss-term names must be distinct, got {labels}")
        for c in conditions:
            if ":" in c.label:
                raise ValueError(f"{problem.name}: condition name {c.label!r} contains ':', "
                                 "which names the terms of a system and of the data "
                                 "(pde:<equation>, data:<field>); rename the condition")
        self._check_fields_read(problem, conditions)
        self.model = self._network(model, problem, seed, dtype).to(self.device)
        self.conditions, self.notes = self._conditions_left(problem, conditions)
        self.equations = self._equation_names()
        self.term_names, self.term_weights = self._loss_terms(problem, conditions, optim)
        self.set_names = (PDE, *(c.label for c in self.conditions),
                          *(("data",) if self.observations is not None else ()))
        bound = self._bound()
        pde_keys = _user_code(problem, "residual(d)", lambda: required_derivatives(
            [bound.residual], self.domain, self.fields))
        self.pde_keys = pde_keys
        if cluster.active and storage.policy == "sketch":  # independent sketches per process
            storage = dataclasses.replace(storage, seed=derive_seed(storage.seed, cluster.rank))
        self.engines = {PDE: make_engine(self.model, self.domain, pde_keys, storage)}
        self.rank_driver: RankDriver | None = None
        if controller is not None:
            if storage.policy != "sketch":
                raise ValueError("a rank controller needs storage policy 'sketch', "
                                 f"not {storage.policy!r}")
            self.rank_driver = RankDriver(controller, self.engines[PDE],
                                          self.model.stored_widths, control_every,
                                          cluster.max_floats if cluster.active else None)
        # Conditions and observations hold few points: they use the exact nested-autograd engine.
        cond_storage = StorageConfig(policy="autograd")
        for cond in self.conditions:
            keys = _user_code(problem, f"condition {cond.label!r}",
                              lambda c=cond: self._condition_keys(c))
            self.engines[cond.label] = make_engine(self.model, self.domain, keys, cond_storage)
        if self.observations is not None:
            self.engines["data"] = make_engine(self.model, self.domain,
                                               [(f, ()) for f in self.observations.fields],
                                               cond_storage)
        if optim.weighting.method in ("causal", "rba") and self.equations is not None:
            raise ValueError(f"{problem.name}: --weighting {optim.weighting.method} weights the "
                             "points of one PDE residual; this problem is a system of "
                             f"{len(self.equations)} equations: use gradnorm or none")
        time = (self.domain.index(self.domain.time), *self.domain.bounds(self.domain.time)
                ) if self.domain.time is not None else None
        self.weighting = AdaptiveWeights(optim.weighting, self.term_names, time, cluster)
        self._step = 0
        self._check_residuals()
        self.grid = problem.evaluation_grid()
        self.eval_points = self.grid.coordinates()
        self.reference, self.reference_note = self._checked_reference()
        if self.reference_note:
            self.notes = (*self.notes, self.reference_note)
        self.held_bytes: int | None = None
        self.held_bytes_per_point: float | None = None

    def _loss_terms(self, problem: Problem, conditions: tuple[Condition, ...],
                    optim: OptimConfig) -> tuple[tuple[str, ...], dict[str, float]]:
        """The loss terms (the PDE's equations, the conditions left, the data) and their
        weights: a term's default (1 for the PDE, a condition's ``weight``, the data's relative
        noise weights) unless ``--weight TERM=W`` (or ``PREFIX=W``) replaces it.

        Raises:
            ValueError: repeated term names; a weight naming no term (nor prefix).
        """
        pde_terms = ([PDE] if self.equations is None
                     else [term_name(PDE, n) for n in self.equations])
        obs = self.observations
        data_terms = [term_name("data", f) for f in obs.fields] if obs is not None else []
        labels = pde_terms + [c.label for c in self.conditions] + data_terms
        if len(set(labels)) != len(labels):
            raise ValueError(f"{problem.name}: loss-term names must be distinct, got {labels}")
        prefixes = {PDE} | ({"data"} if data_terms else set())
        unknown = {name for name, _ in optim.weights} - set(labels) - prefixes
        if unknown:
            gone = sorted(unknown & {c.label for c in conditions})
            why = (f" ({', '.join(gone)} left the loss: the network satisfies it exactly)"
                   if gone else "")
            raise ValueError(f"loss weights name unknown terms {sorted(unknown)}{why}; "
                             f"this problem's terms: {', '.join(labels)}"
                             + (f" (and {', '.join(sorted(prefixes))} for all terms of that "
                                "prefix)" if len(labels) > len(self.conditions) + 1 else ""))
        defaults = {t: 1.0 for t in pde_terms}
        defaults.update({c.label: float(c.weight) for c in self.conditions})
        if obs is not None:
            defaults.update({term_name("data", f): w for f, w in obs.weights().items()})
        given = dict(optim.weights)
        return tuple(labels), {t: term_weight(t, given, defaults[t]) for t in labels}

    # --- unknown parameters and observations ---

    def _checked_observations(self, problem: Problem, given: Observations | None
                              ) -> Observations | None:
        """The observations of the run: ``given`` (a data file), else the problem's own."""
        obs = given
        if obs is None:
            obs = _user_code(problem, f"observations(seed={self.seed})",
                             lambda: problem.observations(self.seed))
        if obs is None:
            return None
        if not isinstance(obs, Observations):
            raise ValueError(f"{problem.name}: observations(seed) returned "
                             f"{type(obs).__name__}, not an Observations (or None)")
        obs.check(self.domain, self.fields)
        return obs

    @property
    def parameter_module(self) -> UnknownParameters | None:
        """The trained unknown parameters (the network's ``unknowns``), or None."""
        return self.model.unknowns if self.unknowns else None

    def unknown_values(self) -> dict[str, float]:
        """name -> the current value of every unknown parameter."""
        module = self.parameter_module
        return module.floats() if module is not None else {}

    def _bound(self) -> Problem:
        """The problem with its unknowns bound to their current (differentiable) values."""
        module = self.parameter_module
        return self.problem if module is None else with_values(self.problem, module.values())

    def _equation_names(self) -> tuple[str, ...] | None:
        """The residual's equations (None: one equation), from one evaluation on a probe."""
        probe = torch.full((1, self.domain.dim), 0.5, dtype=torch.float64)
        d = Derivatives(self.domain, probe, lambda key: torch.full((1,), 0.5, dtype=torch.float64),
                        self.fields)
        bound = self._bound()
        out = _user_code(self.problem, "residual(d)", lambda: bound.residual(d))
        return equation_names(out, self.problem.equations, self.problem.name)

    _PROBE_POINTS = 16

    def _check_residuals(self) -> None:
        """Evaluate every term once on a few points of its own set: each must give one finite
        value per point. A residual that broadcasts (N, 1) against (N,) into (N, N), or
        returns a sum, would otherwise train another objective without a word. Every unknown
        parameter must change some term (else it cannot be learnt)."""
        autograd = StorageConfig(policy="autograd")
        probe = self.sample(0, n_points=self._PROBE_POINTS)
        module = self.parameter_module
        touched = torch.zeros((), dtype=self.dtype, device=self.device)
        for name in self.set_names:
            pts, aux = probe.sets[name]
            n = pts.shape[0]
            engine = make_engine(self.model, self.domain, self.engines[name].keys, autograd)
            args = (name, pts.to(self.device, self.dtype), aux.to(self.device, self.dtype), engine)
            terms = _user_code(self.problem, _describe(name), lambda a=args: self._terms(*a))
            for term, r in terms.items():
                what = f"{self.problem.name}: {_describe(term)}"
                if not isinstance(r, torch.Tensor):
                    raise ValueError(f"{what} returned {type(r).__name__}, not a tensor with one "
                                     "value per point")
                if tuple(r.shape) not in ((n,), (n, 1)):
                    raise ValueError(f"{what} returned shape {tuple(r.shape)} for {n} points; it "
                                     f"must give one value per point, shape ({n},) (a (N, 1) - "
                                     "(N,) broadcast, or a sum or mean inside the residual?)")
                bad = int((~torch.isfinite(r.detach())).sum())
                if bad:
                    raise ValueError(f"{what} is not finite at {bad} of {n} points at the start "
                                     f"(parameters {self.problem.parameters()}): check its "
                                     "formula and parameters")
                if module is not None and r.requires_grad:
                    touched = touched + r.sum()
        if module is not None:
            grads = torch.autograd.grad(touched, list(module.raw.values()), allow_unused=True) \
                if touched.requires_grad else [None] * len(module.raw)
            unused = [k for k, g in zip(module.raw.keys(), grads) if g is None]
            if unused:
                raise ValueError(f"{self.problem.name}: unknown parameter(s) {', '.join(unused)} "
                                 "are read by no residual term, so they cannot be learnt; read "
                                 f"them in residual(d) (self.{unused[0]}) or fix them with "
                                 f"--param {unused[0]}=VALUE")

    def _checked_reference(self) -> tuple[torch.Tensor | None, str | None]:
        """The reference on the evaluation points, checked once before any training, and a
        note when a reference exists but cannot be computed (it reads an unknown parameter,
        whose true value the run does not know)."""
        problem = self.problem
        if not problem.has_reference():
            return None, None
        m, nf = self.eval_points.shape[0], len(self.fields)
        reads_unknown = object()

        def call():
            try:
                return problem.reference(self.eval_points)
            except UnknownValueError:
                return reads_unknown

        ref = _user_code(problem, "reference(points)", call)
        if ref is reads_unknown:
            return None, (f"{problem.name}: no L2 error: reference(points) reads an unknown "
                          f"parameter ({', '.join(self.unknowns)}), whose true value is not known")
        want = ((m,), (m, 1)) if nf == 1 else ((m, nf),)
        if not isinstance(ref, torch.Tensor) or tuple(ref.shape) not in want:
            shape = tuple(ref.shape) if isinstance(ref, torch.Tensor) else type(ref).__name__
            raise ValueError(f"{problem.name}: reference(points) returned {shape} for {m} "
                             f"evaluation points; it must return a tensor of shape {want[0]}"
                             + (f" (one column per field {self.fields})" if nf > 1 else ""))
        ref = ref.detach().to(torch.float64).cpu()
        ref = ref.reshape(-1) if nf == 1 else ref
        bad = int((~torch.isfinite(ref)).sum())
        if bad:
            raise ValueError(f"{problem.name}: the reference solution is not finite at {bad} of "
                             f"{m} evaluation points (parameters {problem.parameters()}); "
                             "the L2 error could not be measured")
        return ref, None

    def _condition_keys(self, cond: Condition, record=required_derivatives):
        """The derivative keys of a condition's residual, run once at its probe points:
        ``record`` is :func:`required_derivatives` (the keys its engine computes) or
        :func:`record_derivatives` (exactly those it reads)."""
        probe = cond.probe_points(self.domain)
        return record([lambda d: cond.residual(d, torch.zeros_like(probe))], self.domain,
                      self.fields, probe)

    def _check_fields_read(self, problem: Problem, conditions) -> None:
        """Every residual reads declared fields only, and every declared field is read (by the
        residual, a condition, or the observations). Unknowns read as their guesses here."""
        def reads() -> set:
            keys = record_derivatives([with_guesses(problem).residual], self.domain, self.fields)
            return keys.union(*(self._condition_keys(c, record_derivatives)
                                for c in conditions))

        read = {f for f, _ in _named(problem, lambda: _user_code(  # e.g. an undeclared field
            problem, "residual(d)", reads))}
        if self.observations is not None:
            read |= set(self.observations.fields)
        unread = [f for f in self.fields if f not in read]
        if unread:
            raise ValueError(f"{problem.name}: field(s) {', '.join(unread)} are declared in "
                             f"fields {self.fields} but no residual or condition reads them; "
                             "drop them from fields or use them")

    def _network(self, model: ModelConfig | NetworkBase, problem: Problem, seed: int,
                 dtype: torch.dtype) -> NetworkBase:
        """The network, with the problem's output transforms attached and checked, and the
        problem's unknown parameters attached as its submodule ``unknowns`` (module doc)."""
        transforms = tuple(problem.output_transforms())
        if isinstance(model, NetworkBase):
            net = model.to(dtype)
            if net.fields != self.fields:
                raise ValueError(f"the network's fields {net.fields} are not the problem's "
                                 f"{self.fields}")
            if transforms and net.output_transforms:
                raise ValueError(f"{problem.name} declares output transforms and the network "
                                 "given already has some; give them in one place")
            transforms = transforms or net.output_transforms
        else:
            gen = torch.Generator().manual_seed(seed)
            net = build_network(model, self.domain, self.fields, generator=gen, dtype=dtype)
        net.set_output_transforms(transforms)
        lo = torch.tensor(self.domain.lo, dtype=torch.float64)
        hi = torch.tensor(self.domain.hi, dtype=torch.float64)
        probe = lo + torch.linspace(0.0, 1.0, 7, dtype=torch.float64)[:, None] * (hi - lo)
        for t in transforms:
            t.check(probe)
        if "unknowns" in net._modules:  # a network object trained before: not this problem's
            del net._modules["unknowns"]
        if self.unknowns:
            net.unknowns = UnknownParameters(self.unknowns, dtype)
        return net

    def _conditions_left(self, problem: Problem, conditions: tuple[Condition, ...]
                         ) -> tuple[tuple[Condition, ...], tuple[str, ...]]:
        """The conditions that stay in the loss, and one note per condition that leaves it."""
        labels = {c.label for c in conditions}
        satisfied: dict[str, str] = {}
        for t in self.model.output_transforms:
            for label in t.satisfies:
                if label not in labels:
                    raise ValueError(f"{problem.name}: the output transform of field "
                                     f"{t.field!r} says it satisfies condition {label!r}, which "
                                     f"is not one of its conditions: {', '.join(sorted(labels))}")
                satisfied[label] = f"the output transform of field {t.field!r}"
        periodic = {self.domain.names[i] for i in self.model.periodic_coords}
        for c in conditions:
            if isinstance(c, Periodic) and c.coord in periodic:
                satisfied.setdefault(c.label, f"the periodic embedding of {c.coord}")
        notes = tuple(f"condition {label!r} holds exactly by {how}: left out of the loss"
                      for label, how in satisfied.items())
        return tuple(c for c in conditions if c.label not in satisfied), notes

    # --- hooks of the training loop (see pinnsketch.tasks.base.Task) ---

    @property
    def resample_every(self) -> int:
        """Adam steps per batch of points (0: one batch for the whole run)."""
        return self.sampling.resample_every

    def before_step(self, step: int) -> None:
        self._step = step
        if self.rank_driver is not None:
            self.rank_driver.before_step(step)

    def after_step(self, step: int, terms: dict[str, float]) -> tuple[dict[str, object], list[str]]:
        """Extra history columns (sketch ranks, balanced weights) and log lines (rank
        changes) after a committed step."""
        self.weighting.commit()
        messages = []
        if self.rank_driver is not None:
            messages = self.rank_driver.after_step(step, self.pde_loss(terms))
        columns = self.rank_columns()
        if self.weighting.balance is not None:
            columns.update({f"weight_{n}": w for n, w in self.weighting.balance.weights.items()})
        return columns, messages

    @property
    def sketch_ranks(self) -> tuple[int, ...] | None:
        """The ranks each sketched layer keeps (clamped to its width), or None; after a
        line-search phase switched to exact storage, the ranks the Adam phase ended with."""
        if self.rank_driver is not None:
            return self.rank_driver.ranks
        ranks = self.engines["pde"].ranks
        if ranks is None:
            return None
        widths = (layer.out_features for layer in self.model.layers[:-1])
        return tuple(min(r, w) for r, w in zip(ranks, widths, strict=True))

    def rank_columns(self) -> dict[str, object]:
        ranks = self.sketch_ranks
        return {} if ranks is None else {f"rank_{i + 1}": r for i, r in enumerate(ranks)}

    def enter_phase(self, phase: str) -> list[str]:
        """An Adam phase says when it draws its points by RAD; a line-search phase freezes
        the adaptive loss weights and, under rank control, switches to exact storage: a line
        search needs consistent losses and gradients (idempotent)."""
        self.weighting.active = phase == "adam"
        s = self.sampling
        if phase == "adam":
            return [] if not s.rad_adam_every else [
                f"Adam draws its {s.collocation} interior points by RAD from step "
                f"{s.rad_adam_every} on: {s.rad_pool_size} candidates scored by the residual "
                f"every {s.rad_adam_every} steps, p ~ |r|^{s.rad_k:g} / mean + {s.rad_c:g}"]
        if self.rank_driver is None:
            return []
        lines = self.rank_driver.enter_line_search()
        if self.engines["pde"].config.policy == "exact":
            return lines
        self._use_exact_storage()
        return [*lines, "L-BFGS phase: exact storage (exact gradients; a line search needs "
                "consistent losses and gradients); rank control ends here"]

    def _use_exact_storage(self) -> None:
        self.engines["pde"] = make_engine(self.model, self.domain, self.pde_keys,
                                          StorageConfig(policy="exact"))

    @property
    def rank_log(self) -> tuple[str, ...]:
        """Every decision of the rank controller so far, oldest first (empty without one)."""
        return tuple(self.rank_driver.state.log) if self.rank_driver is not None else ()

    def checkpoint_state(self) -> dict[str, object]:
        """What a resumed run needs beyond weights and optimizer state, as plain data: the
        sketch engine's call counter (its sketch seeds) and the rank state."""
        return {"sketch_calls": self.engines["pde"].calls,
                "rank": self.rank_driver.state_dict() if self.rank_driver is not None else None,
                "weighting": self.weighting.state_dict()}

    def restore_checkpoint_state(self, saved: dict[str, object]) -> None:
        """Undo :meth:`checkpoint_state` (resume, or back to the last good state)."""
        if self.rank_driver is not None and saved.get("rank") is not None:
            self.rank_driver.load_state_dict(saved["rank"])
            if not self.rank_driver.active and self.engines["pde"].config.policy != "exact":
                self._use_exact_storage()
        self.engines["pde"].calls = int(saved.get("sketch_calls", 0))
        if saved.get("weighting") is not None:
            self.weighting.load_state_dict(saved["weighting"])

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def set_dtype(self, dtype: torch.dtype) -> None:
        self.model.to(dtype)

    def sample(self, index: int, density: dict | None = None,
               n_points: int | None = None) -> PINNBatch:
        """The index-th point sets; the same (seed, index, density) always gives the same points.

        The interior points are the sampler's (``sampling.method``), or with ``density``
        (:meth:`adaptive_density`) ``collocation`` points of its pool drawn with its
        probabilities. In a data-parallel run this process gets its rows of the interior set
        and of the observations (the union over processes is the single-process set) and all
        the condition points, which every process weighs by 1 / world_size. The observations
        are the same in every batch. ``n_points`` replaces every set's size (a probe).
        """
        s, cl = self.sampling, self.cluster
        sets = {}
        total = s.collocation if n_points is None else n_points
        rows = cl.shard(total) if n_points is None else None
        if density is None:
            interior = sample_interior(self.domain, total, s.method,
                                       derive_seed(self.seed, index, 0), rows=rows)
        else:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, index, -5))
            _, interior = draw_by_probabilities(self._adam_pool(density["index"]),
                                                density["probabilities"], total, gen)
            interior = interior if rows is None else interior[rows]
        sets[PDE] = (interior, torch.zeros_like(interior))
        counts = {PDE: float(total)}
        for i, cond in enumerate(self.conditions):
            n = s.boundary if cond.uses_boundary_budget() else s.initial
            n = n if n_points is None else n_points
            cp = cond.sample(self.domain, n, s.method, derive_seed(self.seed, index, i + 1),
                             torch.float64)
            sets[cond.label] = (cp.points, cp.normals)
            counts[cond.label] = float(cp.points.shape[0] * cl.world_size)
        if self.observations is not None:
            obs = self.observations
            rows = cl.shard(len(obs)) if n_points is None else slice(0, min(n_points, len(obs)))
            sets["data"] = (obs.points[rows], obs.table()[rows])
            counts["data"] = float(len(obs)) if n_points is None else float(sets["data"][0].shape[0])
        return PINNBatch(sets, counts, index)

    @property
    def adapt_every(self) -> int:
        """Adam steps between re-estimates of the RAD density that fresh interior points are
        drawn from (0: the sampler's points)."""
        return self.sampling.rad_adam_every

    def adaptive_density(self, index: int) -> dict:
        """The index-th Adam RAD density, as plain data ``{"index": index, "probabilities":
        p}``: a uniform pool of ``rad_pool`` candidates drawn from (seed, index) (rebuilt from
        the index, not stored) and p (float64) proportional to |r|^k / mean |r|^k + c at the
        current weights (:func:`~pinnsketch.pde.adaptive_sampling.rad_probabilities`). Every
        process scores the whole pool, so every process holds the same density."""
        s = self.sampling
        r = self._residual_magnitude(self._adam_pool(index))
        return {"index": index, "probabilities": rad_probabilities(r, s.rad_k, s.rad_c)}

    def _adam_pool(self, index: int) -> Points:
        return sample_interior(self.domain, self.sampling.rad_pool_size, "uniform",
                               derive_seed(self.seed, index, -4))

    @property
    def refine_every(self) -> int:
        """Second-order iterations between RAD refinements of the interior points (0: none)."""
        return self.sampling.rad_every

    def refine(self, index: int, saved: Points | None = None) -> tuple[PINNBatch, Points]:
        """The fixed batch of a second-order phase with its interior points replaced.

        With ``saved`` None, by RAD (:func:`~pinnsketch.pde.adaptive_sampling.rad_sample`):
        a uniform candidate pool drawn from (seed, index), the PDE residual magnitude there
        at the current weights, and ``collocation`` points drawn with p proportional to
        |r|^k / mean |r|^k + c. Every process evaluates the whole pool, so each draws the
        same set and keeps its rows. With ``saved`` (a resumed run's interior set), those
        points.

        Returns:
            (the batch, the whole interior set (N, d) float64, to checkpoint).
        """
        s = self.sampling
        base = self.sample(-1)
        interior = saved
        if interior is None:
            pool = sample_interior(self.domain, s.rad_pool_size, "uniform",
                                   derive_seed(self.seed, index, -2))
            gen = torch.Generator().manual_seed(derive_seed(self.seed, index, -3))
            _, interior = rad_sample(pool, self._residual_magnitude(pool), s.collocation,
                                     s.rad_k, s.rad_c, gen)
        rows = interior[self.cluster.shard(interior.shape[0])]
        sets = {**base.sets, PDE: (rows, torch.zeros_like(rows))}
        return PINNBatch(sets, base.counts), interior

    def _residual_magnitude(self, points: Points, chunk: int = 8192) -> torch.Tensor:
        """|r| of the PDE at ``points`` (float64, no parameter gradients), in chunks; the
        Euclidean norm over the equations of a system.

        Derivatives of order <= 2 by forward jets under ``no_grad`` (nothing is recorded:
        nested autograd would hold its graph, ~280 kB a point in float64 on a 4 x 256
        modified MLP); higher orders by nested autograd."""
        jets = all(len(coords) <= JET_MAX_ORDER for _, coords in self.pde_keys)
        engine = make_engine(self.model, self.domain, self.pde_keys,
                             StorageConfig(policy="exact" if jets else "autograd"))
        out = []
        for part in points.split(chunk):
            part = part.to(self.device, self.dtype)
            with torch.no_grad() if jets else contextlib.nullcontext():
                terms = self._terms(PDE, part, torch.zeros_like(part), engine)
            square = sum(r.detach().reshape(-1).double().pow(2) for r in terms.values())
            out.append(square.sqrt().cpu())
        return torch.cat(out)

    def _terms(self, name: str, points: Points, aux: torch.Tensor, engine=None
               ) -> dict[str, torch.Tensor]:
        """The residuals of set ``name`` at its points, by term: the PDE's equations, a
        condition (``aux``: the outward normals), or the data misfit of each observed field
        (``aux``: the observed values, one column per field)."""
        d = (engine or self.engines[name])(points)
        if name == PDE:
            out = self._bound().residual(d)
            eqs = equations_of(out, self.equations, self.problem.name)
            return {(PDE if self.equations is None else term_name(PDE, k)): v
                    for k, v in eqs.items()}
        if name == "data":
            return {term_name("data", f): d[f] - aux[:, i]
                    for i, f in enumerate(self.observations.fields)}
        cond = self.conditions[self.set_names.index(name) - 1]
        return {name: cond.residual(d, aux)}

    def _chunks(self, batch: PINNBatch) -> int:
        n = batch.sets[PDE][0].shape[0]
        size = self.optim.chunk_size
        return 1 if size <= 0 or n <= size else math.ceil(n / size)

    def backward(self, batch: PINNBatch) -> dict[str, float]:
        """Accumulate the gradient of sum_t w_t mean(r_t^2) into .grad; return the terms.

        Each chunk contributes sum_{i in chunk} r_t(x_i)^2 / N_t (N_t = ``batch.count(set)``);
        in a data-parallel run the gradients and terms are then summed over processes.
        Only the interior ("pde") set is split into chunks: a condition's set is small and
        may pair its points (``Periodic`` compares u at a point with u at its image), so it
        is evaluated whole, with the first chunk, and so are the observations. The weight
        w_t of a term is its default (module doc) unless ``--weight TERM=W`` replaces it.
        The returned terms also hold the unknown parameters' values at this point
        ("param:<name>").
        """
        dtype, dev = self.dtype, self.device
        if self.weighting.balancing_due(self._step):
            self.weighting.propose_balance(self._term_gradient_norms(batch))
        chunks = self._chunks(batch)
        totals = {name: 0.0 for name in self.term_names}
        objective = 0.0
        peak = 0
        peak_points = 1
        for c in range(chunks):
            loss = torch.zeros((), dtype=dtype, device=dev)
            with HeldBytes(exclude=self.model.parameters()) as held:
                n_points = 0
                for name in self.set_names:
                    pts, aux = batch.sets[name]
                    if name == PDE:
                        part_p, part_a = pts.tensor_split(chunks)[c], aux.tensor_split(chunks)[c]
                    elif c == 0:
                        part_p, part_a = pts, aux
                    else:
                        continue
                    if part_p.shape[0] == 0:
                        continue
                    n_points += part_p.shape[0]
                    points = part_p.to(dev, dtype)
                    terms = self._terms(name, points, part_a.to(dev, dtype))
                    count = batch.count(name)
                    for term, r in terms.items():
                        plain = r.pow(2).sum() / count
                        value = (self.weighting.pde_sum(r, points, count, batch.index)
                                 if term == PDE else plain)
                        weight = self.term_weights[term] * self.weighting.factor(term)
                        totals[term] += float(plain.detach())
                        objective += weight * float(value.detach())
                        loss = loss + weight * value
            if held.bytes > peak:
                peak, peak_points = held.bytes, n_points
            loss.backward()
        self.held_bytes = peak
        self.held_bytes_per_point = peak / peak_points
        self.cluster.sum_gradients(self.model.parameters())
        totals = self.cluster.sum_floats({**totals, "loss": objective})
        totals.update({f"param:{k}": v for k, v in self.unknown_values().items()})
        return totals

    def _term_gradient_norms(self, batch: PINNBatch) -> dict[str, float]:
        """||grad L_t|| of every unweighted term on ``batch`` (summed over processes), for
        gradient-norm balancing; the parameters' gradients are left cleared."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        norms = {}
        for name in self.set_names:
            pts, aux = batch.sets[name]
            terms = self._terms(name, pts.to(self.device, self.dtype),
                                aux.to(self.device, self.dtype))
            for k, (term, r) in enumerate(terms.items()):
                for p in params:
                    p.grad = None
                (r.pow(2).sum() / batch.count(name)).backward(retain_graph=k + 1 < len(terms))
                self.cluster.sum_gradients(params)
                norms[term] = float(torch.sqrt(sum(p.grad.pow(2).sum() for p in params
                                                   if p.grad is not None)))
        for p in params:
            p.grad = None
        return norms

    def residual_jacobian(self, batch: PINNBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(r, J) with loss = ||r||^2 on ``batch`` and J = dr/dtheta, float64, for a
        Gauss-Newton-type phase (:func:`pinnsketch.tasks.jacobian.residual_jacobian`)."""
        return residual_jacobian(self, batch)

    def pde_loss(self, terms: dict[str, float]) -> float:
        """The PDE residual's part of ``terms``: the "pde" term, or the sum of a system's."""
        return sum(v for k, v in terms.items() if k == PDE or k.startswith(PDE + ":"))

    @torch.no_grad()
    def predict(self, points: Points, chunk: int = 65536) -> torch.Tensor:
        """The fields at (N, d) points, evaluated in chunks: (N,) float64 on the CPU for a
        single field, (N, F) for several."""
        out = [self.model(p.to(self.device, self.dtype)).double().cpu()
               for p in points.split(chunk)]
        u = torch.cat(out) if out else torch.zeros(0, len(self.fields), dtype=torch.float64)
        return u[:, 0] if len(self.fields) == 1 else u

    def evaluate(self) -> dict[str, float]:
        """Relative L2 errors ||u - u_ref|| / ||u_ref|| on the problem's evaluation points:
        ``l2_relative_error`` over all fields together (the norm of the stacked fields), and
        with several fields also ``l2_relative_error_<field>`` for each."""
        if self.reference is None:
            return {}
        u = self.predict(self.eval_points)
        err = (u - self.reference).norm() / self.reference.norm()
        out = {"l2_relative_error": float(err)}
        if u.dim() == 2:
            for i, f in enumerate(self.fields):
                ref = self.reference[:, i]
                out[f"l2_relative_error_{f}"] = float((u[:, i] - ref).norm() / ref.norm())
        return out


def _describe(term: str) -> str:
    if term == PDE:
        return "the residual"
    if term.startswith(PDE + ":"):
        return f"equation {term[len(PDE) + 1:]!r} of the residual"
    if term == "data" or term.startswith("data:"):
        return "the data term" + (f" of field {term[5:]!r}" if ":" in term else "s")
    return f"condition {term!r}"


def _named(problem: Problem, call):
    """``call()``, with a ValueError's message prefixed by the problem's name (if it lacks it)."""
    try:
        return call()
    except ValueError as exc:
        if str(exc).startswith(f"{problem.name}: "):
            raise
        raise ValueError(f"{problem.name}: {exc}") from None


def _user_code(problem: Problem, what: str, call):
    """Run a problem's own code; an exception becomes one ValueError naming the problem, the
    method, its file and line, and the cause (a problem is user code)."""
    try:
        return call()
    except ValueError:
        raise
    except Exception as exc:
        try:
            source = inspect.getsourcefile(type(problem))
        except (TypeError, OSError):  # a class defined in __main__ or a notebook cell
            source = None
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == source]
        where = f" ({source}, line {lines[-1]})" if lines else ""
        raise ValueError(f"{problem.name}: {what} raised {type(exc).__name__}: {exc}{where}"
                         ) from None

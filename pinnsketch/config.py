"""Run configuration: small frozen dataclasses, validated on construction.

Every bad value is refused here, before any work starts, with a message that names the
value and the fix. The CLI builds these same objects; so do notebooks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from pinnsketch.activations import ACTIVATIONS
from pinnsketch.checks import check_int, check_real, is_real
from pinnsketch.network import ARCHITECTURES, RWF, check_init
from pinnsketch.optim import DEFAULT_DENSE_LIMIT_BYTES, OPTIMIZERS
from pinnsketch.pde.sampling import SAMPLERS

__all__ = ["ModelConfig", "SamplingConfig", "OptimConfig", "PhaseConfig", "RunConfig", "DTYPES",
           "DEFAULT_PHASES", "PHASE_OPTIMIZERS", "WEIGHTINGS", "WeightingConfig", "parse_phases",
           "parse_weighting", "to_dict"]

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class ModelConfig:
    """The network: ``arch`` trunk of ``depth`` hidden layers of ``width`` units, and its parts.

    Args:
        width, depth, activation: the trunk's hidden layers.
        arch: the trunk, one of :data:`pinnsketch.network.ARCHITECTURES` (``mlp``, or
            ``modified``: the modified MLP of Wang, Teng & Perdikaris 2021).
        fourier_features: m > 0 adds random Fourier features [cos(B h), sin(B h)] with m
            frequencies (output width 2m) after the input scaling; 0 (default) none.
        fourier_sigma: the frequencies' scale sigma > 0 (B ~ N(0, sigma^2)).
        fourier_trainable: train B (default frozen).
        periodic: coordinates embedded exactly periodically, cos/sin(2 pi k x / L),
            k = 1..``harmonics``; their ``Periodic`` conditions then leave the loss.
        harmonics: K >= 1 of the periodic embedding.
        rwf: (mu, sigma) of random weight factorization W = diag(exp(s)) V, s ~ N(mu,
            sigma^2), on every dense layer; None (default) for plain weights.
        init: weight initialiser, one of :data:`pinnsketch.network.INITIALIZERS`.
        per_field: with several fields, one network per field instead of one network with
            an output per field.

    Raises:
        ValueError: naming the bad value and the valid choices.
    """

    width: int = 20
    depth: int = 3
    activation: str = "tanh"
    arch: str = "mlp"
    fourier_features: int = 0
    fourier_sigma: float = 1.0
    fourier_trainable: bool = False
    periodic: tuple[str, ...] = ()
    harmonics: int = 1
    rwf: tuple[float, float] | None = None
    init: str = "glorot"
    per_field: bool = False

    def __post_init__(self) -> None:
        check_int("model.width", self.width, low=1)
        check_int("model.depth", self.depth, low=1)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; valid architectures: "
                             f"{', '.join(ARCHITECTURES)}")
        check_int("model.fourier_features", self.fourier_features, low=0)
        check_real("model.fourier_sigma", self.fourier_sigma, low=0, low_open=True)
        check_int("model.harmonics", self.harmonics, low=1)
        check_init(self.init)
        for name in ("fourier_trainable", "per_field"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"model.{name} must be True or False, got "
                                 f"{getattr(self, name)!r}")
        periodic = self.periodic
        if isinstance(periodic, str):
            raise ValueError(f"model.periodic must be a tuple of coordinate names, e.g. "
                             f"({periodic!r},), not a string")
        periodic = tuple(periodic)
        if not all(isinstance(c, str) for c in periodic) or len(set(periodic)) != len(periodic):
            raise ValueError(f"model.periodic must be distinct coordinate names, got {periodic!r}")
        object.__setattr__(self, "periodic", periodic)
        if self.rwf is not None:
            rwf = tuple(self.rwf)
            if len(rwf) != 2:
                raise ValueError(f"model.rwf must be (mu, sigma), got {self.rwf!r}")
            RWF(*rwf)  # validates
            object.__setattr__(self, "rwf", tuple(float(v) for v in rwf))


@dataclass(frozen=True)
class SamplingConfig:
    """Collocation points: interior, boundary and initial counts, sampler, resampling.

    ``resample_every`` = K > 0 draws a fresh interior/boundary/initial set every K Adam
    steps (seeded by the run seed and the step); 0 keeps one set. A second-order phase works
    on one fixed set (a line search needs a fixed objective), except that with
    ``rad_every`` = K > 0 it replaces the interior points every K iterations by residual-based
    adaptive sampling (RAD; Wu et al., CMAME 2023): ``rad_pool`` candidates (0: 10 x
    ``collocation``) drawn uniformly, of which ``collocation`` are kept with probability
    p proportional to |r|^``rad_k`` / mean |r|^``rad_k`` + ``rad_c``. The optimizer keeps its
    curvature information across the change (:meth:`rebase` of :mod:`pinnsketch.optim`).
    With ``rad_adam_every`` = K > 0 an Adam phase draws its fresh interior points from a RAD
    density instead of uniformly: every K steps (from step K on) a new uniform pool of
    ``rad_pool`` candidates is scored by the residual at the current weights, and each fresh
    set is ``collocation`` pool points drawn with those probabilities (Wu et al. resample by
    RAD during Adam as well).
    """

    collocation: int = 10000
    boundary: int = 200
    initial: int = 256
    method: str = "sobol"
    resample_every: int = 500
    rad_every: int = 500
    rad_pool: int = 50000
    rad_k: float = 1.0
    rad_c: float = 1.0
    rad_adam_every: int = 0

    def __post_init__(self) -> None:
        check_int("sampling.collocation", self.collocation, low=1)
        check_int("sampling.boundary", self.boundary, low=1)
        check_int("sampling.initial", self.initial, low=1)
        check_int("sampling.resample_every", self.resample_every, low=0)
        check_int("sampling.rad_every", self.rad_every, low=0)
        check_int("sampling.rad_pool", self.rad_pool, low=0)
        check_real("sampling.rad_k", self.rad_k, low=0)
        check_real("sampling.rad_c", self.rad_c, low=0)
        check_int("sampling.rad_adam_every", self.rad_adam_every, low=0)
        if self.method not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.method!r}; valid samplers: {', '.join(SAMPLERS)}")
        if (self.rad_every or self.rad_adam_every) and 0 < self.rad_pool < self.collocation:
            raise ValueError(f"sampling.rad_pool {self.rad_pool} is below the {self.collocation} "
                             "collocation points it must choose from; use a pool several times "
                             "larger (Wu et al. use 10x), or 0 for 10 x collocation")

    @property
    def rad_pool_size(self) -> int:
        """The RAD candidate pool (``rad_pool``, or 10 x ``collocation``)."""
        return self.rad_pool or 10 * self.collocation


PHASE_OPTIMIZERS = ("adam", *OPTIMIZERS)
"""Every optimizer a training phase can use: Adam, and the second-order methods of
:mod:`pinnsketch.optim` (``lbfgs``, ``bfgs``, ``ssbfgs``, ``ssbroyden``, ``lm``)."""


@dataclass(frozen=True)
class PhaseConfig:
    """One training phase: an optimizer and its number of iterations.

    >>> PhaseConfig("ssbroyden", 20000)
    PhaseConfig(optimizer='ssbroyden', steps=20000)
    """

    optimizer: str
    steps: int

    def __post_init__(self) -> None:
        if self.optimizer not in PHASE_OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: "
                             f"{', '.join(PHASE_OPTIMIZERS)}")
        check_int(f"optimizer {self.optimizer}: steps", self.steps, low=1)

    @property
    def second_order(self) -> bool:
        """A line-search or Gauss-Newton phase (everything but Adam)."""
        return self.optimizer != "adam"


DEFAULT_PHASES = (PhaseConfig("adam", 2000), PhaseConfig("ssbroyden", 6000))
"""The default schedule (``pinnsketch solve PROBLEM`` without optimizer options)."""


def parse_phases(text: str) -> tuple[PhaseConfig, ...]:
    """``"adam:5000,ssbroyden:20000"`` -> the phases, in order (``--optimizer``).

    >>> parse_phases("adam:100, bfgs:50")
    (PhaseConfig(optimizer='adam', steps=100), PhaseConfig(optimizer='bfgs', steps=50))
    """
    phases = []
    for item in (part.strip() for part in str(text).split(",")):
        name, sep, steps = item.partition(":")
        if not sep or not name.strip() or not steps.strip().isdigit():
            raise ValueError(f"--optimizer {text!r}: each phase is NAME:STEPS with STEPS a "
                             f"positive integer, e.g. adam:5000,ssbroyden:20000 (got {item!r}); "
                             f"names: {', '.join(PHASE_OPTIMIZERS)}")
        phases.append(PhaseConfig(name.strip(), int(steps)))
    return tuple(phases)


WEIGHTINGS = ("none", "gradnorm", "causal", "rba")


@dataclass(frozen=True)
class WeightingConfig:
    """Adaptive loss weighting during the Adam phases (:mod:`pinnsketch.tasks.weighting`).

    - ``gradnorm``: every ``every`` Adam steps the term weights become
      lambda_i <- alpha lambda_i + (1 - alpha) sum_j ||grad L_j|| / ||grad L_i|| (Wang, Wang &
      Perdikaris 2023), multiplying each term's own weight;
    - ``causal``: the PDE term becomes mean_i w_i L_i over ``slices`` time slices with
      w_i = exp(-eps sum_{k<i} L_k) (Wang, Sankaran & Perdikaris 2022; time-dependent
      problems only);
    - ``rba``: the PDE term becomes mean((lambda_i r_i)^2) with one weight per point,
      lambda <- gamma lambda + eta |r| / max |r| every step (Anagnostopoulos et al. 2024).

    A second-order phase keeps the term weights gradnorm reached and uses the plain mean
    squared residual: causal and RBA weights change the objective as they move, which a
    line search cannot follow.

    >>> WeightingConfig("gradnorm", every=200).every
    200
    """

    method: str = "none"
    every: int = 100
    alpha: float = 0.9
    eps: float = 1.0
    slices: int = 16
    gamma: float = 0.999
    eta: float = 0.01

    def __post_init__(self) -> None:
        if self.method not in WEIGHTINGS:
            raise ValueError(f"unknown loss weighting {self.method!r}; valid: {', '.join(WEIGHTINGS)}")
        check_int("weighting.every", self.every, low=1)
        check_real("weighting.alpha", self.alpha, low=0, high=1, high_open=True)
        check_real("weighting.eps", self.eps, low=0)
        check_int("weighting.slices", self.slices, low=1)
        check_real("weighting.gamma", self.gamma, low=0, high=1, high_open=True)
        check_real("weighting.eta", self.eta, low=0, low_open=True)


def parse_weighting(text: str) -> WeightingConfig:
    """``"gradnorm"`` or ``"causal:eps=0.5,slices=32"`` -> a :class:`WeightingConfig`
    (``--weighting``).

    >>> parse_weighting("rba:eta=0.02").eta
    0.02
    """
    name, _, rest = str(text).partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        fields = [f.name for f in dataclasses.fields(WeightingConfig) if f.name != "method"]
        if not sep or key.strip() not in fields:
            raise ValueError(f"--weighting {text!r}: options are KEY=VALUE with KEY one of "
                             f"{', '.join(fields)} (got {item!r})")
        try:
            kwargs[key.strip()] = (int if key.strip() in ("every", "slices") else float)(value)
        except ValueError:
            raise ValueError(f"--weighting {text!r}: {key.strip()}={value!r} is not a "
                             "number") from None
    return WeightingConfig(name.strip(), **kwargs)


@dataclass(frozen=True)
class OptimConfig:
    """The training schedule: a list of phases, each an optimizer and its iterations.

    ``phases`` gives the schedule in full (``--optimizer adam:5000,ssbroyden:20000``).
    Without it the schedule is :data:`DEFAULT_PHASES`, in which ``steps`` (if given) sets
    the Adam steps and ``lbfgs_steps`` (if given) replaces the second-order phase by L-BFGS
    with that many iterations (0 drops a phase). After construction ``phases`` holds the
    resolved schedule and ``steps``/``lbfgs_steps`` are None.

    Adam's learning rate decays exponentially over each Adam phase, lr * lr_decay^(i / n),
    so it ends at lr * lr_decay; ``adam_betas`` are its moment decay rates. Second-order
    phases run in ``second_order_dtype`` (and with RAD, ``SamplingConfig.rad_every``, on
    adaptively refined points, else on one fixed batch); ``lbfgs_history`` is L-BFGS's
    number of curvature pairs; a dense method (bfgs, ssbfgs, ssbroyden: a P x P float64
    matrix) whose matrix would exceed ``dense_limit_bytes`` runs L-BFGS instead and says
    so. ``weights`` maps loss-term names ("pde", a condition's name) to weights; a term not
    named keeps the weight its problem declares (``Condition.weight``, 1 for "pde");
    ``weighting`` adapts them during Adam (:class:`WeightingConfig`). ``chunk_size`` > 0
    accumulates gradients over chunks of at most that many interior points (the loss is a
    mean over points, so the gradient is exact).

    >>> OptimConfig(steps=100, lbfgs_steps=0).phases
    (PhaseConfig(optimizer='adam', steps=100),)
    """

    steps: int | None = None
    lbfgs_steps: int | None = None
    phases: tuple[PhaseConfig, ...] | None = None
    lr: float = 5e-3
    lr_decay: float = 0.5
    adam_betas: tuple[float, float] = (0.99, 0.999)
    second_order_dtype: str = "float64"
    lbfgs_history: int = 50
    dense_limit_bytes: int = DEFAULT_DENSE_LIMIT_BYTES
    weights: tuple[tuple[str, float], ...] = ()
    weighting: WeightingConfig = WeightingConfig()
    chunk_size: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.weighting, dict):
            object.__setattr__(self, "weighting", WeightingConfig(**self.weighting))
        if not isinstance(self.weighting, WeightingConfig):
            raise ValueError(f"optim.weighting must be a WeightingConfig, got {self.weighting!r}")
        if self.weighting.method in ("causal", "rba") and self.chunk_size:
            raise ValueError(f"{self.weighting.method} weights need every interior point of a "
                             "step at once; drop --chunk-size or choose --weighting gradnorm")
        object.__setattr__(self, "phases", self._schedule())
        object.__setattr__(self, "steps", None)
        object.__setattr__(self, "lbfgs_steps", None)
        check_int("optim.lbfgs_history", self.lbfgs_history, low=1)
        check_int("optim.dense_limit_bytes", self.dense_limit_bytes, low=8)
        check_int("optim.chunk_size", self.chunk_size, low=0)
        check_real("optim.lr", self.lr, low=0, low_open=True)
        if not (is_real(self.lr_decay) and 0 < self.lr_decay <= 1):
            raise ValueError(f"optim.lr_decay must be in (0, 1], got {self.lr_decay!r}")
        betas = tuple(self.adam_betas) if isinstance(self.adam_betas, (tuple, list)) else ()
        if len(betas) != 2 or not all(is_real(b) and 0 <= b < 1 for b in betas):
            raise ValueError(f"optim.adam_betas must be two numbers in [0, 1), got "
                             f"{self.adam_betas!r}; e.g. 0.9,0.999")
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in betas))
        if self.second_order_dtype not in DTYPES:
            raise ValueError(f"optim.second_order_dtype must be one of {DTYPES}, got "
                             f"{self.second_order_dtype!r}")
        object.__setattr__(self, "weights", tuple((str(k), w) for k, w in self.weights))
        for name, w in self.weights:
            if not (is_real(w) and math.isfinite(w) and w >= 0):
                raise ValueError(f"loss weight {name}={w!r} must be a finite number >= 0")

    def _schedule(self) -> tuple[PhaseConfig, ...]:
        if self.phases is not None:
            if self.steps is not None or self.lbfgs_steps is not None:
                raise ValueError("give either the phases (--optimizer) or steps / lbfgs_steps "
                                 "(--steps / --lbfgs-steps), not both")
            phases = tuple(p if isinstance(p, PhaseConfig) else PhaseConfig(**p)
                           if isinstance(p, dict) else PhaseConfig(*p) for p in self.phases)
            if not phases:
                raise ValueError("optim.phases is empty; nothing to train")
            return phases
        if self.steps is not None:
            check_int("optim.steps", self.steps, low=0)
        if self.lbfgs_steps is not None:
            check_int("optim.lbfgs_steps", self.lbfgs_steps, low=0)
        adam, second = DEFAULT_PHASES
        if self.steps is not None:
            adam = PhaseConfig("adam", self.steps) if self.steps else None
        if self.lbfgs_steps is not None:
            second = PhaseConfig("lbfgs", self.lbfgs_steps) if self.lbfgs_steps else None
        phases = tuple(p for p in (adam, second) if p is not None)
        if not phases:
            raise ValueError("optim: steps and lbfgs_steps are both 0; nothing to train")
        return phases

    @property
    def adam_steps(self) -> int:
        """Adam steps over the whole schedule."""
        return sum(p.steps for p in self.phases if not p.second_order)

    @property
    def second_order_steps(self) -> int:
        """Iterations of the second-order phases over the whole schedule."""
        return sum(p.steps for p in self.phases if p.second_order)


@dataclass(frozen=True)
class RunConfig:
    """Seed, device, float type, how often to evaluate/checkpoint, output directory.

    ``time_limit_s`` > 0 ends training (status completed, stop_reason "time limit") once
    that much wall time has passed; ``threads`` > 0 sets torch's CPU thread count;
    ``monitor`` logs per-layer gradient norms estimated from rank-``monitor_rank`` sketches,
    with the exact norms every ``monitor_every`` steps (0: every ``eval_every``).
    """

    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    eval_every: int = 500
    out: str | None = None
    overwrite: bool = False
    quiet: bool = False
    threads: int = 0
    time_limit_s: float = 0.0
    monitor: bool = False
    monitor_rank: int = 16
    monitor_every: int = 0

    def __post_init__(self) -> None:
        check_int("run.seed", self.seed, low=0)
        check_int("run.eval_every", self.eval_every, low=1)
        check_int("run.threads", self.threads, low=0)
        check_int("run.monitor_rank", self.monitor_rank, low=1)
        check_int("run.monitor_every", self.monitor_every, low=0)
        if not (isinstance(self.time_limit_s, (int, float)) and self.time_limit_s >= 0
                and math.isfinite(self.time_limit_s)):
            raise ValueError(f"run.time_limit_s must be a number >= 0 (0 = no limit), "
                             f"got {self.time_limit_s!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"run.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.out is not None and not str(self.out).strip():
            raise ValueError("run.out is empty; give a directory for the run's files (or None "
                             "to write nothing)")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"run.device must be 'cpu' or 'cuda[:N]', got {self.device!r}")


def to_dict(obj: Any) -> Any:
    """A JSON-ready dict of a (nested) config dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj



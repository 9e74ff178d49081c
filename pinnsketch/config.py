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
from pinnsketch.network import ARCHITECTURES, RWF, check_init
from pinnsketch.pde.sampling import SAMPLERS

__all__ = ["ModelConfig", "SamplingConfig", "OptimConfig", "RunConfig", "DTYPES", "to_dict"]

DTYPES = ("float32", "float64")


def _positive_int(owner: str, name: str, value: Any, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}.{name} must be an integer >= {low}, got {value!r}")


def _positive_float(owner: str, name: str, value: Any) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{owner}.{name} must be a finite number > 0, got {value!r}")


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
    depth: int = 8
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
        _positive_int("model", "width", self.width)
        _positive_int("model", "depth", self.depth)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; valid architectures: "
                             f"{', '.join(ARCHITECTURES)}")
        _positive_int("model", "fourier_features", self.fourier_features, allow_zero=True)
        _positive_float("model", "fourier_sigma", self.fourier_sigma)
        _positive_int("model", "harmonics", self.harmonics)
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
    """Collocation points: interior, boundary and initial counts, sampler, resampling period.

    ``resample_every`` = K > 0 draws a fresh interior/boundary/initial set every K Adam
    steps (seeded by the run seed and the step); 0 keeps one set. L-BFGS always uses one
    fixed set (a line search needs a fixed objective).
    """

    collocation: int = 8000
    boundary: int = 200
    initial: int = 256
    method: str = "sobol"
    resample_every: int = 1000

    def __post_init__(self) -> None:
        _positive_int("sampling", "collocation", self.collocation)
        _positive_int("sampling", "boundary", self.boundary)
        _positive_int("sampling", "initial", self.initial)
        _positive_int("sampling", "resample_every", self.resample_every, allow_zero=True)
        if self.method not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.method!r}; valid samplers: {', '.join(SAMPLERS)}")


@dataclass(frozen=True)
class OptimConfig:
    """Adam with exponential learning-rate decay, then L-BFGS with strong-Wolfe line search.

    The Adam learning rate decays as lr * lr_decay^(step / steps), so it ends at
    lr * lr_decay. ``weights`` maps loss-term names ("pde", a condition's name) to weights
    (default 1). ``chunk_size`` > 0 accumulates gradients over chunks of at most that many
    interior points (the loss is a mean over points, so the gradient is exact).
    """

    steps: int = 5000
    lr: float = 1e-3
    lr_decay: float = 0.1
    lbfgs_steps: int = 3000
    lbfgs_dtype: str = "float64"
    lbfgs_history: int = 50
    weights: tuple[tuple[str, float], ...] = ()
    chunk_size: int = 0

    def __post_init__(self) -> None:
        _positive_int("optim", "steps", self.steps, allow_zero=True)
        _positive_int("optim", "lbfgs_steps", self.lbfgs_steps, allow_zero=True)
        _positive_int("optim", "lbfgs_history", self.lbfgs_history)
        _positive_int("optim", "chunk_size", self.chunk_size, allow_zero=True)
        _positive_float("optim", "lr", self.lr)
        if not (0 < self.lr_decay <= 1):
            raise ValueError(f"optim.lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if self.lbfgs_dtype not in DTYPES:
            raise ValueError(f"optim.lbfgs_dtype must be one of {DTYPES}, got {self.lbfgs_dtype!r}")
        if self.steps + self.lbfgs_steps == 0:
            raise ValueError("optim: steps and lbfgs_steps are both 0; nothing to train")
        for name, w in self.weights:
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise ValueError(f"loss weight {name}={w!r} must be a finite number >= 0")

    def weight(self, term: str) -> float:
        return dict(self.weights).get(term, 1.0)


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
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"run.seed must be an integer >= 0, got {self.seed!r}")
        _positive_int("run", "eval_every", self.eval_every)
        _positive_int("run", "threads", self.threads, allow_zero=True)
        _positive_int("run", "monitor_rank", self.monitor_rank)
        _positive_int("run", "monitor_every", self.monitor_every, allow_zero=True)
        if not (isinstance(self.time_limit_s, (int, float)) and self.time_limit_s >= 0
                and math.isfinite(self.time_limit_s)):
            raise ValueError(f"run.time_limit_s must be a number >= 0 (0 = no limit), "
                             f"got {self.time_limit_s!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"run.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"run.device must be 'cpu' or 'cuda[:N]', got {self.device!r}")


def to_dict(obj: Any) -> Any:
    """A JSON-ready dict of a (nested) config dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj



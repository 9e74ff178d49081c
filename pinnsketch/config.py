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
from pinnsketch.checks import check_int, check_real
from pinnsketch.pde.sampling import SAMPLERS

__all__ = ["ModelConfig", "SamplingConfig", "OptimConfig", "RunConfig", "DTYPES", "to_dict"]

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class ModelConfig:
    """MLP shape: ``depth`` hidden layers of ``width`` units, activation by name."""

    width: int = 20
    depth: int = 8
    activation: str = "tanh"

    def __post_init__(self) -> None:
        check_int("model.width", self.width, low=1)
        check_int("model.depth", self.depth, low=1)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")


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
        check_int("sampling.collocation", self.collocation, low=1)
        check_int("sampling.boundary", self.boundary, low=1)
        check_int("sampling.initial", self.initial, low=1)
        check_int("sampling.resample_every", self.resample_every, low=0)
        if self.method not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.method!r}; valid samplers: {', '.join(SAMPLERS)}")


@dataclass(frozen=True)
class OptimConfig:
    """Adam with exponential learning-rate decay, then L-BFGS with strong-Wolfe line search.

    The Adam learning rate decays as lr * lr_decay^(step / steps), so it ends at
    lr * lr_decay. ``weights`` maps loss-term names ("pde", a condition's name) to weights;
    a term not named keeps the weight its problem declares (``Condition.weight``, 1 for
    "pde"). ``chunk_size`` > 0 accumulates gradients over chunks of at most that many
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
        check_int("optim.steps", self.steps, low=0)
        check_int("optim.lbfgs_steps", self.lbfgs_steps, low=0)
        check_int("optim.lbfgs_history", self.lbfgs_history, low=1)
        check_int("optim.chunk_size", self.chunk_size, low=0)
        check_real("optim.lr", self.lr, low=0, low_open=True)
        if not (0 < self.lr_decay <= 1):
            raise ValueError(f"optim.lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if self.lbfgs_dtype not in DTYPES:
            raise ValueError(f"optim.lbfgs_dtype must be one of {DTYPES}, got {self.lbfgs_dtype!r}")
        if self.steps + self.lbfgs_steps == 0:
            raise ValueError("optim: steps and lbfgs_steps are both 0; nothing to train")
        for name, w in self.weights:
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise ValueError(f"loss weight {name}={w!r} must be a finite number >= 0")


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



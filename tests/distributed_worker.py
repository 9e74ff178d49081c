"""One process of the 2-process data-parallel tests (launched by torchrun from
tests/test_distributed.py; not a test module).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_worker.py OUT

Writes into OUT, per process r:
- ``grad_r.pt``: the summed gradient and loss terms of one ``backward`` with exact storage,
  and this process's interior points;
- ``grad_periodic_r.pt``: the same for a problem with a ``Periodic`` condition, in chunks;
- ``grad_inverse_r.pt``: the same for a system with unknown parameters and observations
  (reaction_diffusion_inverse), in chunks, and this process's observation rows;
- ``writes_r.json``: how many times this process called each results writer during a
  ``solve`` into ``OUT/run``.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import torch

CASE = dict(width=12, depth=2, collocation=1001, boundary=40, initial=30, seed=7)
WRITERS = (("rundir", "RunDirectory.create"), ("api", "write_json"), ("runner", "write_json"),
           ("runner", "write_history_csv"), ("api", "write_result_h5"),
           ("runner", "save_checkpoint"), ("api", "plot_on"), ("api", "plot_history"),
           ("api", "plot_columns"), ("api", "plot_parameters"))
"""(module of pinnsketch, function as looked up there): every way a run writes a file."""


def make_task(cluster):
    """The PINN task both the worker and the single-process reference build (float64)."""
    from pinnsketch import load_problem
    from pinnsketch.config import ModelConfig, OptimConfig, SamplingConfig
    from pinnsketch.storage import StorageConfig
    from pinnsketch.tasks.pinn import PINNTask

    c = CASE
    return PINNTask(load_problem("burgers"), ModelConfig(width=c["width"], depth=c["depth"]),
                    SamplingConfig(collocation=c["collocation"], boundary=c["boundary"],
                                   initial=c["initial"]),
                    OptimConfig(), StorageConfig(policy="exact"), seed=c["seed"],
                    dtype=torch.float64, cluster=cluster)


def make_weighted_task(cluster, method: str):
    """make_task's problem with adaptive loss weights (causal or rba), float64."""
    from pinnsketch import load_problem
    from pinnsketch.config import ModelConfig, OptimConfig, SamplingConfig, WeightingConfig
    from pinnsketch.storage import StorageConfig
    from pinnsketch.tasks.pinn import PINNTask

    c = CASE
    return PINNTask(load_problem("burgers"), ModelConfig(width=c["width"], depth=c["depth"]),
                    SamplingConfig(collocation=c["collocation"], boundary=c["boundary"],
                                   initial=c["initial"]),
                    OptimConfig(weighting=WeightingConfig(method, slices=5)),
                    StorageConfig(policy="exact"), seed=c["seed"], dtype=torch.float64,
                    cluster=cluster)


def weighted_steps(task) -> list[dict]:
    """Two Adam-style evaluations with a committed step between (rba weights move)."""
    batch = task.sample(0)
    out = []
    for step in range(2):
        task.before_step(step)
        task.model.zero_grad()
        terms = task.backward(batch)
        task.after_step(step, terms)
        out.append({"terms": terms, "grad": flat_grad(task.model)})
    return out


def make_periodic_task(cluster, chunk_size: int = 0):
    """A transport problem with a Periodic condition (paired points), float64, exact storage."""
    import math
    from dataclasses import dataclass
    from typing import ClassVar

    from pinnsketch import Initial, Periodic, Problem, interval, space_time
    from pinnsketch.config import ModelConfig, OptimConfig, SamplingConfig
    from pinnsketch.storage import StorageConfig
    from pinnsketch.tasks.pinn import PINNTask

    @dataclass(frozen=True)
    class Transport(Problem):
        """u_t + u_x = 0, periodic in x on [0, 1), u(x, 0) = sin(2 pi x)."""

        name: ClassVar[str] = "transport"

        @property
        def domain(self):
            return space_time(interval(x=(0.0, 1.0)), t=(0.0, 0.5))

        def residual(self, d):
            return d.u_t + d.u_x

        def conditions(self):
            return (Periodic(coord="x"), Initial(lambda d: torch.sin(2 * math.pi * d.x)))

    return PINNTask(Transport(), ModelConfig(width=8, depth=2),
                    SamplingConfig(collocation=91, boundary=40, initial=20),
                    OptimConfig(steps=1, lbfgs_steps=0, chunk_size=chunk_size),
                    StorageConfig(policy="exact"), seed=5, dtype=torch.float64, cluster=cluster)


def solve_settings(out: Path) -> dict:
    """The run both the 2-process worker and the 1-process reference make: 4 Adam steps (the
    last 2 on points drawn by RAD), then 3 SSBroyden iterations (dense inverse Hessian) with
    RAD refinement every 2 (float64)."""
    from pinnsketch.config import ModelConfig, OptimConfig, PhaseConfig, RunConfig, SamplingConfig
    from pinnsketch.storage import StorageConfig

    c = CASE
    return dict(model=ModelConfig(width=c["width"], depth=c["depth"]),
                sampling=SamplingConfig(collocation=c["collocation"], boundary=c["boundary"],
                                        initial=c["initial"], rad_every=2, rad_pool=3000,
                                        rad_adam_every=2),
                optim=OptimConfig(phases=(PhaseConfig("adam", 4), PhaseConfig("ssbroyden", 3))),
                storage=StorageConfig(policy="exact"),
                run=RunConfig(seed=c["seed"], dtype="float64", eval_every=2, quiet=True,
                              out=str(out)))


def make_inverse_task(cluster, chunk_size: int = 0):
    """reaction_diffusion_inverse (two fields, two equations, two unknowns, 101 observations
    of both fields), float64, exact storage."""
    from pinnsketch import load_problem
    from pinnsketch.config import ModelConfig, OptimConfig, SamplingConfig
    from pinnsketch.storage import StorageConfig
    from pinnsketch.tasks.pinn import PINNTask

    return PINNTask(load_problem("reaction_diffusion_inverse", n_obs=101),
                    ModelConfig(width=8, depth=2),
                    SamplingConfig(collocation=91, boundary=20, initial=20),
                    OptimConfig(steps=1, lbfgs_steps=0, chunk_size=chunk_size),
                    StorageConfig(policy="exact"), seed=4, dtype=torch.float64, cluster=cluster)


def flat_grad(model) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def main(out: Path) -> None:
    import pinnsketch.api as api
    from pinnsketch import distributed

    torch.set_num_threads(1)
    cluster, _ = distributed.init_from_env("cpu", timeout_s=60)
    assert cluster.world_size == 2, cluster
    task = make_task(cluster)
    batch = task.sample(0)
    terms = task.backward(batch)
    torch.save({"grad": flat_grad(task.model), "terms": terms, "pde_points": batch.sets["pde"][0]},
               out / f"grad_{cluster.rank}.pt")
    for method in ("causal", "rba"):
        torch.save(weighted_steps(make_weighted_task(cluster, method)),
                   out / f"weighted_{method}_{cluster.rank}.pt")
    periodic = make_periodic_task(cluster, chunk_size=17)
    terms = periodic.backward(periodic.sample(0))
    torch.save({"grad": flat_grad(periodic.model), "terms": terms},
               out / f"grad_periodic_{cluster.rank}.pt")
    inverse = make_inverse_task(cluster, chunk_size=17)
    batch = inverse.sample(0)
    terms = inverse.backward(batch)
    torch.save({"grad": flat_grad(inverse.model), "terms": terms, "data": batch.sets["data"]},
               out / f"grad_inverse_{cluster.rank}.pt")

    calls = {f"{module}.{name}": 0 for module, name in WRITERS}
    for module, name in WRITERS:
        owner = importlib.import_module(f"pinnsketch.{module}")
        *path, attr = name.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, attr)

        def counted(*args, _name=f"{module}.{name}", _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        setattr(owner, attr, staticmethod(counted) if path else counted)
    api.solve(api.load_problem("burgers"), **solve_settings(out / "run"))
    (out / f"writes_{cluster.rank}.json").write_text(json.dumps(calls))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""solve(): the one entry point that the CLI, notebooks and benchmarks share.

    >>> from pinnsketch import solve, OptimConfig, RunConfig, load_problem
    >>> result = solve(load_problem("heat"), optim=OptimConfig(steps=5, lbfgs_steps=0),
    ...                run=RunConfig(quiet=True))
    >>> sorted(k for k in result.summary if k.startswith("l2"))
    ['l2_relative_error']
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch

from pinnsketch.config import (
    ModelConfig,
    OptimConfig,
    PhaseConfig,
    RunConfig,
    SamplingConfig,
    to_dict,
)
from pinnsketch.control import (
    RankController,
    compressed_held_bytes,
    exact_points_within,
    format_bytes,
    largest_fitting,
    parse_bytes,
    plan_budget,
    sketch_held_bytes,
)
from pinnsketch.distributed import Cluster, current
from pinnsketch.memory import cuda_peak_bytes, peak_rss_bytes
from pinnsketch.network import NetworkBase, build_network
from pinnsketch.pde.derivatives import required_derivatives
from pinnsketch.pde.observations import Observations, load_observations
from pinnsketch.pde.problem import Problem
from pinnsketch.pde.registry import (
    file_digest,
    load_problem_source,
    make_problem,
    problem_source,
    resolve_problem,
)
from pinnsketch.pde.unknowns import Unknown, with_guesses
from pinnsketch.plots import plot_columns, plot_history, plot_on, plot_parameters
from pinnsketch.results import (
    RunResult,
    load_checkpoint,
    read_json,
    write_json,
    write_result_h5,
)
from pinnsketch.rundir import RunDirectory
from pinnsketch.runner import run_task
from pinnsketch.storage import JetPlan, StorageConfig
from pinnsketch.tasks.pinn import PINNTask
from pinnsketch.train import TrainState

__all__ = ["solve", "resume", "load_problem", "SolveResult"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def load_problem(name_or_path: str, **params: Any) -> Problem:
    """A registered problem by name (``"burgers"``) or from a ``.py`` file, with parameters.

    >>> load_problem("burgers", nu=0.005).nu
    0.005
    """
    return make_problem(resolve_problem(name_or_path), params)


SolveResult = RunResult  # trained task, history, summary, run directory


def _config_dict(problem: Problem, source: dict[str, str] | None,
                 model: ModelConfig | NetworkBase,
                 sampling: SamplingConfig, optim: OptimConfig, storage: StorageConfig,
                 run: RunConfig) -> dict[str, Any]:
    params = {k: str(v) if isinstance(v, Unknown) else v  # "unknown:0.05:positive"
              for k, v in problem.parameters().items()}
    return {
        "problem": {"name": problem.name, "source": source, "params": params},
        "model": _model_dict(model), "sampling": to_dict(sampling), "optim": to_dict(optim),
        "storage": to_dict(storage), "run": to_dict(run),
    }


def _model_dict(model: ModelConfig | NetworkBase) -> dict[str, Any]:
    """config.json's ``model``: the ModelConfig, or for a network object what identifies it
    (``network_object``: resume needs the object again, ``model=``)."""
    if isinstance(model, NetworkBase):
        return {"network_object": type(model).__name__, "fields": list(model.fields),
                "stored_widths": list(model.stored_widths),
                "parameters": sum(p.numel() for p in model.parameters())}
    return to_dict(model)


def solve(problem: Problem, *, model: ModelConfig | NetworkBase | None = None,
          sampling: SamplingConfig | None = None, optim: OptimConfig | None = None,
          storage: StorageConfig | None = None, run: RunConfig | None = None,
          controller: RankController | None = None, memory_budget: int | str | None = None,
          cluster: Cluster | None = None, data: Observations | str | Path | None = None,
          data_noise: dict[str, float] | None = None) -> SolveResult:
    """Train a PINN on ``problem`` and (with ``run.out``) write the run directory.

    Everything is validated before the run directory is touched: the configurations, the
    problem's residual and conditions (evaluated once on a few points: shapes, finiteness)
    and its reference solution.

    Args:
        problem: a Problem instance. How ``resume`` can rebuild it is recorded in
            config.json: a built-in by name, a class from a problem file by the file's
            absolute path and SHA-256 (:func:`~pinnsketch.pde.registry.problem_source`);
            any other class must be passed to ``resume`` again.
        model: a :class:`~pinnsketch.config.ModelConfig`, or a network built from the parts
            of :mod:`pinnsketch.network` (trained in place; config.json records its
            structure, and ``resume`` then needs the same object again, ``model=``).
        sampling, optim, storage, run: configurations (defaults when None).
        controller: the rank policy when ``storage.rank == "auto"`` (default
            ``RankController()``).
        memory_budget: bytes held for backward allowed (an int or "2GB"); chooses the largest
            collocation batch and ranks that fit (DESIGN.md section 4), or refuses.
        cluster: data-parallel run (:mod:`pinnsketch.distributed`); default: the initialised
            process group if there is one, else a single process. ``sampling.collocation``
            is the total over processes, ``memory_budget`` is per process; only process 0
            writes files.
        data: observations of the fields (a data term per observed field,
            :mod:`pinnsketch.pde.observations`): an
            :class:`~pinnsketch.pde.observations.Observations`, or a CSV, NPZ or HDF5 file
            (config.json records its path and SHA-256; resume reloads it); they replace the
            problem's own ``observations(seed)``.
        data_noise: field -> noise level sigma of the data file's fields (relative weights).

    Returns:
        SolveResult with the trained model, history and summary (``out`` is None on the
        processes that do not write).

    Raises:
        ValueError: a bad configuration, problem or output directory, before any training.
        RunDirectoryInUse: another process is writing ``run.out``.
        TrainingDiverged: the loss became non-finite (files are written, status "diverged").
        KeyboardInterrupt: (``RunInterrupted`` for SIGINT/SIGTERM) after writing a consistent
            run directory (status "interrupted").
        OutOfMemory: memory ran out (files are written, status "failed").
    """
    model = model if model is not None else ModelConfig()
    sampling = sampling or SamplingConfig()
    optim, storage, run = optim or OptimConfig(), storage or StorageConfig(), run or RunConfig()
    cluster = cluster or current()
    if controller is not None and storage.rank != "auto":
        raise ValueError("a rank controller needs StorageConfig(policy='sketch', rank='auto')")
    if storage.rank == "auto" and controller is None:
        controller = RankController()
    budget_message = None
    if memory_budget is not None:
        sampling, controller, budget_message = plan_memory(
            problem, model, sampling, storage, run, controller, parse_bytes(memory_budget),
            world_size=cluster.world_size)
    observations, data_record = _observations(problem, data, data_noise)
    config = _config_dict(problem, problem_source(problem), model, sampling, optim, storage, run)
    if data_record is not None:
        config["data"] = data_record
    if budget_message:
        config["memory_budget"] = {"bytes": parse_bytes(memory_budget), "plan": budget_message}
    if controller is not None:
        config["controller"] = to_dict(controller)
    task = _build_task(problem, config, model, sampling, optim, storage, run, controller, cluster,
                       observations)
    if data_record is None and task.observations is not None:
        config["data"] = {"source": "problem", "seed": run.seed}
    _note(config, task, run, cluster)
    if budget_message and not run.quiet and cluster.is_main:
        print(budget_message)
    out = _open_run_dir(cluster, lambda: _new_run_dir(run, config))
    return _run(task, config, optim, run, out, TrainState(), cluster)


def _open_run_dir(cluster: Cluster, make) -> RunDirectory | None:
    """``make()`` on process 0 (the one that writes); its errors stop every process."""
    box: list[RunDirectory | None] = [None]

    def on_main() -> bool:
        box[0] = make()
        return True

    cluster.from_main(on_main)
    return box[0]


def _new_run_dir(run: RunConfig, config: dict[str, Any]) -> RunDirectory | None:
    if run.out is None:
        return None
    out = RunDirectory.create(run.out, run.overwrite)
    try:
        write_json(out.path / "config.json", config)
    except BaseException:
        out.close()
        raise
    if out.foreign:
        print(f"pinnsketch: --overwrite kept {len(out.foreign)} file(s) in {str(out.path)!r} "
              f"that no run writes: {', '.join(out.foreign[:5])}"
              f"{' ...' if len(out.foreign) > 5 else ''}", file=sys.stderr)
    return out


def _note(config: dict[str, Any], task: PINNTask, run: RunConfig, cluster: Cluster) -> None:
    """Record (config.json ``notes``) and print what the network changes about the loss."""
    if task.notes:
        config["notes"] = list(task.notes)
        if not run.quiet and cluster.is_main:
            print("\n".join(task.notes))


def _observations(problem: Problem, data: Observations | str | Path | None,
                  noise: dict[str, float] | None) -> tuple[Observations | None, dict | None]:
    """The observations ``data`` stands for, and how config.json records them (None: the
    problem's own, if any)."""
    if data is None:
        if noise:
            raise ValueError("data_noise (--data-noise) needs a data file (--data FILE)")
        return None, None
    if isinstance(data, Observations):
        if noise:
            raise ValueError("data_noise applies to a data file; an Observations object carries "
                             "its own noise levels")
        return data, {"source": "object", "points": len(data), "fields": list(data.fields)}
    path = Path(data).resolve()
    try:
        obs = load_observations(path, problem.domain, problem.fields, noise)
    except ValueError as exc:
        raise ValueError(f"{problem.name}: {exc}") from None
    return obs, {"file": str(path), "sha256": file_digest(path), "noise": dict(noise or {})}


def _observations_from(out: Path, config: dict[str, Any], data: Observations | None,
                       problem: Problem) -> Observations | None:
    """The observations of a run being resumed, from config.json's ``data`` record."""
    record = config.get("data")
    if record is None or record.get("source") == "problem":
        if data is not None:
            raise ValueError(f"{str(out)!r} was solved without a data file; drop data=")
        return None
    if record.get("source") == "object":
        if data is None:
            raise ValueError(f"{str(out)!r} was solved with an Observations object passed to "
                             "solve(); pass the same observations to resume(..., data=obs)")
        return data
    if data is not None:
        raise ValueError(f"{str(out)!r} was solved with the data file {record['file']!r}, which "
                         "resume reloads; drop data=")
    path = Path(record["file"])
    if not path.is_file():
        raise FileNotFoundError(f"the run's data file {str(path)!r} no longer exists; restore it")
    if file_digest(path) != record["sha256"]:
        raise ValueError(f"data file {str(path)!r} changed since the run started (its SHA-256 "
                         "differs); resuming would fit other data. Restore the file")
    return load_observations(path, problem.domain, problem.fields, record.get("noise") or None)


def _build_task(problem, config, model, sampling, optim, storage, run,
                controller=None, cluster: Cluster | None = None,
                observations: Observations | None = None) -> PINNTask:
    cluster = cluster or current()
    if cluster.active and any(p.optimizer == "lm" for p in optim.phases):
        raise ValueError("optimizer 'lm' (Levenberg-Marquardt) runs in one process: its "
                         "Jacobian rows are not summed over processes; use ssbroyden, ssbfgs, "
                         "bfgs or lbfgs under torchrun")
    if run.threads:
        torch.set_num_threads(run.threads)
    if run.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {run.device}: CUDA is not available on this machine; use cpu")
    task = PINNTask(problem, model, sampling, optim, storage, seed=run.seed, device=run.device,
                    dtype=_DTYPES[run.dtype], controller=controller, cluster=cluster,
                    observations=observations)
    cluster.broadcast_parameters(task.model)  # identical by seeding; made certain
    return task


def plan_memory(problem: Problem, model: ModelConfig | NetworkBase, sampling: SamplingConfig,
                storage: StorageConfig, run: RunConfig, controller: RankController | None,
                budget: int, world_size: int = 1) -> tuple[SamplingConfig, RankController | None, str]:
    """Fit the collocation batch (and sketch ranks) to a held-bytes budget.

    In a data-parallel run of ``world_size`` processes the budget holds for each process,
    which keeps ceil(N / world_size) of the N collocation points.

    Uses the held-bytes formulas of :mod:`pinnsketch.control.budget` for the interior
    points (the few boundary and initial points are not counted). ``exact``: the largest
    batch <= the requested one that fits. ``sketch``: with a fixed rank, the largest batch
    at that rank; with ``auto``, :func:`~pinnsketch.control.plan_budget` (largest batch, then
    largest ranks), the ranks becoming the controller's caps.

    Raises:
        ValueError: ``autograd`` storage (its held bytes have no closed form; measure it),
            or a budget in which not even one point fits.
    """
    domain = problem.domain
    keys = required_derivatives([with_guesses(problem).residual], domain, problem.fields)
    J = JetPlan.from_keys(keys, domain.dim).num_components
    if isinstance(model, NetworkBase):
        widths = model.stored_widths
    else:  # the stored widths of the network the run will build (weights drawn and dropped)
        widths = build_network(model, domain, problem.fields,
                               generator=torch.Generator().manual_seed(0)).stored_widths
    itemsize = 8 if run.dtype == "float64" else 4
    total = sampling.collocation
    n = -(-total // world_size)  # the largest share of one process
    per = " per process" if world_size > 1 else ""
    if storage.policy == "autograd":
        raise ValueError("--memory-budget needs --storage exact, sketch, checkpoint, quant8 or "
                         "projection: the held bytes of nested autograd have no closed form")
    if storage.policy == "checkpoint":
        fits = budget // (itemsize * domain.dim)
        message = (f"memory budget {format_bytes(budget)}{per}: checkpoint storage holds only "
                   "the points")
    elif storage.policy == "exact":
        fits = exact_points_within(budget, widths, J, domain.dim, itemsize)
        message = f"memory budget {format_bytes(budget)}{per}: exact storage"
    elif storage.policy in ("quant8", "projection"):
        fits = largest_fitting(0, n, lambda x: compressed_held_bytes(
            storage.policy, x, widths, J, domain.dim, itemsize, storage.rank) <= budget)
        message = f"memory budget {format_bytes(budget)}{per}: {storage.policy} storage"
    elif storage.rank == "auto":
        plan = plan_budget(budget, widths, J, domain.dim, itemsize, storage.method, n,
                           controller.min_rank, exact_value=storage.exact_value)
        controller = dataclasses.replace(controller, budget_ranks=plan.ranks)
        points = min(total, plan.points * world_size)
        message = plan.message + (f" (per process; {points} points over {world_size} "
                                  "processes)" if world_size > 1 else "")
        return dataclasses.replace(sampling, collocation=points), controller, message
    else:
        ranks = storage.rank if isinstance(storage.rank, tuple) else (storage.rank,) * len(widths)
        fits = largest_fitting(0, n, lambda x: sketch_held_bytes(
            x, widths, ranks, J, domain.dim, itemsize, storage.method, storage.exact_value)
            <= budget)
        message = f"memory budget {format_bytes(budget)}{per}: sketch storage at ranks {ranks}"
    if fits < 1:
        raise ValueError(f"memory budget {format_bytes(budget)} is too small for even one "
                         f"collocation point with {storage.policy} storage on a network "
                         f"with stored widths {widths}")
    points = min(total, fits * world_size)
    message += f", {points} collocation points" + (
        f" ({-(-points // world_size)} per process)" if world_size > 1 else "") + (
        f" (reduced from the requested {total})" if points < total else "")
    return dataclasses.replace(sampling, collocation=points), controller, message


def resume(out_dir: str | Path, *, steps: int | None = None, lbfgs_steps: int | None = None,
           quiet: bool | None = None, time_limit_s: float | None = None,
           problem: Problem | None = None, cluster: Cluster | None = None,
           device: str | None = None, threads: int | None = None,
           allow_changed_problem: bool = False, model: NetworkBase | None = None,
           data: Observations | None = None) -> SolveResult:
    """Continue the run in ``out_dir`` from its checkpoint (optionally with more steps).

    Only what may change on a continued run can be given: the step counts (never below
    what was done), the time limit, quiet, the device and the thread count. The wall time
    and a time limit count over the whole run, resumed parts included. The Adam
    learning-rate schedule continues with the decay rate of the original run. The run
    directory is locked first and nothing in it changes until everything has been read and
    checked. The checkpoint is read as data; a problem file named by config.json is code
    and runs again (refused if its bytes changed, unless ``allow_changed_problem``).

    A run solved with a network object (``solve(..., model=net)``) is resumed with the
    same kind of network passed again as ``model`` (its weights come from the checkpoint).
    Observations: a data file is reloaded (refused if its bytes changed); the problem's own
    are generated again; an Observations object must be passed again as ``data``. Unknown
    parameters continue from the checkpoint.

    Raises:
        FileNotFoundError: no run, config.json or checkpoint.pt in ``out_dir``.
        ValueError: a damaged config.json or checkpoint, a mismatched checkpoint, an
            unloadable or changed problem, fewer steps than were done, a used-up time limit,
            a run of a network object resumed without ``model`` (or with another network).
        RunDirectoryInUse: another process is writing the run.
    """
    out = Path(out_dir)
    cluster = cluster or current()
    rd = _open_run_dir(cluster, lambda: RunDirectory.open(out))
    try:
        config = cluster.from_main(lambda: read_json(out / "config.json"))
        problem, model, sampling, optim, storage, run, controller = _configs_from(
            out, config, problem, allow_changed_problem, model)
        run = dataclasses.replace(run, **{k: v for k, v in (
            ("quiet", quiet), ("time_limit_s", time_limit_s), ("device", device),
            ("threads", threads)) if v is not None})
        observations = _observations_from(out, config, data, problem)
        payload = cluster.from_main(lambda: load_checkpoint(out / "checkpoint.pt", config))
        state = TrainState.from_dict(payload["train_state"])
        optim = _extended(optim, state, steps, lbfgs_steps)
        _check_time_left(state, run)
        new_config = _config_dict(problem, config["problem"].get("source"), model, sampling,
                                  optim, storage, run)
        for key in ("memory_budget", "controller", "data"):
            if key in config:
                new_config[key] = config[key]
        task = _build_task(problem, new_config, model, sampling, optim, storage, run,
                           controller, cluster, observations)
        _note(new_config, task, run, cluster)
        if state.task_state:
            task.restore_checkpoint_state(state.task_state)
        state.phase = min(state.phase, next(
            (i for i, p in enumerate(optim.phases) if state.phase_steps[i] < p.steps),
            len(optim.phases)))
        state.stop_reason = None
        dtype = next(iter(payload["model"].values())).dtype
        task.set_dtype(dtype)
        task.model.load_state_dict(payload["model"])
        if run.time_limit_s and not run.quiet and cluster.is_main:
            print(f"time limit {run.time_limit_s:g} s over the whole run: {state.wall_time:.0f} s "
                  f"used, {run.time_limit_s - state.wall_time:.0f} s left")
        if rd is not None:  # everything is checked: the run is open again
            (out / "summary.json").unlink(missing_ok=True)
            write_json(out / "config.json", new_config)
    except BaseException:
        if rd is not None:
            rd.close()
        raise
    return _run(task, new_config, optim, run, rd, state, cluster)


def _configs_from(out: Path, config: dict[str, Any], problem: Problem | None,
                  allow_changed_problem: bool, network: NetworkBase | None = None):
    """(problem, model, sampling, optim, storage, run, controller) of a run's config.json;
    the model is ``network`` for a run solved with a network object (checked against the
    structure config.json records)."""
    try:
        if problem is None:
            source = config["problem"].get("source")
            if not source:
                raise ValueError(f"{str(out)!r} was solved from a problem class defined outside "
                                 "a problem file; resume it from Python with "
                                 "resume(..., problem=...)")
            problem = make_problem(load_problem_source(source, allow_changed_problem),
                                   config["problem"]["params"])
        model = _model_from(out, config["model"], network)
        sampling = SamplingConfig(**config["sampling"])
        optim = OptimConfig(**dict(config["optim"], weights=tuple(
            tuple(w) for w in config["optim"]["weights"])))
        storage_d = dict(config["storage"])
        if isinstance(storage_d.get("rank"), list):
            storage_d["rank"] = tuple(storage_d["rank"])
        storage = StorageConfig(**storage_d)
        controller = None
        if "controller" in config:
            controller = RankController(**{k: tuple(v) if isinstance(v, list) else v
                                           for k, v in config["controller"].items()})
        run = RunConfig(**config["run"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{str(out / 'config.json')!r} is damaged or written by another "
                         f"version of pinnsketch ({type(exc).__name__}: {exc})") from None
    return problem, model, sampling, optim, storage, run, controller


def _model_from(out: Path, saved: dict[str, Any], network: NetworkBase | None
                ) -> ModelConfig | NetworkBase:
    if "network_object" in saved:
        if network is None:
            raise ValueError(
                f"{str(out)!r} was solved with a {saved['network_object']} object passed to "
                "solve(); its structure cannot be rebuilt from config.json: pass the same kind "
                "of network to resume(..., model=net) (the weights come from the checkpoint)")
        if _model_dict(network) != saved:
            raise ValueError(f"the network passed to resume ({_model_dict(network)}) is not the "
                             f"one {str(out)!r} was solved with ({saved})")
        return network
    if network is not None:
        raise ValueError(f"{str(out)!r} was solved from a ModelConfig; resume rebuilds its "
                         "network: drop model=")
    return ModelConfig(**saved)


def _extended(optim: OptimConfig, state: TrainState, steps: int | None,
              lbfgs_steps: int | None) -> OptimConfig:
    """The schedule with more iterations: ``steps`` is the new total of Adam steps (the last
    Adam phase grows), ``lbfgs_steps`` the new total of second-order iterations (the last
    second-order phase grows). A phase can grow only while no later phase has begun, and
    never below what it has done.

    Raises:
        ValueError: naming the flag, the steps done, and what would work.
    """
    phases = list(optim.phases)
    done = list(state.phase_steps) + [0] * (len(phases) - len(state.phase_steps))
    for target, second, flag in ((steps, False, "--steps"), (lbfgs_steps, True, "--lbfgs-steps")):
        if target is None:
            continue
        kind = "second-order iterations" if second else "Adam steps"
        ours = [i for i, p in enumerate(phases) if p.second_order == second]
        have = sum(done[i] for i in ours)
        if target < have:
            raise ValueError(f"{flag} {target} is below the {have} {kind} this run has done; "
                             f"give at least that many (or omit {flag})")
        planned = sum(phases[i].steps for i in ours)
        if target == planned:
            continue
        if not ours:
            raise ValueError(f"{flag} {target}: this run has no phase of {kind} to extend (its "
                             f"phases: {', '.join(f'{p.optimizer}:{p.steps}' for p in phases)})")
        last = ours[-1]
        if any(done[j] > 0 for j in range(last + 1, len(phases))):
            raise ValueError(f"{flag} {target}: the {phases[last].optimizer} phase is over and a "
                             "later phase has begun; only the last phase of a run can grow")
        phases[last] = PhaseConfig(phases[last].optimizer, target - (planned - phases[last].steps))
    return dataclasses.replace(optim, phases=tuple(phases))


def _check_time_left(state: TrainState, run: RunConfig) -> None:
    """Refuse a continuation that would stop at once on its time limit."""
    if run.time_limit_s and state.wall_time >= run.time_limit_s:
        raise ValueError(f"this run has used its time limit ({state.wall_time:.0f} s of "
                         f"{run.time_limit_s:g} s; the limit counts the whole run): give "
                         "--time-limit SECONDS above that to continue, or --time-limit 0 for "
                         "none")


def _run(task: PINNTask, config: dict[str, Any], optim: OptimConfig, run: RunConfig,
         out: RunDirectory | None, state: TrainState, cluster: Cluster) -> SolveResult:
    state, summary = run_task(task, optim, run, state, config, out,
                              lambda st, path: _report(task, config, st, path), cluster)
    return SolveResult(task, state.history, summary, out.path if out is not None else None)


def _mean(values: list) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _held(history: list[dict], phase: str | None) -> list:
    """The held bytes per point of the history rows of ``phase`` (None: every row)."""
    return [row["held_bytes_per_point"] for row in history
            if row.get("held_bytes_per_point") is not None
            and (phase is None or row.get("phase") == phase)]


def _unknowns_summary(task: PINNTask) -> dict[str, dict[str, Any]]:
    """Per unknown parameter: its initial guess, learnt value, and (where the problem knows
    it) the true value and the learnt value's relative error."""
    truths = task.problem.true_values()
    out = {}
    for name, value in task.unknown_values().items():
        row: dict[str, Any] = {"initial": task.unknowns[name].guess, "value": value,
                               "positive": task.unknowns[name].positive}
        if name in truths:
            true = float(truths[name])
            row.update(true=true, relative_error=abs(value - true) / abs(true) if true else None)
        out[name] = row
    return out


def _report(task: PINNTask, config: dict[str, Any], state: TrainState, out: Path | None
            ) -> dict[str, Any]:
    """The summary of a PINN run and (with ``out``) its HDF5 results and plots.

    Without a reference solution there is no L2 error: the summary and the final message
    report the loss terms of the last step instead, and only the fields that exist are
    plotted.
    """
    metrics = task.evaluate()
    storage = config["storage"]
    phases = OptimConfig(**config["optim"]).phases
    last = next((row for row in reversed(state.history) if row.get("loss") is not None), {})
    summary: dict[str, Any] = {
        "problem": config["problem"]["name"],
        "status": state.status,
        "stop_reason": state.stop_reason,
        "steps": state.steps_of(phases, second_order=False),
        "lbfgs_steps": state.steps_of(phases, second_order=True),
        "phases": [{"optimizer": p.optimizer, "steps": p.steps, "done": n, "ended": end}
                   for p, n, end in zip(phases, state.phase_steps, state.phase_ends,
                                        strict=False)],
        "wall_time_s": state.wall_time,
        "l2_relative_error": metrics.get("l2_relative_error"),
        **{k: v for k, v in metrics.items() if k.startswith("l2_relative_error_")},
        "final_loss": last.get("loss"),
        "final_loss_terms": {name: last.get(name) for name in task.term_names},
        "peak_rss_bytes": peak_rss_bytes(),
        "cuda_peak_bytes": cuda_peak_bytes(task.device),
        "seed": config["run"]["seed"],
        "storage": storage["policy"],
        "sketch_rank": storage.get("rank"),
        "sketch_mode": storage.get("method") if storage["policy"] == "sketch" else None,
        "held_bytes": task.held_bytes,
        "held_bytes_per_point": task.held_bytes_per_point,
        # over Adam steps (the phase whose storage a run chooses); L-BFGS on its own: it
        # logs one row per 50 iterations and `auto` runs it at exact storage
        "mean_held_bytes_per_point": _mean(_held(state.history, "adam")
                                           or _held(state.history, None)),
        "lbfgs_held_bytes_per_point": _mean(_held(state.history, "lbfgs")),
        "final_ranks": task.sketch_ranks,
        "rank_changes": list(task.rank_log),
        "log": list(state.log),
        "collocation": config["sampling"]["collocation"],
        "width": config["model"].get("width"),
        "depth": config["model"].get("depth"),
        "arch": config["model"].get("arch", config["model"].get("network_object")),
        "fields": list(task.fields),
        "conditions_in_loss": [c.label for c in task.conditions],
        "dtype": config["run"]["dtype"],
        "device": str(task.device),
        "world_size": task.cluster.world_size,
        "parameters": config["problem"]["params"],
    }
    if task.unknowns:
        summary["unknowns"] = _unknowns_summary(task)
    if task.observations is not None:
        summary["data"] = {"points": len(task.observations), "source": task.observations.source,
                           "fields": list(task.observations.fields),
                           "noise": dict(task.observations.noise),
                           "rms_misfit": {f: (None if last.get(f"data:{f}") is None
                                              else last[f"data:{f}"] ** 0.5)
                                          for f in task.observations.fields}}
    if task.reference_note:
        summary["reference_note"] = task.reference_note
    if out is None:
        return summary
    u = task.predict(task.eval_points).numpy()
    ref = task.reference.numpy() if task.reference is not None else None
    write_result_h5(out / "result.h5", evaluation=task.grid, fields=task.fields, solution=u,
                    reference=ref, history=state.history, config=config, summary=summary,
                    model_state=task.model.state_dict())
    for i, f in enumerate(task.fields):  # one set of plots per field (no suffix for one field)
        uf, rf = (u, ref) if u.ndim == 1 else (u[:, i], None if ref is None else ref[:, i])
        sfx, what = ("", summary["problem"]) if u.ndim == 1 else (f"_{f}", f"{summary['problem']}, {f}")
        plot_on(out / f"solution{sfx}.png", task.grid, uf, f"PINN solution ({what})")
        if rf is not None:
            err = summary.get(f"l2_relative_error_{f}", summary["l2_relative_error"])
            plot_on(out / f"reference{sfx}.png", task.grid, rf, f"reference ({what})")
            plot_on(out / f"error{sfx}.png", task.grid, abs(uf - rf),
                    f"|error| ({what}), L2 rel = {err:.2e}", cmap="viridis")
    if state.history:
        plot_history(out / "history.png", state.history, task.term_names)
        plot_columns(out / "ranks.png", state.history, "rank_", "sketch rank per hidden layer")
        plot_columns(out / "monitor.png", state.history, "gnorm_",
                     "gradient norm per layer: sketch estimate (lines), exact (dots)", logy=True)
        plot_parameters(out / "parameters.png", state.history, task.problem.true_values())
    return summary

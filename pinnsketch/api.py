"""solve(): the one entry point that the CLI, notebooks and benchmarks share.

    >>> from pinnsketch import solve, OptimConfig, RunConfig, load_problem
    >>> result = solve(load_problem("heat"), optim=OptimConfig(steps=5, lbfgs_steps=0),
    ...                run=RunConfig(quiet=True))
    >>> sorted(k for k in result.summary if k.startswith("l2"))
    ['l2_relative_error']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from pinnsketch.config import ModelConfig, OptimConfig, RunConfig, SamplingConfig, to_dict
from pinnsketch.control import (
    RankController,
    compressed_held_bytes,
    exact_points_within,
    format_bytes,
    parse_bytes,
    plan_budget,
    sketch_held_bytes,
)
from pinnsketch.distributed import Cluster, DistributedRunError, current
from pinnsketch.memory import cuda_peak_bytes, peak_rss_bytes
from pinnsketch.network import NetworkBase, build_network
from pinnsketch.pde.derivatives import required_derivatives
from pinnsketch.pde.problem import Problem
from pinnsketch.pde.registry import builtin_problems, make_problem, resolve_problem
from pinnsketch.plots import plot_columns, plot_field, plot_history
from pinnsketch.results import (
    RunResult,
    load_checkpoint,
    prepare_out_dir,
    read_json,
    save_checkpoint,
    write_history_csv,
    write_json,
    write_result_h5,
    write_run_h5,
)
from pinnsketch.storage import JetPlan, StorageConfig
from pinnsketch.tasks.pinn import PINNTask
from pinnsketch.train import TrainingDiverged, TrainState, train

__all__ = ["solve", "resume", "load_problem", "SolveResult"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def load_problem(name_or_path: str, **params: Any) -> Problem:
    """A registered problem by name (``"burgers"``) or from a ``.py`` file, with parameters.

    >>> load_problem("burgers", nu=0.005).nu
    0.005
    """
    return make_problem(resolve_problem(name_or_path), params)


SolveResult = RunResult  # trained task, history, summary, run directory


def _config_dict(problem: Problem, source: str | None, model: ModelConfig | NetworkBase,
                 sampling: SamplingConfig, optim: OptimConfig, storage: StorageConfig,
                 run: RunConfig) -> dict[str, Any]:
    return {
        "problem": {"name": problem.name, "source": source, "params": problem.parameters()},
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
          problem_source: str | None = None, cluster: Cluster | None = None) -> SolveResult:
    """Train a PINN on ``problem`` and (with ``run.out``) write the run directory.

    Args:
        problem: a Problem instance.
        model: a :class:`~pinnsketch.config.ModelConfig`, or a network built from the parts
            of :mod:`pinnsketch.network` (trained in place; config.json records its
            structure, and ``resume`` then needs the same object again, ``model=``).
        sampling, optim, storage, run: configurations (defaults when None).
        controller: the rank policy when ``storage.rank == "auto"`` (default
            ``RankController()``).
        memory_budget: bytes held for backward allowed (an int or "2GB"); chooses the largest
            collocation batch and ranks that fit (DESIGN.md section 4), or refuses.
        problem_source: how to load the problem again (a registry name or a file path),
            recorded in config.json so ``resume`` can rebuild it.
        cluster: data-parallel run (:mod:`pinnsketch.distributed`); default: the initialised
            process group if there is one, else a single process. ``sampling.collocation``
            is the total over processes, ``memory_budget`` is per process; only process 0
            writes files.

    Returns:
        SolveResult with the trained model, history and summary (``out`` is None on the
        processes that do not write).

    Raises:
        ValueError: a bad configuration or output directory, before any training.
        TrainingDiverged: the loss became non-finite (files are written, status "diverged").
        KeyboardInterrupt: after writing a consistent run directory (status "interrupted").
    """
    model = model if model is not None else ModelConfig()
    sampling = sampling or SamplingConfig()
    optim, storage, run = optim or OptimConfig(), storage or StorageConfig(), run or RunConfig()
    cluster = cluster or current()
    if problem_source is None:
        problem_source = _builtin_source(problem)
    if controller is not None and storage.rank != "auto":
        raise ValueError("a rank controller needs StorageConfig(policy='sketch', rank='auto')")
    if storage.rank == "auto" and controller is None:
        controller = RankController()
    budget_message = None
    if memory_budget is not None:
        sampling, controller, budget_message = plan_memory(
            problem, model, sampling, storage, run, controller, parse_bytes(memory_budget),
            world_size=cluster.world_size)
    config = _config_dict(problem, problem_source, model, sampling, optim, storage, run)
    if budget_message:
        config["memory_budget"] = {"bytes": parse_bytes(memory_budget), "plan": budget_message}
    if controller is not None:
        config["controller"] = to_dict(controller)
    task = _build_task(problem, config, model, sampling, optim, storage, run, controller, cluster)
    _note(config, task, run, cluster)
    if budget_message and not run.quiet and cluster.is_main:
        print(budget_message)
    out = cluster.from_main(lambda: _new_run_dir(run, config))
    return _run(task, config, optim, run, out if cluster.is_main else None, TrainState(), cluster)


def _builtin_source(problem: Problem) -> str | None:
    """The registry name of a built-in problem (so that ``resume`` can load it again), or
    None for a problem class defined elsewhere (a notebook, a script), whatever its name."""
    import inspect

    path = builtin_problems().get(problem.name)
    try:
        source = inspect.getsourcefile(type(problem))
    except (TypeError, OSError):  # defined in __main__ or a notebook cell
        return None
    return problem.name if path is not None and source and Path(source) == path else None


def _new_run_dir(run: RunConfig, config: dict[str, Any]) -> Path | None:
    if not run.out:
        return None
    out = prepare_out_dir(run.out, run.overwrite)
    write_json(out / "config.json", config)
    return out


def _note(config: dict[str, Any], task: PINNTask, run: RunConfig, cluster: Cluster) -> None:
    """Record (config.json ``notes``) and print what the network changes about the loss."""
    if task.notes:
        config["notes"] = list(task.notes)
        if not run.quiet and cluster.is_main:
            print("\n".join(task.notes))


def _build_task(problem, config, model, sampling, optim, storage, run,
                controller=None, cluster: Cluster | None = None) -> PINNTask:
    cluster = cluster or current()
    if run.threads:
        torch.set_num_threads(run.threads)
    if run.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {run.device}: CUDA is not available on this machine; use cpu")
    task = PINNTask(problem, model, sampling, optim, storage, seed=run.seed, device=run.device,
                    dtype=_DTYPES[run.dtype], controller=controller, cluster=cluster)
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
    keys = required_derivatives([problem.residual], domain, problem.fields)
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
        fits = _largest_fitting(n, lambda x: compressed_held_bytes(
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
        fits = _largest_fitting(n, lambda x: sketch_held_bytes(
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


def _largest_fitting(n: int, fits) -> int:
    """The largest x in [0, n] with fits(x) (fits is monotone decreasing in x)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def resume(out_dir: str | Path, *, steps: int | None = None, lbfgs_steps: int | None = None,
           quiet: bool | None = None, time_limit_s: float | None = None,
           problem: Problem | None = None, cluster: Cluster | None = None,
           device: str | None = None, model: NetworkBase | None = None) -> SolveResult:
    """Continue the run in ``out_dir`` from its checkpoint (optionally with more steps).

    The wall time and a time limit count over the whole run, resumed parts included; pass
    ``time_limit_s`` to change the limit. The Adam learning-rate schedule continues with
    the decay rate of the original run.

    A run solved with a network object (``solve(..., model=net)``) is resumed with the
    same kind of network passed again as ``model`` (its weights come from the checkpoint).

    Raises:
        FileNotFoundError: no config.json or checkpoint.pt in ``out_dir``.
        ValueError: a corrupted or mismatched checkpoint, an unloadable problem, a run of a
            network object resumed without ``model`` (or with a different network).
    """
    out = Path(out_dir)
    cluster = cluster or current()
    config = cluster.from_main(lambda: read_json(out / "config.json"))
    if problem is None:
        source = config["problem"].get("source")
        if not source:
            raise ValueError(f"{str(out)!r} was solved from a Python object; pass problem= to resume")
        problem = make_problem(resolve_problem(source), config["problem"]["params"])
    if "network_object" in config["model"]:
        if model is None:
            raise ValueError(
                f"{str(out)!r} was solved with a {config['model']['network_object']} object "
                "passed to solve(); its structure cannot be rebuilt from config.json: pass the "
                "same kind of network to resume(..., model=net) (the weights come from the "
                "checkpoint)")
        if _model_dict(model) != config["model"]:
            raise ValueError(f"the network passed to resume ({_model_dict(model)}) is not the "
                             f"one {str(out)!r} was solved with ({config['model']})")
    elif model is not None:
        raise ValueError(f"{str(out)!r} was solved from a ModelConfig; resume rebuilds its "
                         "network: drop model=")
    else:
        model = ModelConfig(**config["model"])
    sampling = SamplingConfig(**config["sampling"])
    optim_d = dict(config["optim"], weights=tuple(tuple(w) for w in config["optim"]["weights"]))
    if steps is not None:
        optim_d["steps"] = steps
    if lbfgs_steps is not None:
        optim_d["lbfgs_steps"] = lbfgs_steps
    optim = OptimConfig(**optim_d)
    storage_d = dict(config["storage"])
    if isinstance(storage_d.get("rank"), list):
        storage_d["rank"] = tuple(storage_d["rank"])
    storage = StorageConfig(**storage_d)
    controller = None
    if "controller" in config:
        controller = RankController(**{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in config["controller"].items()})
    run_d = dict(config["run"])
    if quiet is not None:
        run_d["quiet"] = quiet
    if time_limit_s is not None:
        run_d["time_limit_s"] = time_limit_s
    if device is not None:
        run_d["device"] = device
    run = RunConfig(**run_d)
    new_config = _config_dict(problem, config["problem"].get("source"), model, sampling, optim,
                              storage, run)
    for key in ("memory_budget", "controller"):
        if key in config:
            new_config[key] = config[key]
    payload = cluster.from_main(lambda: load_checkpoint(out / "checkpoint.pt", new_config))
    task = _build_task(problem, new_config, model, sampling, optim, storage, run, controller,
                       cluster)
    _note(new_config, task, run, cluster)
    state = TrainState.from_dict(payload["train_state"])
    if state.task_state and hasattr(task, "restore_checkpoint_state"):
        task.restore_checkpoint_state(state.task_state)
    if state.phase == "done" and (optim.steps > state.step or optim.lbfgs_steps > state.lbfgs_iter):
        state.phase = "adam" if optim.steps > state.step else "lbfgs"
    state.stop_reason = None
    dtype = next(iter(payload["model"].values())).dtype
    task.set_dtype(dtype)
    task.model.load_state_dict(payload["model"])
    if cluster.is_main:
        (out / "summary.json").unlink(missing_ok=True)  # the run is open again
        write_json(out / "config.json", new_config)
    return _run(task, new_config, optim, run, out if cluster.is_main else None, state, cluster)


def _run(task: PINNTask, config: dict[str, Any], optim: OptimConfig, run: RunConfig,
         out: Path | None, state: TrainState, cluster: Cluster) -> SolveResult:
    def checkpoint(st: TrainState) -> None:
        if out is None:
            return
        if hasattr(task, "checkpoint_state"):
            st.task_state = task.checkpoint_state()
        save_checkpoint(out / "checkpoint.pt", task.model.state_dict(), st.to_dict(), config)
        write_history_csv(out / "history.csv", st.history)

    try:
        state = train(task, optim, run, state, checkpoint, cluster)
    except (KeyboardInterrupt, TrainingDiverged, DistributedRunError):
        _finish(task, config, state, out)
        raise
    summary = _finish(task, config, state, out)
    return SolveResult(task, state.history, summary, out)


def _mean(values: list) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _held(history: list[dict], phase: str | None) -> list:
    """The held bytes per point of the history rows of ``phase`` (None: every row)."""
    return [row["held_bytes_per_point"] for row in history
            if row.get("held_bytes_per_point") is not None
            and (phase is None or row.get("phase") == phase)]


def _finish(task: PINNTask, config: dict[str, Any], state: TrainState, out: Path | None
            ) -> dict[str, Any]:
    metrics = task.evaluate()
    storage = config["storage"]
    summary: dict[str, Any] = {
        "problem": config["problem"]["name"],
        "status": state.status,
        "stop_reason": state.stop_reason,
        "steps": state.step,
        "lbfgs_steps": state.lbfgs_iter,
        "wall_time_s": state.wall_time,
        "l2_relative_error": metrics.get("l2_relative_error"),
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
    if out is None:
        return summary
    u = task.predict(task.eval_points).numpy()
    ref = task.reference.numpy() if task.reference is not None else None
    axes = [a.numpy() for a in task.grid.axes]
    names = task.grid.names
    write_history_csv(out / "history.csv", state.history)
    if len(task.fields) == 1:
        write_result_h5(out / "result.h5", grid_names=names, grid_axes=axes,
                        points=task.eval_points.numpy(), solution=u, reference=ref,
                        history=state.history, config=config, summary=summary,
                        model_state=task.model.state_dict())
    else:
        _write_fields_h5(out / "result.h5", task, names, axes, u, ref, state, config, summary)
    for i, f in enumerate(task.fields):  # one set of plots per field (no suffix for one field)
        uf, rf = (u, ref) if u.ndim == 1 else (u[:, i], None if ref is None else ref[:, i])
        sfx, what = ("", summary["problem"]) if u.ndim == 1 else (f"_{f}", f"{summary['problem']}, {f}")
        plot_field(out / f"solution{sfx}.png", names, axes, uf, f"PINN solution ({what})")
        if rf is not None:
            plot_field(out / f"reference{sfx}.png", names, axes, rf, f"reference ({what})")
            plot_field(out / f"error{sfx}.png", names, axes, abs(uf - rf),
                       f"|error| ({what}), L2 rel = {summary['l2_relative_error']:.2e}",
                       cmap="viridis")
    if state.history:
        plot_history(out / "history.png", state.history, task.term_names)
        plot_columns(out / "ranks.png", state.history, "rank_", "sketch rank per hidden layer")
        plot_columns(out / "monitor.png", state.history, "gnorm_",
                     "gradient norm per layer: sketch estimate (lines), exact (dots)", logy=True)
    write_json(out / "summary.json", summary)
    return summary


def _write_fields_h5(path: Path, task: PINNTask, names, axes, u, ref, state: TrainState,
                     config: dict[str, Any], summary: dict[str, Any]) -> None:
    """result.h5 of a run with several fields: ``solution/<field>`` (and ``reference/<field>``,
    ``abs_error/<field>``), grid-shaped, besides what a one-field run writes."""
    shape = tuple(len(a) for a in axes)
    datasets = {f"grid/{n}": a for n, a in zip(names, axes)}
    datasets["points"] = task.eval_points.numpy()
    for i, f in enumerate(task.fields):
        datasets[f"solution/{f}"] = u[:, i].reshape(shape)
        if ref is not None:
            datasets[f"reference/{f}"] = ref[:, i].reshape(shape)
            datasets[f"abs_error/{f}"] = abs(u[:, i] - ref[:, i]).reshape(shape)
    write_run_h5(path, attrs={"config": config, "summary": summary,
                              "coordinates": ",".join(names), "fields": ",".join(task.fields)},
                 datasets=datasets, history=state.history, model_state=task.model.state_dict())

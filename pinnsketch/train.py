"""One generic training loop over a Task: Adam with a decaying learning rate, then L-BFGS.

The loop knows only the Task protocol (sample, backward, evaluate, set_dtype). It checks
every loss for NaN/inf, keeps the last good state, evaluates and checkpoints every
``eval_every`` steps, shows a progress bar, and can resume from a checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from pinnsketch.config import OptimConfig, RunConfig
from pinnsketch.distributed import SINGLE, Cluster, DistributedRunError
from pinnsketch.interrupts import RunInterrupted, StopRequests
from pinnsketch.progress import Progress
from pinnsketch.sketch.monitor import GradientMonitor, exact_norm
from pinnsketch.tasks.base import Task

__all__ = ["train", "TrainState", "TrainingDiverged", "OutOfMemory", "LBFGS_CHUNK"]

LBFGS_CHUNK = 50
"""L-BFGS iterations per optimizer.step call (one history row and one divergence check each)."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_MAX_EVALS_PER_ITER = 26  # strong Wolfe tries at most 25 steps per iteration, plus one


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good state has been restored."""


class OutOfMemory(RuntimeError):
    """Memory ran out during training; the last good state has been restored and saved."""


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                             or "out of memory" in text)


@dataclass
class TrainState:
    """Everything needed to continue a run: phase, step counters, optimizer states, history."""

    phase: str = "adam"  # "adam" -> "lbfgs" -> "done"
    step: int = 0  # Adam steps done
    lbfgs_iter: int = 0  # L-BFGS iterations done
    wall_time: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    adam: dict | None = None  # {"optimizer": ..., "scheduler": ...}, kept after the phase ends
    lbfgs: dict | None = None  # L-BFGS optimizer state (curvature pairs) within its phase
    status: str = "running"
    stop_reason: str | None = None  # "steps", "converged" (L-BFGS tolerance), "time limit"
    task_state: dict | None = None  # the task's own resumable state (sketch counter, controller)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        return cls(**d)


def train(task: Task, optim: OptimConfig, run: RunConfig, state: TrainState | None = None,
          checkpoint: Callable[[TrainState], None] | None = None,
          cluster: Cluster = SINGLE, stop: StopRequests | None = None) -> TrainState:
    """Train ``task`` to the end of both phases, starting from ``state`` if given.

    ``checkpoint(state)`` is called after each evaluation with a consistent state (model
    weights are the task's), and once more at the end or on interruption. In a
    data-parallel run (``cluster``) the task sums gradients over processes, only process 0
    shows progress, and a time limit or a stop request reached by any process stops all of
    them at the same step.

    ``stop`` (:class:`~pinnsketch.interrupts.StopRequests`): after every step the loop
    checks whether a signal asked it to stop; if so it checkpoints that step and raises
    :class:`~pinnsketch.interrupts.RunInterrupted` (no finished step is lost).

    Raises:
        TrainingDiverged: a non-finite loss; the model holds the last good weights and
            ``checkpoint`` has been called with them.
        RunInterrupted: a signal asked to stop; ``checkpoint`` holds the last finished step.
        KeyboardInterrupt: raised inside a step (a second signal, or Ctrl-C without
            handlers); re-raised after a checkpoint of the last good state.
        DistributedRunError: another process failed; re-raised after a checkpoint of the
            last good state (status "failed").
        OutOfMemory: memory ran out; re-raised after a checkpoint of the last good state
            (status "failed").
    """
    state = state or TrainState()
    total = optim.steps + optim.lbfgs_steps
    progress = Progress(total=total, initial=state.step + state.lbfgs_iter,
                        quiet=run.quiet or not cluster.is_main)
    good = _Snapshot(task, state)
    start = time.perf_counter() - state.wall_time
    loop = _Loop(task, optim, run, state, progress, good, checkpoint, start, cluster, stop)
    try:
        if state.phase == "adam":
            _adam(loop)
            if state.stop_reason != "time limit":
                state.phase = "lbfgs"
        if state.phase == "lbfgs" and state.stop_reason != "time limit":
            _lbfgs(loop)
        state.phase = "done"
        state.stop_reason = state.stop_reason or "steps"
        state.status = "completed"
        state.wall_time = time.perf_counter() - start
        loop.save()
    except RunInterrupted:  # stopped at a step boundary: that step is already saved
        raise
    except KeyboardInterrupt:
        loop.fail("interrupted", None)
        raise
    except TrainingDiverged:
        loop.fail("diverged", None)
        raise
    except DistributedRunError:  # another process died: keep what this one can still save
        loop.fail("failed", "another process failed")
        raise
    except (MemoryError, RuntimeError) as exc:
        if not _is_out_of_memory(exc):
            raise
        loop.fail("failed", "out of memory")
        raise OutOfMemory(
            f"out of memory at {loop.where()} ({exc}); the last good state (step "
            f"{state.step + state.lbfgs_iter}) is saved. Use fewer points per step "
            "(--collocation, --chunk-size), a smaller network, or less held memory "
            "(--storage exact or sketch, --memory-budget)") from None
    finally:
        progress.close()
    return state


@dataclass
class _Loop:
    """What the phases share: the task, configs, state, progress, snapshot, callbacks."""

    task: Task
    optim: OptimConfig
    run: RunConfig
    state: TrainState
    progress: Progress
    good: _Snapshot
    checkpoint: Callable[[TrainState], None] | None
    start: float
    cluster: Cluster
    stop: StopRequests | None

    def save(self) -> None:
        """The state is consistent: remember it as good and checkpoint it."""
        self.state.wall_time = time.perf_counter() - self.start
        self.good.take()
        if self.checkpoint:
            self.checkpoint(self.state)

    def fail(self, status: str, reason: str | None) -> None:
        """Back to the last good state, marked ``status``, checkpointed."""
        self.good.restore()
        self.state.status = status
        if reason:
            self.state.stop_reason = reason
        if self.checkpoint:
            self.checkpoint(self.state)

    def where(self) -> str:
        s = self.state
        return (f"Adam step {s.step + 1}" if s.phase == "adam"
                else f"L-BFGS iteration {s.lbfgs_iter + 1}")

    def limits(self) -> tuple[bool, str | None]:
        """(time limit reached, signal asking to stop) on any process, at a step boundary."""
        elapsed = self.run.time_limit_s and time.perf_counter() - self.start >= self.run.time_limit_s
        requested = self.stop.requested if self.stop is not None else None
        if not self.cluster.active:
            return bool(elapsed), requested
        flags = self.cluster.max_floats([1.0 if elapsed else 0.0, 1.0 if requested else 0.0])
        return flags[0] > 0, (requested or "SIGTERM") if flags[1] > 0 else None

    def atomic(self):
        """A block that signals do not interrupt (they wait for its end)."""
        return self.stop.deferred() if self.stop is not None else contextlib.nullcontext()

    def stop_on_signal(self, requested: str, abandoned: bool = False) -> None:
        """Save the last finished step and stop (``abandoned``: a step in progress was
        dropped by a second signal)."""
        s = self.state
        s.status = "interrupted"
        s.stop_reason = requested
        self.save()
        what = "the step in progress was abandoned; " if abandoned else ""
        raise RunInterrupted(requested, f"stopped on {requested} after "
                                        f"{s.step} Adam steps and {s.lbfgs_iter} L-BFGS "
                                        f"iterations; {what}every finished step is saved")


class _Snapshot:
    """The last state whose loss was finite (weights, optimizer, counters, history length)."""

    def __init__(self, task: Task, state: TrainState):
        self.task, self.state = task, state
        self.take()

    def take(self) -> None:
        s = self.state
        self.model = copy.deepcopy(self.task.model.state_dict())
        self.adam, self.lbfgs = copy.deepcopy(s.adam), copy.deepcopy(s.lbfgs)
        self.counters = (s.phase, s.step, s.lbfgs_iter, len(s.history), s.wall_time)
        self.task_state = copy.deepcopy(self.task.checkpoint_state())

    def restore(self) -> None:
        s = self.state
        dtype = next(iter(self.model.values())).dtype if self.model else None
        if dtype is not None:
            self.task.set_dtype(dtype)
        self.task.model.load_state_dict(self.model)
        s.phase, s.step, s.lbfgs_iter, n, s.wall_time = self.counters
        del s.history[n:]
        s.adam, s.lbfgs = self.adam, self.lbfgs
        self.task.restore_checkpoint_state(copy.deepcopy(self.task_state))


def _check_finite(terms: dict[str, float], where: str) -> None:
    if not math.isfinite(terms["loss"]):
        raise TrainingDiverged(
            f"loss became {terms['loss']} at {where}; restored the last good checkpoint. "
            "Try a smaller learning rate (--lr) or float64 (--dtype float64)."
        )


def _record(task: Task, state: TrainState, terms: dict[str, float], start: float,
            lr: float | None, evaluate: bool, progress: Progress,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"step": state.step + state.lbfgs_iter, "phase": state.phase}
    row.update({k: v for k, v in terms.items()})
    row["lr"] = lr
    if evaluate:
        row.update(task.evaluate())
    row["wall_time_s"] = time.perf_counter() - start
    row["held_bytes_per_point"] = task.held_bytes_per_point
    row.update(extra or {})
    if terms or evaluate:
        state.history.append(row)
    progress.show(row)
    return row


def _adam(loop: _Loop) -> None:
    task, optim, run, state, progress = loop.task, loop.optim, loop.run, loop.state, loop.progress
    if optim.steps == 0 or state.step >= optim.steps:
        return
    opt = torch.optim.Adam(task.model.parameters(), lr=optim.lr)
    gamma = optim.lr_decay ** (1.0 / optim.steps)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    if state.adam is not None:  # continue (or extend) with the same moments and schedule
        opt.load_state_dict(state.adam["optimizer"])
        sched.load_state_dict(state.adam["scheduler"])
    period = task.resample_every
    batch_index = None
    batch = None
    monitor = GradientMonitoring(task.model, run) if run.monitor else None
    try:
        while state.step < optim.steps:
            index = state.step // period if period else 0
            if index != batch_index:
                batch, batch_index = task.sample(index), index
            task.before_step(state.step)
            opt.zero_grad(set_to_none=True)
            terms = task.backward(batch)
            _check_finite(terms, f"Adam step {state.step}")
            extra: dict[str, Any] = {}
            if monitor:
                extra.update(monitor.observe(state.step))
            with loop.atomic():  # the step is applied and recorded whole, or not at all
                opt.step()
                lr = sched.get_last_lr()[0]
                sched.step()
                columns, messages = task.after_step(state.step, terms)
                extra.update(columns)
                for line in messages:
                    progress.note(line)
                state.step += 1
                progress.update(1)
                out_of_time, requested = loop.limits()
                done = state.step == optim.steps or out_of_time
                evaluate = state.step % run.eval_every == 0 or done
                _record(task, state, terms, loop.start, lr, evaluate, progress, extra)
                state.adam = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
            if requested:
                loop.stop_on_signal(requested)
            if evaluate:
                loop.save()
            if out_of_time:
                _stop_for_time(state, progress, run)
                return
    except KeyboardInterrupt as exc:
        if isinstance(exc, RunInterrupted):
            raise
        # raised outside the atomic part: parameters, moments and counters are those of the
        # last finished step, so that step is what is saved (the one in progress is dropped)
        opt.zero_grad(set_to_none=True)
        state.adam = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
        loop.stop_on_signal("SIGINT", abandoned=True)


def _lbfgs(loop: _Loop) -> None:
    task, optim, run, state, progress = loop.task, loop.optim, loop.run, loop.state, loop.progress
    if optim.lbfgs_steps == 0 or state.lbfgs_iter >= optim.lbfgs_steps:
        return
    task.set_dtype(_DTYPES[optim.lbfgs_dtype])
    for line in task.enter_phase("lbfgs"):
        progress.note(line)
    batch = task.sample(-1)  # one fixed set for the whole phase
    opt = torch.optim.LBFGS(task.model.parameters(), lr=1.0, max_iter=LBFGS_CHUNK,
                            max_eval=LBFGS_CHUNK * _MAX_EVALS_PER_ITER,
                            history_size=optim.lbfgs_history,
                            tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")
    if state.lbfgs is not None:
        opt.load_state_dict(state.lbfgs)
    last: dict[str, float] = {}

    def closure():
        opt.zero_grad(set_to_none=True)
        terms = task.backward(batch)
        last.clear()
        last.update(terms)
        return torch.tensor(terms["loss"], dtype=task_dtype(task))

    next_eval = (state.lbfgs_iter // run.eval_every + 1) * run.eval_every
    while state.lbfgs_iter < optim.lbfgs_steps:
        chunk = min(LBFGS_CHUNK, optim.lbfgs_steps - state.lbfgs_iter)
        opt.param_groups[0]["max_iter"] = chunk
        opt.param_groups[0]["max_eval"] = chunk * _MAX_EVALS_PER_ITER
        before = opt.state[opt._params[0]].get("n_iter", 0) if opt.state else 0
        opt.step(closure)
        _check_finite(last, f"L-BFGS iteration {state.lbfgs_iter}")
        after = opt.state[opt._params[0]].get("n_iter", 0)
        did = max(after - before, 0)
        state.lbfgs_iter += did
        progress.update(did)
        converged = did < chunk  # a tolerance stopped it (the eval cap is never the limit)
        if converged:
            state.stop_reason = "converged"
            progress.note(f"L-BFGS stopped after {state.lbfgs_iter} iterations (converged)")
        out_of_time, requested = loop.limits()
        evaluate = (state.lbfgs_iter >= next_eval or converged or out_of_time
                    or state.lbfgs_iter >= optim.lbfgs_steps)
        _record(task, state, last, loop.start, None, evaluate, progress)
        if evaluate or requested:
            state.lbfgs = opt.state_dict()
        if requested:
            loop.stop_on_signal(requested)
        if evaluate:
            next_eval = (state.lbfgs_iter // run.eval_every + 1) * run.eval_every
            loop.save()
        if out_of_time:
            _stop_for_time(state, progress, run)
        if converged or out_of_time:
            break
    state.lbfgs = None  # a finished phase starts a fresh L-BFGS if extended


class GradientMonitoring:
    """Per-layer gradient norms estimated from small sketches every step (Antil & Verma 2025),
    with the exact norms and the estimate's relative error every ``run.eval_every`` steps.

    Columns: ``gnorm_est_L`` (sketch estimate), ``gnorm_ema_L`` (EMA monitoring sketch) for
    each weight matrix L = 1, 2, ...; every ``run.monitor_every`` steps (default
    ``eval_every``) also ``gnorm_exact_L`` and ``gnorm_relerr_L`` = |est - exact| / exact.
    """

    def __init__(self, model: torch.nn.Module, run: RunConfig):
        self.weights = [p for p in model.parameters() if p.dim() == 2]
        self.monitor = GradientMonitor(k=run.monitor_rank, beta=0.9, seed=run.seed)
        self.every = run.monitor_every or run.eval_every

    def observe(self, step: int) -> dict[str, float]:
        out: dict[str, float] = {}
        exact = (step + 1) % self.every == 0
        for i, w in enumerate(self.weights):
            if w.grad is None:
                continue
            est = self.monitor.observe(i, w.grad)
            out[f"gnorm_est_{i + 1}"] = est["norm_est"]
            out[f"gnorm_ema_{i + 1}"] = est["ema_norm_est"]
            if exact:
                true = exact_norm(w.grad)
                out[f"gnorm_exact_{i + 1}"] = true
                out[f"gnorm_relerr_{i + 1}"] = abs(est["norm_est"] - true) / true if true else 0.0
        return out


def _stop_for_time(state: TrainState, progress: Progress, run: RunConfig) -> None:
    state.stop_reason = "time limit"
    progress.note(f"time limit of {run.time_limit_s:g} s reached after {state.step} Adam steps "
                  f"and {state.lbfgs_iter} L-BFGS iterations; stopping")


def task_dtype(task: Task) -> torch.dtype:
    return next(task.model.parameters()).dtype

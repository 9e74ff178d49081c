"""One generic training loop over a Task: a list of phases, each an optimizer and its steps.

A phase is Adam (a learning rate decaying exponentially over the phase, batches resampled
every ``task.resample_every`` steps) or a second-order method of :mod:`pinnsketch.optim`
(L-BFGS, dense BFGS, SSBFGS, SSBroyden) on one fixed batch, in ``second_order_dtype``. The
loop knows a phase only through one protocol (:class:`_Phase`: compute an iteration, commit
it, abandon it, its state as plain data) and a task only through the Task protocol
(:mod:`pinnsketch.tasks.base`). It checks every loss for NaN/inf, keeps the last good state,
evaluates and checkpoints every ``eval_every`` iterations, shows a progress bar, honours a
wall-clock limit and stop requests (signals) at iteration boundaries, and resumes from a
checkpoint: a resumed run equals an uninterrupted one.
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
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from pinnsketch.config import OptimConfig, PhaseConfig, RunConfig
from pinnsketch.distributed import SINGLE, Cluster, DistributedRunError
from pinnsketch.interrupts import RunInterrupted, StopRequests
from pinnsketch.optim import fit_dense, make_optimizer
from pinnsketch.progress import Progress
from pinnsketch.sketch.monitor import GradientMonitor, exact_norm
from pinnsketch.tasks.base import Task

__all__ = ["train", "TrainState", "TrainingDiverged", "OutOfMemory"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
    """Everything needed to continue a run, as plain data (a checkpoint reads it as data).

    Attributes:
        phase: index of the phase in progress (the number of phases once all are done).
        phase_steps: iterations done in each phase.
        phase_state: the optimizer state of the phase in progress (None before it starts).
        phase_ends: per phase, why it ended early ("stalled"), else None.
        wall_time: seconds of training so far, resumed parts included.
        history: one row per iteration.
        status: "running", "completed", "interrupted", "diverged", "failed".
        stop_reason: "steps", "time limit", a signal name, "out of memory", ...
        task_state: the task's own resumable state (sketch counter, rank state).
        log: every log line so far (rank changes, line-search resets, phase notes).
    """

    phase: int = 0
    phase_steps: list[int] = field(default_factory=list)
    phase_state: dict | None = None
    phase_ends: list[str | None] = field(default_factory=list)
    wall_time: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    stop_reason: str | None = None
    task_state: dict | None = None
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        return cls(**d)

    def steps_of(self, phases: tuple[PhaseConfig, ...], second_order: bool) -> int:
        """Iterations done in the Adam phases (``second_order=False``) or in the others."""
        return sum(n for p, n in zip(phases, self.phase_steps, strict=False)
                   if p.second_order == second_order)

    @property
    def iterations(self) -> int:
        """Iterations done over every phase (the ``step`` of the last history row)."""
        return sum(self.phase_steps)


def train(task: Task, optim: OptimConfig, run: RunConfig, state: TrainState | None = None,
          checkpoint: Callable[[TrainState], None] | None = None,
          cluster: Cluster = SINGLE, stop: StopRequests | None = None) -> TrainState:
    """Train ``task`` through ``optim.phases``, starting from ``state`` if given.

    ``checkpoint(state)`` is called after each evaluation with a consistent state (model
    weights are the task's), and once more at the end or on interruption. In a
    data-parallel run (``cluster``) the task sums gradients over processes (every process
    then takes the same step, line searches included), only process 0 shows progress, and a
    time limit or a stop request reached by any process stops all of them at the same step.

    ``stop`` (:class:`~pinnsketch.interrupts.StopRequests`): after every iteration the loop
    checks whether a signal asked it to stop; if so it checkpoints that iteration and raises
    :class:`~pinnsketch.interrupts.RunInterrupted`. An interrupt inside an iteration (a
    second signal) abandons that iteration only.

    Raises:
        TrainingDiverged: a non-finite loss; the model holds the last good weights and
            ``checkpoint`` has been called with them.
        RunInterrupted: a signal asked to stop; ``checkpoint`` holds the last finished
            iteration.
        KeyboardInterrupt: raised outside the loop's iterations (e.g. while a phase starts);
            re-raised after a checkpoint of the last good state.
        DistributedRunError: another process failed; re-raised after a checkpoint of the
            last good state (status "failed").
        OutOfMemory: memory ran out; re-raised after a checkpoint of the last good state
            (status "failed").
    """
    phases = optim.phases
    state = state or TrainState()
    state.phase_steps += [0] * (len(phases) - len(state.phase_steps))
    state.phase_ends += [None] * (len(phases) - len(state.phase_ends))
    progress = Progress(total=sum(p.steps for p in phases), initial=state.iterations,
                        quiet=run.quiet or not cluster.is_main)
    good = _Snapshot(task, state)
    start = time.perf_counter() - state.wall_time
    loop = _Loop(task, optim, run, state, progress, good, checkpoint, start, cluster, stop)
    try:
        while state.phase < len(phases) and state.stop_reason != "time limit":
            if state.phase_steps[state.phase] < phases[state.phase].steps:
                _run_phase(loop, phases[state.phase])
            if state.stop_reason == "time limit":
                break
            state.phase += 1
            if state.phase < len(phases):  # the last phase's state stays: it may be extended
                state.phase_state = None
        state.stop_reason = state.stop_reason or "steps"
        state.status = "completed"
        loop.save()
    except RunInterrupted:  # stopped at an iteration boundary: that iteration is saved
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
            f"out of memory at {loop.where} ({exc}); the last good state (step "
            f"{state.iterations}) is saved. Use fewer points per step (--collocation, "
            "--chunk-size), a smaller network, or less held memory (--storage exact or "
            "sketch, --memory-budget)") from None
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
    where: str = "the start"

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

    def note(self, line: str) -> None:
        """A log line: shown (unless quiet) and kept in the state (summary.json ``log``)."""
        self.progress.note(line)
        self.state.log.append(line)

    def atomic(self):
        """A block that signals do not interrupt (they wait for its end)."""
        return self.stop.deferred() if self.stop is not None else contextlib.nullcontext()

    def limits(self) -> tuple[bool, str | None]:
        """(time limit reached, signal asking to stop) on any process, at a step boundary."""
        limit = self.run.time_limit_s
        elapsed = bool(limit) and time.perf_counter() - self.start >= limit
        requested = self.stop.requested if self.stop is not None else None
        if not self.cluster.active:
            return elapsed, requested
        flags = self.cluster.max_floats([1.0 if elapsed else 0.0, 1.0 if requested else 0.0])
        return flags[0] > 0, (requested or "SIGTERM") if flags[1] > 0 else None

    def stop_on_signal(self, requested: str, abandoned: bool = False) -> None:
        """Save the last finished iteration and stop (``abandoned``: an iteration in progress
        was dropped by a second signal)."""
        s = self.state
        s.status = "interrupted"
        s.stop_reason = requested
        self.save()
        what = "the iteration in progress was abandoned; " if abandoned else ""
        raise RunInterrupted(requested, f"stopped on {requested} after "
                                        f"{s.steps_of(self.optim.phases, False)} Adam steps and "
                                        f"{s.steps_of(self.optim.phases, True)} second-order "
                                        f"iterations; {what}every finished step is saved")


class _Snapshot:
    """The last state whose loss was finite (weights, optimizer state, counters, history)."""

    def __init__(self, task: Task, state: TrainState):
        self.task, self.state = task, state
        self.take()

    def take(self) -> None:
        s = self.state
        self.model = copy.deepcopy(self.task.model.state_dict())
        self.phase_state = copy.deepcopy(s.phase_state)
        self.counters = (s.phase, list(s.phase_steps), list(s.phase_ends), len(s.history),
                         len(s.log), s.wall_time)
        self.task_state = copy.deepcopy(self.task.checkpoint_state())

    def restore(self) -> None:
        s = self.state
        dtype = next(iter(self.model.values())).dtype if self.model else None
        if dtype is not None:
            self.task.set_dtype(dtype)
        self.task.model.load_state_dict(self.model)
        s.phase, steps, ends, n, n_log, s.wall_time = self.counters
        s.phase_steps, s.phase_ends = list(steps), list(ends)
        del s.history[n:]
        del s.log[n_log:]
        s.phase_state = copy.deepcopy(self.phase_state)
        self.task.restore_checkpoint_state(copy.deepcopy(self.task_state))


def _check_finite(loss: float, where: str) -> None:
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {loss} at {where}; restored the last good checkpoint. "
            "Try a smaller learning rate (--lr) or float64 (--dtype float64)."
        )


@dataclass
class _Iteration:
    """One committed iteration: its loss terms, the learning rate (Adam), extra history
    columns, log lines, and whether the phase can go no further (``stalled``)."""

    terms: dict[str, float]
    lr: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stalled: bool = False


class _Phase:
    """The protocol of a phase, as the loop uses it.

    ``compute()`` does the expensive, interruptible work of one iteration and returns a
    pending result; ``commit(pending)`` applies it (run with signals deferred, so an
    iteration is applied and recorded whole or not at all); ``abandon()`` returns the model
    to the last committed iteration after an interrupt inside ``compute``; ``state_dict()``
    is the optimizer state as plain data.
    """

    name: str

    def compute(self) -> Any: ...

    def commit(self, pending: Any) -> _Iteration: ...

    def abandon(self) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...


def _run_phase(loop: _Loop, spec: PhaseConfig) -> None:
    state, run, progress = loop.state, loop.run, loop.progress
    index = state.phase
    phase = (_AdamPhase(loop, spec) if not spec.second_order
             else _SecondOrderPhase(loop, spec))
    try:
        while state.phase_steps[index] < spec.steps:
            n = state.phase_steps[index] + 1
            loop.where = f"Adam step {n}" if not spec.second_order else f"{spec.optimizer} iteration {n}"
            pending = phase.compute()
            with loop.atomic():  # applied and recorded whole, or not at all
                it = phase.commit(pending)
                state.phase_steps[index] += 1
                progress.update(1)
                out_of_time, requested = loop.limits()
                last = state.phase_steps[index] == spec.steps
                evaluate = (state.iterations % run.eval_every == 0 or last or out_of_time
                            or it.stalled)
                _record(loop, spec.optimizer, it, evaluate)
            if requested or evaluate:
                state.phase_state = phase.state_dict()
            if requested:
                loop.stop_on_signal(requested)
            if evaluate:
                loop.save()
            if out_of_time:
                state.stop_reason = "time limit"
                loop.note(f"time limit of {run.time_limit_s:g} s reached after "
                              f"{state.iterations} iterations; stopping")
                return
            if it.stalled:
                state.phase_ends[index] = "stalled"
                loop.note(f"{spec.optimizer} phase ended after {state.phase_steps[index]} "
                              "iterations: no further progress is possible from this point")
                return
    except KeyboardInterrupt as exc:
        if isinstance(exc, RunInterrupted):
            raise
        # an interrupt inside compute(): back to the last committed iteration, which is
        # what gets saved (the iteration in progress is dropped)
        phase.abandon()
        state.phase_state = phase.state_dict()
        loop.stop_on_signal("SIGINT", abandoned=True)


def _record(loop: _Loop, phase: str, it: _Iteration, evaluate: bool) -> None:
    task, state = loop.task, loop.state
    row: dict[str, Any] = {"step": state.iterations, "phase": phase}
    row.update(it.terms)
    row["lr"] = it.lr
    if evaluate:
        row.update(task.evaluate())
    row["wall_time_s"] = time.perf_counter() - loop.start
    row["held_bytes_per_point"] = task.held_bytes_per_point
    row.update(it.extra)
    state.history.append(row)
    loop.progress.show(row)
    for line in it.notes:
        loop.note(line)


class _AdamPhase(_Phase):
    """Adam with an exponentially decaying learning rate, lr -> lr * lr_decay over the phase."""

    name = "adam"

    def __init__(self, loop: _Loop, spec: PhaseConfig):
        self.loop, self.task, optim = loop, loop.task, loop.optim
        for line in self.task.enter_phase("adam"):
            loop.note(line)
        self.opt = torch.optim.Adam(self.task.model.parameters(), lr=optim.lr,
                                    betas=optim.adam_betas)
        self.sched = torch.optim.lr_scheduler.ExponentialLR(
            self.opt, gamma=optim.lr_decay ** (1.0 / spec.steps))
        if loop.state.phase_state is not None:  # continue with the same moments and schedule
            self.opt.load_state_dict(loop.state.phase_state["optimizer"])
            self.sched.load_state_dict(loop.state.phase_state["scheduler"])
        self.monitor = GradientMonitoring(self.task.model, loop.run) if loop.run.monitor else None
        self.index = loop.state.phase
        self.batch, self.batch_key = None, None
        # the RAD density fresh points are drawn from (task.adaptive_density), None: uniform
        self.density = (loop.state.phase_state or {}).get("density")

    @property
    def step(self) -> int:
        """Adam steps before this one, over every Adam phase (seeds batches and hooks)."""
        s = self.loop.state
        return s.steps_of(self.loop.optim.phases[:self.index], False) + s.phase_steps[self.index]

    def compute(self) -> tuple[dict[str, float], dict[str, Any]]:
        task, step = self.task, self.step
        period, every = task.resample_every, task.adapt_every
        index = step // period if period else 0
        adapted = step // every if every else 0  # uniform points until the first estimate
        if adapted and (self.density is None or self.density["index"] != adapted):
            self.density = task.adaptive_density(adapted)
        if (index, adapted) != self.batch_key:
            self.batch, self.batch_key = task.sample(index, density=self.density), (index, adapted)
        task.before_step(step)
        self.opt.zero_grad(set_to_none=True)
        terms = task.backward(self.batch)
        _check_finite(terms["loss"], f"Adam step {step + 1}")
        extra = self.monitor.observe(step) if self.monitor else {}
        return terms, extra

    def commit(self, pending) -> _Iteration:
        terms, extra = pending
        self.opt.step()
        lr = self.sched.get_last_lr()[0]
        self.sched.step()
        columns, messages = self.task.after_step(self.step, terms)
        return _Iteration(terms, lr, {**extra, **columns}, list(messages))

    def abandon(self) -> None:
        self.opt.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "density": self.density}


class _SecondOrderPhase(_Phase):
    """A line-search method of :mod:`pinnsketch.optim` on one fixed batch.

    The optimizer works on the flat float64 parameter vector x; its objective sets the
    model's parameters to x and runs ``task.backward`` (which sums gradients over processes
    in a data-parallel run, so every process takes the same step). The optimizer state
    holds the accepted x; trial points of a line search change only the model.
    """

    def __init__(self, loop: _Loop, spec: PhaseConfig):
        self.loop, self.task, optim = loop, loop.task, loop.optim
        self.name = spec.optimizer
        self.task.set_dtype(_DTYPES[optim.second_order_dtype])
        for line in self.task.enter_phase(spec.optimizer):
            loop.note(line)
        self.params = list(self.task.model.parameters())
        num = sum(p.numel() for p in self.params)
        kw = {"history": optim.lbfgs_history} if spec.optimizer == "lbfgs" \
            else {"max_bytes": optim.dense_limit_bytes}
        self.opt, why = fit_dense(make_optimizer(spec.optimizer, **kw), num,
                                  fallback=make_optimizer("lbfgs", history=optim.lbfgs_history))
        if why and loop.state.phase_steps[loop.state.phase] == 0:
            loop.note(why)
        self.batch = self.task.sample(-1)  # one fixed set: a line search needs a fixed objective
        self.refined, self.refined_points = 0, None
        self._seen: list[tuple[torch.Tensor, dict[str, float]]] = []
        saved = loop.state.phase_state
        if saved is not None:
            self.state = self.opt.state_from_dict(saved["optimizer"])
            self.refined = saved["refined"]
            if saved["refined_points"] is not None:
                self.batch, self.refined_points = self.task.refine(self.refined,
                                                                   saved["refined_points"])
            self._set(self.state.x)
        else:
            x = parameters_to_vector(self.params).detach().to(torch.float64)
            f, g = self._fg(x)
            _check_finite(f, f"the start of the {spec.optimizer} phase")
            self.state = self.opt.init(x, f, g)
        self.index = loop.state.phase

    def _set(self, x: torch.Tensor) -> None:
        with torch.no_grad():
            vector_to_parameters(x.to(self.params[0].dtype), self.params)

    def _fg(self, x: torch.Tensor, batch: Any = None) -> tuple[float, torch.Tensor]:
        """The loss and its flat float64 gradient at x on the phase's batch (or ``batch``);
        the model is left at x."""
        self._set(x)
        for p in self.params:
            p.grad = None
        terms = self.task.backward(self.batch if batch is None else batch)
        self._seen.append((x.detach().clone(), dict(terms)))
        g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                       for p in self.params]).to(torch.float64)
        loss = terms["loss"]
        return (loss if math.isfinite(loss) else math.inf), g

    def _rj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The residual vector and its Jacobian at x on the phase's batch."""
        self._set(x)
        return self.task.residual_jacobian(self.batch)

    def _refine(self) -> None:
        """Every ``task.refine_every`` iterations: a new batch (RAD), the same point x and
        curvature information, the objective's new value and gradient there."""
        every, done = self.task.refine_every, self.loop.state.phase_steps[self.index]
        if not every or done == 0 or done % every or done // every == self.refined:
            return
        batch, points = self.task.refine(done // every)
        f, g = self._fg(self.state.x, batch)
        _check_finite(f, f"the refinement of the {self.name} phase")
        with self.loop.atomic():  # batch, points and optimizer state change together
            self.batch, self.refined_points, self.refined = batch, points, done // every
            self.state = self.opt.rebase(self.state, f, g)

    def compute(self):
        self._refine()
        self._seen.clear()
        if self.opt.needs_jacobian:  # Gauss-Newton: the residuals' Jacobian as well
            new, info = self.opt.step(self.state, self._fg, self._rj)
        else:
            new, info = self.opt.step(self.state, self._fg)
        _check_finite(info.loss, f"{self.name} iteration {self.state.iteration + 1}")
        terms = next((t for x, t in reversed(self._seen) if torch.equal(x, new.x)), None)
        return new, info, terms

    def commit(self, pending) -> _Iteration:
        new, info, terms = pending
        self.state = new
        self._set(new.x)
        if terms is None:  # a reset moved to a point whose terms were not kept: only the loss
            terms = {"loss": info.loss}
        status = "reset" if info.reset else ("skipped" if info.skipped_update else "ok")
        extra = {"evaluations": info.evaluations, "step_length": info.step_length,
                 "line_search": status}
        notes = [info.message] if info.message and (info.reset or info.stalled) else []
        return _Iteration(dict(terms), None, extra, notes, stalled=info.stalled)

    def abandon(self) -> None:
        self._set(self.state.x)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.state.to_dict(), "refined": self.refined,
                "refined_points": self.refined_points}


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

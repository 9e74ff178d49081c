"""Run a task to its end and leave a consistent run directory, whatever ends the run.

The one finaliser of PINN and classification runs: :func:`run_task` trains (the generic
loop, :func:`pinnsketch.train.train`), checkpoints into the run directory as it goes, and on
every ending (completed, time limit, a signal, divergence, another process failing, memory
exhausted) writes the task's result files, then ``history.csv``, then ``summary.json`` last,
so a directory with a summary is complete and consistent. Signals that arrive while files
are written wait until they are written (:class:`~pinnsketch.interrupts.StopRequests`). The
run directory's lock is released at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pinnsketch.config import OptimConfig, RunConfig
from pinnsketch.distributed import SINGLE, Cluster, DistributedRunError
from pinnsketch.interrupts import RunInterrupted, StopRequests
from pinnsketch.results import save_checkpoint, write_history_csv, write_json
from pinnsketch.rundir import RunDirectory
from pinnsketch.tasks.base import Task
from pinnsketch.train import OutOfMemory, TrainingDiverged, TrainState, train

__all__ = ["run_task", "Report"]

Report = Callable[[TrainState, Path | None], dict[str, Any]]
"""(final state, run directory or None) -> summary; writes the task's own result files
(HDF5, plots) into the directory. The runner writes history.csv and summary.json after it."""


def run_task(task: Task, optim: OptimConfig, run: RunConfig, state: TrainState,
             config: dict[str, Any], out: RunDirectory | None, report: Report,
             cluster: Cluster = SINGLE) -> tuple[TrainState, dict[str, Any]]:
    """Train ``task`` from ``state`` and finish the run directory ``out`` (None: no files).

    Returns (final state, summary). Re-raises what stopped the run (a
    :class:`~pinnsketch.interrupts.RunInterrupted` or ``KeyboardInterrupt``,
    :class:`~pinnsketch.train.TrainingDiverged`,
    :class:`~pinnsketch.distributed.DistributedRunError`,
    :class:`~pinnsketch.train.OutOfMemory`) after the files are written.
    """
    path = out.path if out is not None else None
    stop = StopRequests()

    def checkpoint(st: TrainState) -> None:
        st.task_state = task.checkpoint_state()
        if path is None:
            return
        with stop.deferred():
            save_checkpoint(path / "checkpoint.pt", task.model.state_dict(), st.to_dict(), config)
            write_history_csv(path / "history.csv", st.history)

    def finish(st: TrainState) -> dict[str, Any]:
        with stop.deferred():
            summary = report(st, path)
            if path is not None:
                write_history_csv(path / "history.csv", st.history)
                write_json(path / "summary.json", summary)
        return summary

    try:
        with stop:
            try:
                state = train(task, optim, run, state, checkpoint, cluster, stop)
            except (KeyboardInterrupt, TrainingDiverged, DistributedRunError, OutOfMemory) as exc:
                finish(state)  # train() restored and checkpointed a consistent state
                if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
                    raise RunInterrupted("SIGINT", "interrupted inside a step; the last good "
                                         f"state (step {state.iterations}) "
                                         "is saved") from None
                raise
            return state, finish(state)
    finally:
        if out is not None:
            out.close()

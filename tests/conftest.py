"""Shared fixtures: tiny CLI settings so that whole runs take about a second."""

from __future__ import annotations

import pytest


@pytest.fixture
def tiny_args() -> list[str]:
    """CLI options for a tiny network and a few hundred points (no L-BFGS, quiet)."""
    return ["--width", "8", "--depth", "2", "--collocation", "100", "--boundary-points", "10",
            "--initial-points", "10", "--lbfgs-steps", "0", "--quiet"]


@pytest.fixture
def one_thread():
    """One torch thread for the test (tiny matrices: more threads only contend on a shared
    machine); the previous count is restored. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def interrupted_run(monkeypatch):
    """``interrupted_run(run, n)``: call ``run()`` with a Ctrl-C raised inside the n-th PDE
    backward pass (after it ran, before its step is committed) and expect the run to stop
    on it (:class:`~pinnsketch.interrupts.RunInterrupted`); backward is restored after."""
    from pinnsketch.interrupts import RunInterrupted
    from pinnsketch.tasks.pinn import PINNTask

    def interrupt(run, n: int) -> None:
        original, calls = PINNTask.backward, [0]

        def backward(task, batch):
            calls[0] += 1
            terms = original(task, batch)
            if calls[0] == n:
                raise KeyboardInterrupt
            return terms

        monkeypatch.setattr(PINNTask, "backward", backward)
        with pytest.raises(RunInterrupted):
            run()
        monkeypatch.setattr(PINNTask, "backward", original)

    return interrupt

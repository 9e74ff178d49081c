"""Ctrl-C (SIGINT) and SIGTERM as requests to stop at the next step boundary.

Batch schedulers send SIGTERM before they kill a job; users press Ctrl-C. Either way the
run should keep every step it finished: :class:`StopRequests` turns the first signal into a
flag that the training loop reads after each step (it then checkpoints that exact step and
stops), and a second signal into an immediate ``KeyboardInterrupt`` (the step in progress is
abandoned and the last checkpoint kept). While the run's files are being written
(:meth:`StopRequests.deferred`) every signal only sets the flag, so the files are never left
half-written.

Handlers can be installed only from the main thread; elsewhere (or with ``install=False``)
the object is inert and Python's default Ctrl-C behaviour applies.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = ["StopRequests", "RunInterrupted", "EXIT_CODES"]

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
"""Shell convention: 128 + the signal number."""


class RunInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after saving its state; ``signal`` names it."""

    def __init__(self, signal_name: str, message: str = ""):
        super().__init__(message or f"stopped on {signal_name}")
        self.signal = signal_name

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal, 130)


class StopRequests:
    """Install SIGINT/SIGTERM handlers for the duration of a ``with`` block.

    Attributes:
        requested: the name of the first signal received ("SIGINT", "SIGTERM"), or None.
    """

    def __init__(self, install: bool = True, announce=None):
        self.requested: str | None = None
        self.count = 0
        self._install = install and threading.current_thread() is threading.main_thread()
        self._previous: dict[int, object] = {}
        self._deferring = 0
        self._announce = announce or (lambda line: print(line, file=sys.stderr, flush=True))

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        self.count += 1
        if self.requested is None:
            self.requested = name
            if not self._deferring:
                self._announce(f"pinnsketch: {name} received: stopping after the current step "
                               "and saving it (send it again to abandon the step in progress)")
            return
        if not self._deferring:
            raise KeyboardInterrupt(f"{name} received twice")

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Inside, a signal only sets :attr:`requested` (files being written are finished)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    def __enter__(self) -> StopRequests:
        if self._install:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


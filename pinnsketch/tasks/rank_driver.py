"""Glue between a sketching Engine and the rank controller (``--sketch-rank auto``).

Every ``every`` steps the engine measures each hidden layer's exact relative sketch error at
forward time (the full activation is still there); every step the controller sees the PDE
residual loss. Its decisions go back to the engine as new per-layer ranks, and every change
is logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pinnsketch.control import RankController, RankState, RankStats, layer_errors
from pinnsketch.storage import Engine

__all__ = ["RankDriver"]


class RankDriver:
    """Runs a :class:`~pinnsketch.control.RankController` against one sketch engine.

    The driver holds the one rank state of a run (:meth:`state_dict` checkpoints it): the
    controller's :class:`~pinnsketch.control.RankState` and, once a line-search phase
    began (:meth:`enter_line_search`), the ranks the Adam phase ended with.

    Args:
        controller: the policy (immutable).
        engine: a ``sketch`` engine whose ranks it sets.
        widths: the hidden widths.
        every: measure the sketch errors every this many steps (errors are exact, but cost
            one reconstruction per layer).
        combine_errors: makes the per-layer errors the same on every process of a
            data-parallel run (their maximum), so that every process decides the same ranks;
            None for a single process.
    """

    def __init__(self, controller: RankController, engine: Engine, widths: tuple[int, ...],
                 every: int = 50,
                 combine_errors: Callable[[list[float]], list[float]] | None = None):
        if every < 1:
            raise ValueError(f"rank control interval must be >= 1 step, got {every}")
        self.controller, self.engine, self.every = controller, engine, every
        self.combine_errors = combine_errors
        ranks, self.state = controller.init(widths)
        engine.set_ranks(ranks)
        self.adam_ranks: tuple[int, ...] | None = None
        self._logged = len(self.state.log)

    @property
    def active(self) -> bool:
        """Whether the controller still chooses ranks (False once a line search began)."""
        return self.adam_ranks is None

    @property
    def ranks(self) -> tuple[int, ...]:
        """The ranks chosen so far (after the Adam phase: the ranks it ended with)."""
        return self.adam_ranks if self.adam_ranks is not None else self.state.ranks

    def before_step(self, step: int) -> None:
        if self.active:
            self.engine.measure_error = step % self.every == 0

    def after_step(self, step: int, residual_loss: float) -> list[str]:
        if not self.active:
            return []
        errors = None
        if self.engine.measure_error and self.engine.last_component_errors is not None:
            errors = layer_errors(self.engine.last_component_errors)
            if self.combine_errors is not None:
                errors = tuple(self.combine_errors(list(errors)))
        self.engine.measure_error = False
        ranks, self.state = self.controller.update(
            self.state, RankStats(step=step, residual_loss=residual_loss, sketch_errors=errors))
        if ranks != self.engine.ranks:
            self.engine.set_ranks(ranks)
        return self._new_log()

    def enter_line_search(self) -> list[str]:
        """A line-search phase begins: rank control ends here (idempotent)."""
        if not self.active:
            return []
        self.adam_ranks = self.state.ranks
        _, self.state = self.controller.enter_lbfgs(self.state)
        return self._new_log()

    def state_dict(self) -> dict[str, Any]:
        """Plain data: the controller state and the Adam phase's final ranks (or None)."""
        return {"rank_state": self.state.to_dict(),
                "adam_ranks": list(self.adam_ranks) if self.adam_ranks is not None else None}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (resume, or back to the last good state)."""
        self.state = RankState.from_dict(saved["rank_state"])
        adam = saved.get("adam_ranks")
        self.adam_ranks = tuple(adam) if adam is not None else None
        if self.active:
            self.engine.set_ranks(self.state.ranks)
        self._logged = len(self.state.log)

    def _new_log(self) -> list[str]:
        new = list(self.state.log[self._logged:])
        self._logged = len(self.state.log)
        return new

    def columns(self) -> dict[str, Any]:
        return {f"rank_{i + 1}": r for i, r in enumerate(self.ranks)}

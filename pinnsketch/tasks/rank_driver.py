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
        self._logged = len(self.state.log)

    @property
    def ranks(self) -> tuple[int, ...]:
        return self.state.ranks

    def before_step(self, step: int) -> None:
        self.engine.measure_error = step % self.every == 0

    def after_step(self, step: int, residual_loss: float) -> list[str]:
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

    def restore(self, state: RankState) -> None:
        """Continue from a saved controller state (resume): its ranks go to the engine."""
        self.state = state
        self.engine.set_ranks(state.ranks)
        self._logged = len(state.log)

    def enter_lbfgs(self) -> list[str]:
        ranks, self.state = self.controller.enter_lbfgs(self.state)
        return self._new_log()

    def _new_log(self) -> list[str]:
        new = list(self.state.log[self._logged:])
        self._logged = len(self.state.log)
        return new

    def columns(self) -> dict[str, Any]:
        return {f"rank_{i + 1}": r for i, r in enumerate(self.state.ranks)}

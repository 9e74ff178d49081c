"""The Task seam between problems and the training loop (PINN task; classification later)."""

from pinnsketch.tasks.base import Task

__all__ = ["Task"]

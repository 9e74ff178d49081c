"""Controllers: per-layer sketch ranks from the residual trend and a memory budget.

- :mod:`~pinnsketch.control.rank`: :class:`RankController`, an immutable policy with explicit
  state (``init(widths) -> state``, ``update(state, stats) -> (ranks, state)``) that raises
  a layer's rank when the PDE residual stalls and its sketch is lossy, and lowers it when the
  residual falls steadily and the sketch is accurate; every change is logged.
- :mod:`~pinnsketch.control.budget`: :func:`parse_bytes` and :func:`plan_budget`, which turn a
  memory budget into a collocation batch size and per-layer rank caps from the held-bytes
  model of :mod:`pinnsketch.memory`.

Plain floats and ints only: nothing here knows PDEs, modules or tensors.
"""

from pinnsketch.control.budget import (
    BudgetPlan,
    compressed_held_bytes,
    exact_held_bytes,
    exact_points_within,
    format_bytes,
    largest_fitting,
    parse_bytes,
    plan_budget,
    sketch_held_bytes,
)
from pinnsketch.control.rank import (
    RankController,
    RankState,
    RankStats,
    layer_errors,
    lbfgs_ranks,
    log_loss_trend,
)

__all__ = [
    "BudgetPlan",
    "RankController",
    "RankState",
    "RankStats",
    "compressed_held_bytes",
    "exact_held_bytes",
    "exact_points_within",
    "format_bytes",
    "largest_fitting",
    "layer_errors",
    "lbfgs_ranks",
    "log_loss_trend",
    "parse_bytes",
    "plan_budget",
    "sketch_held_bytes",
]

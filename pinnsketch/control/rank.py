"""A per-layer sketch-rank controller driven by the PDE residual trend (DESIGN.md section 5).

The policy is an immutable :class:`RankController`; its state is an explicit immutable
:class:`RankState`::

    ctrl = RankController()
    ranks, state = ctrl.init(widths)                     # one rank per hidden layer
    for step ...:
        ranks, state = ctrl.update(state, RankStats(step, residual_loss, sketch_errors))
    ranks, state = ctrl.enter_lbfgs(state)               # full rank for the L-BFGS phase

Signals, per call of :meth:`RankController.update`:

- the trend of the residual loss: the least-squares slope ``b`` of ``log(loss)`` (natural
  log) against the step over the last ``window`` steps, in units of 1/step, with its
  standard error ``se`` from the fit residuals. ``b = -1e-4`` means the loss shrinks by a
  factor ``exp(-1e-4 * 1000) = 0.90`` every 1000 steps (a decade takes 23,000 steps).
- the measured relative sketch error of each hidden layer (``engine.last_sketch_errors``, or
  better the worst jet component per layer, :func:`layer_errors`), when measured.

Rules (checked only once the window has filled and ``cooldown`` steps after any change):

1. **Incompressible**: a layer whose fresh error is still above ``incompressible_error`` at a
   rank >= ``incompressible_fraction * width`` is marked not compressible and set to its
   full width (exact reconstruction), or its budget cap if lower (the log says that its
   gradients stay approximate). It is never shrunk again.
2. **Grow**: the residual stalls or rises (``b > stall_slope``) -> every layer whose fresh
   error exceeds ``error_high`` grows by ``grow_factor`` (at least +1), capped at
   ``min(width, max_rank, budget cap)``. A stall with accurate sketches changes nothing: the
   sketch is not what holds the optimizer back.
3. **Shrink**: the residual falls steadily (``b + fall_confidence * se < fall_slope``) and no
   layer's fresh error exceeds ``error_high`` -> every layer whose fresh error is below
   ``error_low`` shrinks by ``shrink_factor`` (at least -1), never below ``min_rank`` and
   never to a rank at which it was ever measured above ``error_high``.
   **Kept for accuracy** (3b): where rule 3 would shrink but a layer's fresh error is at or
   above ``error_low``, the log says once per rank that the layer keeps its rank because a
   lower one would cost accuracy -- "not compressible" at a rank >= ``incompressible_fraction
   * width`` (a narrow 4 x 50 network as it trains, DESIGN.md section 2), else how far it
   was compressed.
4. **Hysteresis**: no change of any layer within ``cooldown`` steps of the last change; no
   shrink of a layer within ``2 * cooldown`` steps of its last growth; a changed layer's
   error is forgotten until it is measured again at the new rank; the gap between
   ``error_low`` and ``error_high`` is a dead band. With the lossy-rank floor of rule 3 a
   layer cannot cycle between two ranks.

Every change (and a layer that wants to grow but sits at its cap) appends one human-readable
line to ``state.log``. Layers are numbered from 0, as in ``Engine.ranks``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace

from pinnsketch.checks import is_int, is_real

__all__ = ["RankController", "RankState", "RankStats", "layer_errors", "lbfgs_ranks",
           "log_loss_trend"]

_TINY = 1e-300  # log(0) guard: a zero residual loss is "falling", not an error


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def log_loss_trend(history: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares slope of log(loss) against step, and its standard error.

    Fits ``log(loss_i) = a + b * step_i``; returns ``(b, se)`` with
    ``se = sqrt(SSR / (n - 2) / sum((step_i - mean)^2))``. ``b`` is in natural-log units per
    step. The standard error assumes independent noise; Adam's loss noise is autocorrelated,
    so it is an underestimate (hence :attr:`RankController.fall_confidence` defaults to 2).

    Args:
        history: ``(step, loss)`` pairs, at least 3 with at least 2 distinct steps; a loss
            of 0 is treated as 1e-300.

    Raises:
        ValueError: fewer than 3 points, a single step, or a negative or non-finite loss.

    >>> slope, se = log_loss_trend([(s, math.exp(-0.01 * s)) for s in range(10)])
    >>> round(slope, 12), se < 1e-12
    (-0.01, True)
    """
    if len(history) < 3:
        raise ValueError(f"a trend needs at least 3 (step, loss) points, got {len(history)}")
    xs, ys = [], []
    for step, loss in history:
        if not is_real(loss) or not math.isfinite(loss) or loss < 0:
            raise ValueError(f"loss at step {step} is {loss!r}; need a finite loss >= 0")
        xs.append(float(step))
        ys.append(math.log(max(float(loss), _TINY)))
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("a trend needs at least 2 distinct steps")
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    ssr = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return b, math.sqrt(ssr / (n - 2) / sxx)


def layer_errors(component_errors: Iterable[Iterable[float]]) -> tuple[float, ...]:
    """Per hidden layer, the worst relative sketch error over its jet components.

    ``engine.last_component_errors`` gives one error per layer and jet component; the stacked
    error (``engine.last_sketch_errors``) is dominated by the largest component (u_xx in deep
    layers) and can hide a lossy u or u_x, so the controller is best fed the maximum.

    >>> layer_errors([[0.0, 2e-3, 1e-2], [1e-4, 5e-4]])
    (0.01, 0.0005)
    """
    out = []
    for comps in component_errors:
        comps = list(comps)
        if not comps:
            raise ValueError("a layer without jet-component errors; give at least one per layer")
        out.append(float(max(comps)))
    return tuple(out)


def lbfgs_ranks(widths: Sequence[int]) -> tuple[int, ...]:
    """Full rank (each layer's width) for the L-BFGS phase.

    A line search compares losses and gradients of the same batch at several trial points;
    sketches drawn afresh at each evaluation make those inconsistent, so L-BFGS runs exact.
    :meth:`RankController.enter_lbfgs` does the same and logs it.

    >>> lbfgs_ranks((50, 50, 20))
    (50, 50, 20)
    """
    return _check_widths(widths)


def _check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    widths = tuple(widths)
    if not widths or not all(is_int(w) and w >= 1 for w in widths):
        raise ValueError(f"widths={widths!r} must be a non-empty tuple of hidden-layer "
                         "widths (ints >= 1), e.g. (50, 50, 50, 50)")
    return widths


@dataclass(frozen=True)
class RankStats:
    """What the trainer reports to the controller at one step.

    Args:
        step: the optimizer step (int >= 0, increasing between calls).
        residual_loss: the PDE residual loss at that step (finite, >= 0).
        sketch_errors: per hidden layer the measured relative sketch error (>= 0, inf
            allowed), or None when not measured this step.

    >>> RankStats(3, 0.5, (1e-3, 2e-2)).sketch_errors
    (0.001, 0.02)
    """

    step: int
    residual_loss: float
    sketch_errors: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not is_int(self.step) or self.step < 0:
            raise ValueError(f"step={self.step!r} must be an int >= 0")
        loss = self.residual_loss
        if not is_real(loss) or not math.isfinite(loss) or loss < 0:
            raise ValueError(f"residual_loss={loss!r} must be a finite float >= 0 (the trainer "
                             "stops on a non-finite loss before reporting it)")
        if self.sketch_errors is not None:
            errs = tuple(float(e) if is_real(e) else e for e in self.sketch_errors)
            for e in errs:
                if not is_real(e) or math.isnan(e) or e < 0:
                    raise ValueError(f"sketch_errors={self.sketch_errors!r}: every error must "
                                     "be a float >= 0 (inf allowed, not NaN), or pass None")
            object.__setattr__(self, "sketch_errors", errs)


@dataclass(frozen=True)
class RankState:
    """The controller's explicit state (immutable; :meth:`RankController.update` returns a new one).

    Attributes:
        widths: hidden-layer widths.
        caps: per layer the largest allowed rank, min(width, max_rank, budget cap).
        ranks: current rank per layer.
        step: the last step seen (None before the first update).
        start_step: the first step seen (the window has filled once
            ``step - start_step + 1 >= window``).
        history: ``(step, loss)`` pairs of the last ``window`` steps.
        errors: per layer the last error measured at its current rank, or None.
        last_change_step: per layer the step of its last change, or None.
        last_grow_step: per layer the step of its last growth, or None.
        lossy_rank: per layer the highest rank at which its error exceeded ``error_high``
            (0 if never); shrinking never returns to it.
        incompressible: per layer whether it was found not compressible.
        capped_noted: per layer whether "wants to grow but at its cap" was logged at the
            current rank.
        kept_noted: per layer whether "keeps rank ... for accuracy" (rule 3b) was logged at
            its current rank.
        log: one line per change, oldest first.
    """

    widths: tuple[int, ...]
    caps: tuple[int, ...]
    ranks: tuple[int, ...]
    step: int | None = None
    start_step: int | None = None
    history: tuple[tuple[int, float], ...] = ()
    errors: tuple[float | None, ...] = ()
    last_change_step: tuple[int | None, ...] = ()
    last_grow_step: tuple[int | None, ...] = ()
    lossy_rank: tuple[int, ...] = ()
    incompressible: tuple[bool, ...] = ()
    capped_noted: tuple[bool, ...] = ()
    log: tuple[str, ...] = ()
    kept_noted: tuple[bool, ...] = ()

    def to_dict(self) -> dict:
        """Plain data (lists, numbers, strings, None) for a checkpoint read as data."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> RankState:
        """Undo :meth:`to_dict`.

        >>> state = RankController(window=3).init((8, 16))[1]
        >>> RankState.from_dict(state.to_dict()) == state
        True
        """
        values = {}
        for f in fields(cls):
            v = data[f.name]
            if f.name == "history":
                v = tuple((int(s), float(loss)) for s, loss in v)
            elif isinstance(v, list):
                v = tuple(v)
            values[f.name] = v
        return cls(**values)

    @property
    def last_any_change(self) -> int | None:
        """The step of the most recent change of any layer, or None."""
        steps = [s for s in self.last_change_step if s is not None]
        return max(steps) if steps else None


@dataclass(frozen=True)
class RankController:
    """Chooses the sketch rank of each hidden layer (an immutable policy; see the module doc).

    Defaults and why:

    - ``min_rank=4``: below a handful of directions even the smooth activations of a 2-D PDE
      are not represented (DESIGN.md section 2: a 4 x 256 tanh net needs 9 to 18).
    - ``initial_rank=32``: the rank the prototype measured as matching exact training on
      Burgers (per-component sketches; rank 16 converged 3-6x less accurately). Starting at
      the known-safe rank and shrinking on evidence keeps accuracy first; on a 4 x 50 net
      rank 32 >= 50/2, so one lossy measurement marks the layer not compressible.
    - ``window=200`` steps: long enough that the slope of Adam's noisy log-loss has a useful
      standard error (for per-step noise sigma the standard error is about
      ``sigma * sqrt(12 / window^3)``: 2.4e-5 for sigma = 0.01), short against 10^4-step runs.
    - ``stall_slope=-5e-5``/step: the loss falls by less than 1% per window, i.e. less than
      a decade per 46,000 steps -- stalling on the scale of a PINN run.
    - ``fall_slope=-2e-4``/step with ``fall_confidence=2``: the loss falls by at least 4% per
      window (a decade per 11,500 steps) even at two standard errors above the fitted slope.
      Shrinking is the risky direction, so it needs confidence; growing does not.
    - ``error_high=1e-2``: above it the measured gradient fidelity drops (DESIGN.md section
      2). ``error_low=1e-4``: the activation error is a weak proxy for the gradient error on
      narrow nets, whose activations lose their low rank as they train. Measured on Burgers
      4 x 50 (2,000 points, 5,000 Adam + 1,000 L-BFGS steps, README): with 1e-3 the layers
      shrank to ranks 4-14 and the run ended at 1.40 x exact storage's L2; with 1e-4 at
      0.96 x (0.99 x with the randomized SVD; 1e-5: 1.04 x); on 4 x 256 (800 steps) 1e-4
      chose the same ranks as 1e-3 on Burgers and heat and 5 % more bytes on Poisson. The
      factor-100 gap is the dead band.
    - ``grow_factor=2``, ``shrink_factor=0.75``: grow fast (accuracy), shrink slowly (memory).
    - ``cooldown=window``: after a change the next decision sees a window of losses made
      entirely at the new ranks.
    - ``incompressible_fraction=0.5``, ``incompressible_error=error_high``: a sketch at half
      the width or more saves little (k (N + w) against N w numbers) and, if still lossy,
      the layer is kept exact.

    Args:
        min_rank: lowest rank (int >= 1); a layer narrower than this keeps its width.
        max_rank: highest rank for every layer, or None (each layer's width).
        initial_rank: rank at :meth:`init` (>= min_rank), clamped to [min_rank, cap].
        window: steps over which the log-loss trend is fitted (int >= 3).
        stall_slope: fitted slope (1/step) above which the residual is stalling or rising.
        fall_slope: slope (1/step, < 0, < stall_slope) below which it is clearly falling.
        fall_confidence: standard errors the slope must stay below ``fall_slope`` by (>= 0).
        error_high: relative sketch error above which a layer is lossy.
        error_low: relative sketch error below which a layer may shrink (< error_high).
        grow_factor: multiplicative growth (> 1), rounded, at least +1.
        shrink_factor: multiplicative shrink (0 < f < 1), rounded, at least -1.
        cooldown: steps with no change after any change (int >= 0; None: ``window``).
        incompressible_fraction: rank / width (0 < f <= 1) at which a still-lossy layer is
            declared not compressible.
        incompressible_error: error that counts as still lossy there (None: ``error_high``).
        budget_ranks: per-layer rank caps from a memory budget (e.g. ``plan_budget(...).ranks``),
            or None.

    Raises:
        ValueError: naming the bad field and the fix.

    >>> ctrl = RankController(window=3)
    >>> ranks, state = ctrl.init((50, 256))
    >>> ranks
    (32, 32)
    >>> for step in range(3):
    ...     ranks, state = ctrl.update(state, RankStats(step, 1.0, (1e-4, 0.1)))
    >>> ranks
    (32, 64)
    >>> state.log[-1]
    'step 2: layer 1 rank 32 -> 64 (residual stalling, slope 0.0e+00/step; sketch error 1.0e-01)'
    """

    min_rank: int = 4
    max_rank: int | None = None
    initial_rank: int = 32
    window: int = 200
    stall_slope: float = -5e-5
    fall_slope: float = -2e-4
    fall_confidence: float = 2.0
    error_high: float = 1e-2
    error_low: float = 1e-4
    grow_factor: float = 2.0
    shrink_factor: float = 0.75
    cooldown: int | None = None
    incompressible_fraction: float = 0.5
    incompressible_error: float | None = None
    budget_ranks: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("min_rank", "initial_rank"):
            v = getattr(self, name)
            if not is_int(v) or v < 1:
                raise ValueError(f"{name}={v!r} must be an int >= 1 (a sketch keeps at least "
                                 f"one direction); e.g. {name}=4")
        if self.max_rank is not None:
            if not is_int(self.max_rank) or self.max_rank < 1:
                raise ValueError(f"max_rank={self.max_rank!r} must be an int >= 1, or None for "
                                 "each layer's width")
            if self.max_rank < self.min_rank:
                raise ValueError(f"min_rank={self.min_rank} > max_rank={self.max_rank}; lower "
                                 "min_rank or raise max_rank")
        if self.initial_rank < self.min_rank:
            raise ValueError(f"initial_rank={self.initial_rank} < min_rank={self.min_rank}; "
                             "raise initial_rank or lower min_rank")
        if not is_int(self.window) or self.window < 3:
            raise ValueError(f"window={self.window!r} must be an int >= 3 (steps over which the "
                             "log-loss slope is fitted); e.g. window=200")
        if self.cooldown is None:
            object.__setattr__(self, "cooldown", self.window)
        elif not is_int(self.cooldown) or self.cooldown < 0:
            raise ValueError(f"cooldown={self.cooldown!r} must be an int >= 0 (steps without "
                             "a change after a change), or None for window")
        for name in ("stall_slope", "fall_slope", "fall_confidence", "error_high", "error_low",
                     "grow_factor", "shrink_factor", "incompressible_fraction"):
            v = getattr(self, name)
            if not is_real(v) or not math.isfinite(v):
                raise ValueError(f"{name}={v!r} must be a finite float")
        if not self.fall_slope < 0:
            raise ValueError(f"fall_slope={self.fall_slope} must be < 0 (a falling log-loss "
                             "slope, 1/step); e.g. fall_slope=-2e-4")
        if not self.fall_slope < self.stall_slope:
            raise ValueError(f"fall_slope={self.fall_slope} must be below stall_slope="
                             f"{self.stall_slope} (falling is steeper than stalling); "
                             "e.g. fall_slope=-2e-4, stall_slope=-5e-5")
        if self.fall_confidence < 0:
            raise ValueError(f"fall_confidence={self.fall_confidence} must be >= 0 (standard "
                             "errors); e.g. 2.0")
        if not 0 < self.error_low < self.error_high:
            raise ValueError(f"need 0 < error_low < error_high, got error_low={self.error_low}, "
                             f"error_high={self.error_high}; e.g. error_low=1e-4, "
                             "error_high=1e-2 (the gap is the dead band)")
        if not self.grow_factor > 1:
            raise ValueError(f"grow_factor={self.grow_factor} must be > 1; e.g. 2.0")
        if not 0 < self.shrink_factor < 1:
            raise ValueError(f"shrink_factor={self.shrink_factor} must satisfy "
                             "0 < shrink_factor < 1; e.g. 0.75")
        if not 0 < self.incompressible_fraction <= 1:
            raise ValueError(f"incompressible_fraction={self.incompressible_fraction} must "
                             "satisfy 0 < f <= 1; e.g. 0.5 (half the width)")
        if self.incompressible_error is None:
            object.__setattr__(self, "incompressible_error", self.error_high)
        elif (not is_real(self.incompressible_error)
              or not self.incompressible_error > self.error_low):
            raise ValueError(f"incompressible_error={self.incompressible_error!r} must be a "
                             f"float > error_low={self.error_low}, or None for error_high")
        if self.budget_ranks is not None:
            caps = tuple(self.budget_ranks) if isinstance(self.budget_ranks, (list, tuple)) \
                else None
            if not caps or not all(is_int(c) and c >= 1 for c in caps):
                raise ValueError(f"budget_ranks={self.budget_ranks!r} must be a tuple of ints "
                                 ">= 1, one per hidden layer (e.g. plan_budget(...).ranks), "
                                 "or None")
            if min(caps) < self.min_rank:
                raise ValueError(f"budget_ranks={caps} has a cap below min_rank="
                                 f"{self.min_rank}; raise the memory budget, use fewer "
                                 "collocation points, or lower min_rank")
            object.__setattr__(self, "budget_ranks", caps)

    # ----------------------------------------------------------------------------- caps
    def caps(self, widths: Sequence[int]) -> tuple[int, ...]:
        """Per layer the largest allowed rank: min(width, max_rank, budget cap)."""
        widths = _check_widths(widths)
        budget = self.budget_ranks
        if budget is not None and len(budget) != len(widths):
            raise ValueError(f"budget_ranks={budget} has {len(budget)} entries for "
                             f"{len(widths)} hidden layers {widths}; give one cap per layer")
        out = []
        for i, w in enumerate(widths):
            c = w if self.max_rank is None else min(w, self.max_rank)
            out.append(c if budget is None else min(c, budget[i]))
        return tuple(out)

    def _floor(self, cap: int) -> int:
        return min(self.min_rank, cap)

    # ------------------------------------------------------------------------ init/update
    def init(self, widths: Sequence[int]) -> tuple[tuple[int, ...], RankState]:
        """Initial ranks and state for hidden layers of the given widths.

        Returns:
            ``(ranks, state)``: ``initial_rank`` clamped to [min_rank, cap] per layer.

        >>> RankController(initial_rank=16).init((50, 8))[0]
        (16, 8)
        """
        widths = _check_widths(widths)
        caps = self.caps(widths)
        ranks = tuple(max(self._floor(c), min(self.initial_rank, c)) for c in caps)
        n = len(widths)
        line = f"init: ranks {ranks} for widths {widths}"
        if self.budget_ranks is not None:
            line += f" (memory-budget caps {self.budget_ranks})"
        state = RankState(widths=widths, caps=caps, ranks=ranks, errors=(None,) * n,
                          last_change_step=(None,) * n, last_grow_step=(None,) * n,
                          lossy_rank=(0,) * n, incompressible=(False,) * n,
                          capped_noted=(False,) * n, log=(line,), kept_noted=(False,) * n)
        return ranks, state

    def update(self, state: RankState, stats: RankStats) -> tuple[tuple[int, ...], RankState]:
        """Record one step's statistics and return the (possibly changed) ranks and new state.

        Raises:
            ValueError: a step not after the previous one, or a wrong number of errors.
        """
        if not isinstance(stats, RankStats):
            raise TypeError(f"stats must be a RankStats, got {type(stats).__name__}")
        n, step = len(state.widths), stats.step
        if state.step is not None and step <= state.step:
            raise ValueError(f"step {step} is not after the previous step {state.step}; "
                             "report each step once, in order")
        errors = list(state.errors)
        lossy_rank = list(state.lossy_rank)
        if stats.sketch_errors is not None:
            if len(stats.sketch_errors) != n:
                raise ValueError(f"{len(stats.sketch_errors)} sketch errors for {n} hidden "
                                 "layers; give one per layer (or None when not measured)")
            for i, e in enumerate(stats.sketch_errors):
                errors[i] = e
                if e > self.error_high:
                    lossy_rank[i] = max(lossy_rank[i], state.ranks[i])
        history = tuple((s, v) for s, v in state.history if s > step - self.window)
        history += ((step, float(stats.residual_loss)),)
        start = step if state.start_step is None else state.start_step
        state = replace(state, step=step, start_step=start, history=history,
                        errors=tuple(errors), lossy_rank=tuple(lossy_rank))

        last = state.last_any_change
        if last is not None and step - last < self.cooldown:
            return state.ranks, state
        changes: dict[int, tuple[int, str]] = {}
        grown: set[int] = set()
        incompressible = list(state.incompressible)
        capped_noted = list(state.capped_noted)
        kept_noted = list(state.kept_noted or (False,) * n)  # () in a pre-1b checkpoint
        notes: list[str] = []

        # Rule 1: not compressible -> full width (or the budget cap).
        for i in range(n):
            r, w, e = state.ranks[i], state.widths[i], errors[i]
            if incompressible[i] or e is None or r < self.incompressible_fraction * w \
                    or e <= self.incompressible_error:
                continue
            incompressible[i] = True
            target, cap = max(r, state.caps[i]), state.caps[i]
            why = (f"not compressible: sketch error {e:.1e} at rank {r} >= "
                   f"{self.incompressible_fraction:g} x width {w}")
            if cap < w:
                why += (f"; held at its cap {cap} < width {w} (memory budget or max_rank), so "
                        "its gradients stay approximate: raise the budget for exact accuracy")
            else:
                why += "; kept at full width (exact reconstruction)"
            if target > r:
                changes[i] = (target, why)
                grown.add(i)
            else:
                notes.append(f"step {step}: layer {i} rank {r} ({why})")

        # Rules 2 and 3 need a filled window.
        if step - start + 1 >= self.window and len(history) >= 3:
            slope, se = log_loss_trend(history)
            fresh = [e for e in errors if e is not None]
            if slope > self.stall_slope:
                trend = "rising" if slope > 0 else "stalling"
                for i in range(n):
                    e, r = errors[i], state.ranks[i]
                    if i in changes or incompressible[i] or e is None or e <= self.error_high:
                        continue
                    target = min(state.caps[i], max(r + 1, _round(r * self.grow_factor)))
                    if target > r:
                        changes[i] = (target, f"residual {trend}, slope {slope:.1e}/step; "
                                              f"sketch error {e:.1e}")
                        grown.add(i)
                    elif not capped_noted[i]:
                        capped_noted[i] = True
                        notes.append(f"step {step}: layer {i} stays at rank {r}: residual "
                                     f"{trend} and sketch error {e:.1e} > {self.error_high:g}, "
                                     f"but {r} is its cap (width, max_rank or memory budget)")
            elif slope + self.fall_confidence * se < self.fall_slope \
                    and all(e <= self.error_high for e in fresh):
                for i in range(n):
                    e, r = errors[i], state.ranks[i]
                    g = state.last_grow_step[i]
                    if i in changes or incompressible[i] or e is None \
                            or (g is not None and step - g < 2 * self.cooldown):
                        continue
                    if e >= self.error_low:  # rule 3b: accuracy holds this layer's rank
                        if not kept_noted[i]:
                            kept_noted[i] = True
                            notes.append(self._kept_line(step, i, r, state.widths[i], e))
                        continue
                    target = max(self._floor(state.caps[i]), lossy_rank[i] + 1,
                                 min(r - 1, _round(r * self.shrink_factor)))
                    if target < r:
                        changes[i] = (target, f"residual falling, slope {slope:.1e} +- "
                                              f"{se:.1e}/step; sketch error {e:.1e}")

        if not changes:
            return state.ranks, replace(state, incompressible=tuple(incompressible),
                                        capped_noted=tuple(capped_noted),
                                        kept_noted=tuple(kept_noted),
                                        log=state.log + tuple(notes))
        ranks = list(state.ranks)
        last_change = list(state.last_change_step)
        last_grow = list(state.last_grow_step)
        lines = list(notes)
        for i, (target, why) in sorted(changes.items()):
            lines.append(f"step {step}: layer {i} rank {ranks[i]} -> {target} ({why})")
            ranks[i] = target
            last_change[i] = step
            errors[i] = None
            capped_noted[i] = False
            kept_noted[i] = False  # a verdict holds for one rank
            if i in grown:
                last_grow[i] = step
        state = replace(state, ranks=tuple(ranks), errors=tuple(errors),
                        last_change_step=tuple(last_change), last_grow_step=tuple(last_grow),
                        incompressible=tuple(incompressible), capped_noted=tuple(capped_noted),
                        kept_noted=tuple(kept_noted), log=state.log + tuple(lines))
        return state.ranks, state

    def _kept_line(self, step: int, layer: int, rank: int, width: int, error: float) -> str:
        verdict = (f"not compressible: rank >= {self.incompressible_fraction:g} x width, "
                   "accuracy kept over memory" if rank >= self.incompressible_fraction * width
                   else f"compressed to {rank / width:.0%} of the width, and no further")
        return (f"step {step}: layer {layer} keeps rank {rank} of width {width}: sketch error "
                f"{error:.1e} >= error_low {self.error_low:g}, so a lower rank would cost "
                f"accuracy ({verdict})")

    def enter_lbfgs(self, state: RankState) -> tuple[tuple[int, ...], RankState]:
        """Ranks for the L-BFGS phase: full width (within budget caps), with a log line.

        >>> ctrl = RankController()
        >>> ranks, state = ctrl.enter_lbfgs(ctrl.init((50, 50))[1])
        >>> ranks
        (50, 50)
        """
        full = lbfgs_ranks(state.widths)
        ranks = tuple(min(w, c) for w, c in zip(full, state.caps, strict=True))
        at = "start" if state.step is None else f"step {state.step}"
        if ranks == full:
            line = (f"{at}: L-BFGS phase: all layers at full rank {ranks} (exact gradients; a "
                    "line search needs consistent losses and gradients)")
        else:
            line = (f"{at}: L-BFGS phase: ranks {ranks}, below full rank {full} because of "
                    "the memory-budget caps; gradients stay approximate and the line search "
                    "may fail: raise the budget or skip L-BFGS")
        return ranks, replace(state, ranks=ranks, log=state.log + (line,))

"""Optimizers as pure policies with explicit state: ``init(x, f, g) -> state``,
``step(state, fg) -> (state, info)`` (see :mod:`pinnsketch.optim.protocol`).

- :mod:`~pinnsketch.optim.line_search`: the strong-Wolfe line search (Nocedal & Wright 3.5/3.6);
- :mod:`~pinnsketch.optim.quasi_newton`: dense BFGS, SSBFGS, SSBroyden and L-BFGS;
- :mod:`~pinnsketch.optim.gauss_newton`: Levenberg-Marquardt on a residual vector.

Everything works on one flat float64 parameter vector and knows nothing of PINNs.
"""

from pinnsketch.optim.gauss_newton import LevenbergMarquardt, LMState, levenberg_marquardt
from pinnsketch.optim.line_search import LineSearchResult, StrongWolfe
from pinnsketch.optim.protocol import Optimizer, OptimizerState, StepInfo
from pinnsketch.optim.quasi_newton import (
    DEFAULT_DENSE_LIMIT_BYTES,
    LBFGS,
    UPDATES,
    DenseQuasiNewton,
    DenseState,
    LBFGSState,
    bfgs,
    dense_bytes,
    fit_dense,
    lbfgs,
    ssbfgs,
    ssbroyden,
)

__all__ = ["StrongWolfe", "LineSearchResult", "Optimizer", "OptimizerState", "StepInfo",
           "DenseQuasiNewton", "DenseState", "LBFGS", "LBFGSState", "UPDATES",
           "DEFAULT_DENSE_LIMIT_BYTES", "dense_bytes", "fit_dense", "bfgs", "ssbfgs",
           "ssbroyden", "lbfgs", "LevenbergMarquardt", "LMState", "levenberg_marquardt",
           "OPTIMIZERS", "make_optimizer"]

OPTIMIZERS = ("lbfgs", "bfgs", "ssbfgs", "ssbroyden", "lm")
"""Names of the methods, for configuration files and command lines."""


def make_optimizer(name: str, **kw):
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`), built with keywords ``kw``.

    >>> make_optimizer("ssbroyden").update
    'ssbroyden'
    >>> make_optimizer("adamw")
    Traceback (most recent call last):
    ...
    ValueError: unknown optimizer 'adamw'; valid: lbfgs, bfgs, ssbfgs, ssbroyden, lm
    """
    makers = {"lbfgs": lbfgs, "bfgs": bfgs, "ssbfgs": ssbfgs, "ssbroyden": ssbroyden,
              "lm": levenberg_marquardt}
    if name not in makers:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    return makers[name](**kw)

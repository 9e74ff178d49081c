"""Sketch operators: pure tensor math for compressing a matrix; no PDE or training knowledge.

- :mod:`~pinnsketch.sketch.test_matrices`: seeded random test matrices (gaussian, sparse
  sign, SRFT), regenerated rather than stored.
- :mod:`~pinnsketch.sketch.three_sketch`: the single-pass three-sketch of Tropp et al.
  (2019), its EMA update and its low-rank reconstruction.
- :mod:`~pinnsketch.sketch.range_finder`: the two-pass randomized range finder, the
  randomized SVD and the truncated SVD, for a matrix that exists whole.
- :mod:`~pinnsketch.sketch.methods`: the storage methods' names and sizes.
- :mod:`~pinnsketch.sketch.monitor`: gradient-norm monitoring from small sketches.
"""

from pinnsketch.sketch.linear import SketchedLinear, sketchify
from pinnsketch.sketch.methods import SKETCH_METHODS, check_method, held_numel
from pinnsketch.sketch.monitor import GradientMonitor, exact_norm, exact_stable_rank
from pinnsketch.sketch.range_finder import (
    RangeFinderApprox,
    randomized_svd,
    range_finder,
    range_finder_numel,
    truncated_svd,
)
from pinnsketch.sketch.test_matrices import (
    SKETCH_FAMILIES,
    check_family,
    derive_seeds,
    test_matrix,
)
from pinnsketch.sketch.three_sketch import (
    LowRank,
    LowRankOperator,
    SketchSpec,
    SketchTestMatrices,
    ThreeSketch,
    default_core_size,
    ema_update,
    reconstruct,
    relative_error,
    sketch,
    sketch_test_matrices,
    storage_numel,
)

__all__ = [
    "SKETCH_FAMILIES",
    "SKETCH_METHODS",
    "GradientMonitor",
    "SketchedLinear",
    "sketchify",
    "check_method",
    "exact_norm",
    "exact_stable_rank",
    "held_numel",
    "truncated_svd",
    "LowRank",
    "LowRankOperator",
    "RangeFinderApprox",
    "SketchSpec",
    "SketchTestMatrices",
    "ThreeSketch",
    "check_family",
    "default_core_size",
    "derive_seeds",
    "ema_update",
    "randomized_svd",
    "range_finder",
    "range_finder_numel",
    "reconstruct",
    "relative_error",
    "sketch",
    "sketch_test_matrices",
    "storage_numel",
    "test_matrix",
]

"""Storage policies for PINN training: Taylor-mode jets, exact or sketched saved activations.

- :mod:`~pinnsketch.storage.jets`: the activation jets' hand-written VJP (the jet rules
  themselves live in :mod:`pinnsketch.network.jets`).
- :mod:`~pinnsketch.storage.functions`: the fused custom autograd Functions, exact, sketched,
  or compressed (``quant8``, ``projection``), and the options objects of each policy.
- :mod:`~pinnsketch.storage.segment`: the generic segment Function (any part of a network).
- :mod:`~pinnsketch.storage.engines`: :class:`StorageConfig`, :func:`make_engine`.
"""

from pinnsketch.storage.engines import (
    JET_MAX_ORDER,
    SKETCH_METHODS,
    STORAGE_POLICIES,
    Engine,
    StorageConfig,
    describe_stored,
    make_engine,
)
from pinnsketch.storage.functions import (
    COMPRESSORS,
    ActLinear,
    CompressedActLinear,
    CompressOptions,
    ExactOptions,
    InputLinear,
    SketchedActLinear,
    SketchOptions,
    act_linear,
    compressed_act_linear,
    input_linear,
    sketched_act_linear,
)
from pinnsketch.storage.jets import (
    JetPlan,
    activation_jets,
    activation_jets_vjp,
    input_jets,
    jet_forward_reference,
)
from pinnsketch.storage.segment import SegmentFunction, SegmentSpec, run_segment

__all__ = [
    "COMPRESSORS",
    "JET_MAX_ORDER",
    "SKETCH_METHODS",
    "STORAGE_POLICIES",
    "ActLinear",
    "CompressOptions",
    "CompressedActLinear",
    "Engine",
    "ExactOptions",
    "InputLinear",
    "JetPlan",
    "SegmentFunction",
    "SegmentSpec",
    "SketchOptions",
    "SketchedActLinear",
    "StorageConfig",
    "act_linear",
    "activation_jets",
    "activation_jets_vjp",
    "compressed_act_linear",
    "describe_stored",
    "input_jets",
    "input_linear",
    "jet_forward_reference",
    "make_engine",
    "run_segment",
    "sketched_act_linear",
]

"""Storage policies for PINN training: Taylor-mode jets, exact or sketched saved activations.

- :mod:`~pinnsketch.storage.jets`: jet plans and jet propagation (pure torch).
- :mod:`~pinnsketch.storage.functions`: the fused custom autograd Functions (the only code
  touching ctx), exact, sketched, or compressed (``quant8``, ``projection``).
- :mod:`~pinnsketch.storage.engines`: :class:`StorageConfig`, :func:`make_engine`.
"""

from pinnsketch.storage.engines import (
    SKETCH_METHODS,
    STORAGE_POLICIES,
    Engine,
    StorageConfig,
    make_engine,
)
from pinnsketch.storage.functions import (
    COMPRESSORS,
    ActLinear,
    CompressedActLinear,
    CompressOptions,
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

__all__ = [
    "COMPRESSORS",
    "SKETCH_METHODS",
    "STORAGE_POLICIES",
    "ActLinear",
    "CompressOptions",
    "CompressedActLinear",
    "Engine",
    "InputLinear",
    "JetPlan",
    "SketchOptions",
    "SketchedActLinear",
    "StorageConfig",
    "act_linear",
    "activation_jets",
    "activation_jets_vjp",
    "compressed_act_linear",
    "input_jets",
    "input_linear",
    "jet_forward_reference",
    "make_engine",
    "sketched_act_linear",
]

"""Networks declared once, as a chain of parts each with one jet rule (DESIGN.md section 8).

- :mod:`~pinnsketch.network.jets`: the jet layout (:class:`JetPlan`) and the jet rules of
  affine maps, elementwise functions, products and functions of the points.
- :mod:`~pinnsketch.network.init`: weight initialisers by name.
- :mod:`~pinnsketch.network.dense`: dense layers, plain or with random weight factorization.
- :mod:`~pinnsketch.network.inputs`: input maps (affine scaling, Fourier features, exact
  periodic embedding).
- :mod:`~pinnsketch.network.trunks`: the plain and the modified MLP.
- :mod:`~pinnsketch.network.transform`: hard constraints u = g + phi N.
- :mod:`~pinnsketch.network.program`: the segments between stored nonlinearities, which every
  storage policy runs.
- :mod:`~pinnsketch.network.network`: :class:`Network`, :class:`FieldNetworks`.
- :mod:`~pinnsketch.network.build`: a network from a ``ModelConfig``.
"""

from pinnsketch.network.build import build_network, periodic_indices
from pinnsketch.network.dense import RWF, Dense, FactorizedDense, make_dense
from pinnsketch.network.init import INITIALIZERS, check_init, init_weight
from pinnsketch.network.inputs import AffineInput, FourierFeatures, PeriodicEmbedding
from pinnsketch.network.jets import (
    JetPlan,
    activation_jets,
    coordinate_jets,
    function_jets,
    linear_jets,
    product_jets,
)
from pinnsketch.network.network import FieldNetworks, Network, NetworkBase
from pinnsketch.network.program import POINTS, Program, Segment
from pinnsketch.network.transform import OutputTransform
from pinnsketch.network.trunks import ARCHITECTURES, MLPTrunk, ModifiedMLPTrunk, make_trunk

__all__ = [
    "ARCHITECTURES", "INITIALIZERS", "POINTS", "RWF",
    "AffineInput", "Dense", "FactorizedDense", "FieldNetworks", "FourierFeatures", "JetPlan",
    "MLPTrunk", "ModifiedMLPTrunk", "Network", "NetworkBase", "OutputTransform",
    "PeriodicEmbedding", "Program", "Segment",
    "activation_jets", "build_network", "check_init", "coordinate_jets",
    "function_jets", "init_weight", "linear_jets", "make_dense", "make_trunk",
    "periodic_indices", "product_jets",
]

"""pinnsketch: physics-informed neural networks with sketched activation storage.

The public API: problems (``Problem``, domains, conditions), configurations, ``solve``.
"""

from pinnsketch._version import __version__
from pinnsketch.api import SolveResult, load_problem, resume, solve
from pinnsketch.classification import ClassifyResult, classify
from pinnsketch.config import (
    ModelConfig,
    OptimConfig,
    PhaseConfig,
    RunConfig,
    SamplingConfig,
    WeightingConfig,
)
from pinnsketch.control import RankController
from pinnsketch.pde.cole_hopf import cole_hopf_burgers
from pinnsketch.pde.conditions import (
    Dirichlet,
    Initial,
    InitialVelocity,
    Neumann,
    Periodic,
    PointData,
    Robin,
)
from pinnsketch.pde.constraints import OutputTransform
from pinnsketch.pde.derivatives import Derivatives
from pinnsketch.pde.domain import Box, interval, rectangle, space_time
from pinnsketch.pde.evaluation import EvaluationPoints
from pinnsketch.pde.fd_poisson import LSHAPE, lshape_reference
from pinnsketch.pde.geometry import (
    Difference,
    Disk,
    Domain,
    GeometryXTime,
    Intersection,
    Polygon,
    Union,
)
from pinnsketch.pde.kovasznay import kovasznay_flow
from pinnsketch.pde.observations import Observations
from pinnsketch.pde.problem import EvaluationGrid, Problem, uniform_grid
from pinnsketch.pde.spectral import etdrk4_periodic, etdrk4_periodic_system
from pinnsketch.pde.unknowns import Unknown
from pinnsketch.storage import StorageConfig
from pinnsketch.train import TrainingDiverged

__all__ = [
    "__version__",
    "Box", "interval", "rectangle", "space_time",
    "Domain", "Disk", "Polygon", "Union", "Difference", "Intersection", "GeometryXTime",
    "Derivatives", "Dirichlet", "Neumann", "Initial", "Periodic", "OutputTransform",
    "Robin", "InitialVelocity", "PointData",
    "Problem", "EvaluationGrid", "EvaluationPoints", "uniform_grid", "etdrk4_periodic",
    "Unknown", "Observations", "cole_hopf_burgers", "kovasznay_flow", "lshape_reference",
    "LSHAPE", "etdrk4_periodic_system",
    "ModelConfig", "SamplingConfig", "OptimConfig", "PhaseConfig", "WeightingConfig",
    "RunConfig", "StorageConfig",
    "solve", "resume", "load_problem", "SolveResult", "TrainingDiverged",
    "classify", "ClassifyResult", "RankController",
]

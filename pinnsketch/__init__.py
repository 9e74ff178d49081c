"""pinnsketch: physics-informed neural networks with sketched activation storage.

The public API: problems (``Problem``, domains, conditions), configurations, ``solve``.
"""

from pinnsketch._version import __version__
from pinnsketch.api import SolveResult, load_problem, resume, solve
from pinnsketch.classification import ClassifyResult, classify
from pinnsketch.config import ModelConfig, OptimConfig, RunConfig, SamplingConfig
from pinnsketch.control import RankController
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
from pinnsketch.pde.geometry import (
    Difference,
    Disk,
    Domain,
    GeometryXTime,
    Intersection,
    Polygon,
    Union,
)
from pinnsketch.pde.problem import EvaluationGrid, Problem, uniform_grid
from pinnsketch.pde.spectral import etdrk4_periodic
from pinnsketch.storage import StorageConfig
from pinnsketch.train import TrainingDiverged

__all__ = [
    "__version__",
    "Box", "interval", "rectangle", "space_time",
    "Domain", "Disk", "Polygon", "Union", "Difference", "Intersection", "GeometryXTime",
    "Derivatives", "Dirichlet", "Neumann", "Initial", "Periodic", "OutputTransform",
    "Robin", "InitialVelocity", "PointData",
    "Problem", "EvaluationGrid", "uniform_grid", "etdrk4_periodic",
    "ModelConfig", "SamplingConfig", "OptimConfig", "RunConfig", "StorageConfig",
    "solve", "resume", "load_problem", "SolveResult", "TrainingDiverged",
    "classify", "ClassifyResult", "RankController",
]

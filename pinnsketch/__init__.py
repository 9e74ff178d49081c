"""pinnsketch: physics-informed neural networks with sketched activation storage.

The public API: problems (``Problem``, domains, conditions), configurations, ``solve``.
"""

from pinnsketch._version import __version__
from pinnsketch.api import SolveResult, load_problem, resume, solve
from pinnsketch.classification import ClassifyResult, classify
from pinnsketch.config import ModelConfig, OptimConfig, RunConfig, SamplingConfig
from pinnsketch.control import RankController
from pinnsketch.pde.conditions import Dirichlet, Initial, Neumann, Periodic
from pinnsketch.pde.constraints import OutputTransform
from pinnsketch.pde.derivatives import Derivatives
from pinnsketch.pde.domain import Box, interval, rectangle, space_time
from pinnsketch.pde.problem import EvaluationGrid, Problem, uniform_grid
from pinnsketch.storage import StorageConfig
from pinnsketch.train import TrainingDiverged

__all__ = [
    "__version__",
    "Box", "interval", "rectangle", "space_time",
    "Derivatives", "Dirichlet", "Neumann", "Initial", "Periodic", "OutputTransform",
    "Problem", "EvaluationGrid", "uniform_grid",
    "ModelConfig", "SamplingConfig", "OptimConfig", "RunConfig", "StorageConfig",
    "solve", "resume", "load_problem", "SolveResult", "TrainingDiverged",
    "classify", "ClassifyResult", "RankController",
]

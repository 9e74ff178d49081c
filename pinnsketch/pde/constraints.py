"""Hard constraints declared by a problem: an output transform u = g(x) + phi(x) N(x).

N is the network's raw output for the field; g carries the prescribed values and phi vanishes
where they are prescribed, so the conditions hold for every N and leave the loss (DeepXDE's
``apply_output_transform``; Lagaris, Likas & Fotiadis 1998; Urban et al. 2024 and DeepXDE's
Allen-Cahn example). A problem returns them from ``Problem.output_transforms()``; the network
applies them with exact jets (:mod:`pinnsketch.network.transform`).

Example (Burgers on x in [-1, 1], t in [0, 1]: u(x, 0) = -sin(pi x), u(+-1, t) = 0)::

    OutputTransform(g=lambda p: -torch.sin(math.pi * p[:, 0]),
                    phi=lambda p: p[:, 1] * (1 - p[:, 0] ** 2),
                    field="u", satisfies=("boundary", "initial"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from pinnsketch._types import Points

__all__ = ["OutputTransform"]


@dataclass(frozen=True)
class OutputTransform:
    """u_field = g(x) + phi(x) * N_field(x) (module doc).

    Args:
        g, phi: pointwise functions of the (N, d) points returning (N,) tensors (each row
            depending on its own point only), differentiable twice.
        field: the output field it constrains.
        satisfies: the names (labels) of the problem's conditions it satisfies exactly;
            they leave the loss.

    Raises:
        ValueError: g or phi not callable, a field that is not a string, ``satisfies`` not
            a sequence of condition names.
    """

    g: Callable[[Points], Tensor]
    phi: Callable[[Points], Tensor]
    field: str = "u"
    satisfies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("g", "phi"):
            if not callable(getattr(self, name)):
                raise ValueError(f"OutputTransform.{name} must be a function of the points, "
                                 f"got {getattr(self, name)!r}")
        if not isinstance(self.field, str) or not self.field:
            raise ValueError(f"OutputTransform.field must be a field name, got {self.field!r}")
        sat = self.satisfies
        if isinstance(sat, str) or not all(isinstance(s, str) for s in sat):
            raise ValueError(f"OutputTransform.satisfies must be a tuple of condition names, "
                             f"e.g. ('boundary', 'initial'), got {sat!r}")
        object.__setattr__(self, "satisfies", tuple(sat))

    def check(self, points: Points) -> None:
        """Evaluate g and phi once on ``points`` (N, d) and refuse a wrong shape or a
        non-finite value.

        Raises:
            ValueError: naming the function, the shape expected and the shape returned.
        """
        n = points.shape[0]
        for name, fn in (("g", self.g), ("phi", self.phi)):
            v = fn(points)
            if not isinstance(v, Tensor) or tuple(v.shape) != (n,):
                shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                raise ValueError(f"output transform {name} of field {self.field!r} must return "
                                 f"one value per point, shape ({n},) for points of shape "
                                 f"{tuple(points.shape)}, got {shape}")
            if not bool(v.isfinite().all()):
                raise ValueError(f"output transform {name} of field {self.field!r} returned "
                                 "non-finite values inside the domain")

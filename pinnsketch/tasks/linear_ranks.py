"""The sketched linear layers of a classifier seen as one rank-controlled engine.

:class:`~pinnsketch.tasks.rank_driver.RankDriver` drives an object with ``ranks``,
``set_ranks``, ``measure_error`` and ``last_component_errors`` (the PINN sketch engine).
:class:`SketchedLayers` gives a classifier's :class:`~pinnsketch.sketch.linear.SketchedLinear`
layers that interface, so ``--sketch-rank auto`` reuses the same controller and driver: the
"residual" it follows is the training loss, the error of layer i is the exact relative
error ||a_i - a_hat_i||_F / ||a_i||_F of its kept input, measured at forward time.
"""

from __future__ import annotations

from torch import nn

from pinnsketch.sketch.linear import SketchedLinear

__all__ = ["SketchedLayers", "sketched_layers"]


def sketched_layers(model: nn.Module) -> list[SketchedLinear]:
    """The SketchedLinear modules of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, SketchedLinear)]


class SketchedLayers:
    """Ranks and measured sketch errors of a model's SketchedLinear layers (module order).

    Args:
        model: a model with at least one SketchedLinear (e.g. from ``sketchify``).

    Raises:
        ValueError: the model has no SketchedLinear layer.

    >>> import torch
    >>> from pinnsketch.sketch.linear import sketchify
    >>> net = sketchify(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)), rank=2,
    ...                 skip_last=False)
    >>> layers = SketchedLayers(net)
    >>> layers.ranks
    (2, 2)
    >>> layers.set_ranks((3, 1)); layers.measure_error = True
    >>> _ = net(torch.randn(4, 6)).sum().backward()
    >>> layers.ranks, len(layers.last_component_errors)
    ((3, 1), 2)
    """

    def __init__(self, model: nn.Module):
        self.layers = sketched_layers(model)
        if not self.layers:
            raise ValueError("the model has no SketchedLinear layer; build it with "
                             "sketchify(...) (storage 'sketch') before attaching rank control")
        self._measure = False

    def widths(self, batch_size: int) -> tuple[int, ...]:
        """Per layer the rank beyond which nothing is saved: min(batch size, in_features)."""
        return tuple(min(batch_size, layer.in_features) for layer in self.layers)

    @property
    def ranks(self) -> tuple[int, ...]:
        return tuple(layer.rank for layer in self.layers)

    def set_ranks(self, ranks: int | tuple[int, ...]) -> None:
        """Set every layer's rank (one int, or one per layer); resets EMA sketches."""
        values = tuple(ranks) if isinstance(ranks, (tuple, list)) else (ranks,) * len(self.layers)
        if len(values) != len(self.layers):
            raise ValueError(f"got {len(values)} ranks {values} for {len(self.layers)} "
                             "sketched layers; give one rank per layer or one int")
        for layer, r in zip(self.layers, values, strict=True):
            layer.set_rank(r)

    @property
    def measure_error(self) -> bool:
        return self._measure

    @measure_error.setter
    def measure_error(self, value: bool) -> None:
        self._measure = bool(value)
        for layer in self.layers:
            layer.measure_error = self._measure
            if self._measure:
                layer.last_error = None

    @property
    def last_component_errors(self) -> list[list[float]] | None:
        """[[error] per layer] from the last measured forward pass, or None if any layer was
        not measured (one component per layer: its input)."""
        errors = [layer.last_error for layer in self.layers]
        if any(e is None for e in errors):
            return None
        return [[float(e)] for e in errors]

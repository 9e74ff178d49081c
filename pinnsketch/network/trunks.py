"""Trunks: the hidden layers between the input map and the output map.

A trunk is a module with ``in_features``, ``width`` (its output width), ``depth``, an
``activation`` and one jet rule written as :class:`~pinnsketch.network.program.Segment`
pieces between its elementwise nonlinearities (:meth:`segments`), so that every storage
policy keeps each nonlinearity's pre-activation jets its own way. Segments read
``FEATURES`` (the input map's output) or earlier stored activations; the last one produces
``HIDDEN`` (the post-activation jets fed to the output map).

- :class:`MLPTrunk`: h_l = s(W_l h_{l-1} + b_l), l = 1..L. Stored: the L pre-activations.
- :class:`ModifiedMLPTrunk` (Wang, Teng & Perdikaris, "Understanding and mitigating gradient
  flow pathologies in physics-informed neural networks", SIAM J. Sci. Comput. 2021):
  encoders U = s(W_u x + b_u), V = s(W_v x + b_v); h_0 = x (the features);
  Z_l = s(W_l h_{l-1} + b_l), h_l = (1 - Z_l) U + Z_l V = U + Z_l (V - U), l = 1..L.
  The gate is a product of jets (Leibniz rule to order 2). Stored: the encoders'
  pre-activations (once, shared by every layer) and the L pre-activations.

Any dense layer may use random weight factorization (:mod:`pinnsketch.network.dense`).
"""

from __future__ import annotations

import torch
from torch import nn

from pinnsketch._types import Jets
from pinnsketch.activations import Activation, get_activation
from pinnsketch.checks import is_int
from pinnsketch.network.dense import RWF, make_dense
from pinnsketch.network.jets import JetPlan, activation_jets, product_jets
from pinnsketch.network.program import (
    FEATURES,
    HIDDEN,
    Act,
    ActDense,
    Gate,
    GateDense,
    LinearOf,
    Segment,
)

__all__ = ["ARCHITECTURES", "MLPTrunk", "ModifiedMLPTrunk", "make_trunk"]

ARCHITECTURES = ("mlp", "modified")
"""Trunk names: the plain MLP and the modified MLP."""


def _check_size(name: str, v: object) -> int:
    if not is_int(v) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return v


class MLPTrunk(nn.Module):
    """``depth`` hidden layers of ``width`` units, h_l = s(W_l h_{l-1} + b_l).

    Args:
        in_features: width of the input map's output.
        width, depth: hidden size and number of hidden layers (both >= 1).
        activation: a name in :data:`pinnsketch.activations.ACTIVATIONS`.
        init: a name in :data:`pinnsketch.network.init.INITIALIZERS`.
        rwf: random weight factorization of every layer, or None.
        generator: draws the weights, layer by layer.
    """

    def __init__(self, in_features: int, width: int, depth: int, activation: str = "tanh", *,
                 init: str = "glorot", rwf: RWF | None = None,
                 generator: torch.Generator, dtype=torch.float32):
        super().__init__()
        _check_size("width", width)
        _check_size("depth", depth)
        self.in_features, self.width, self.depth = in_features, width, depth
        self.activation: Activation = get_activation(activation)
        sizes = [in_features] + [width] * depth
        self.layers = nn.ModuleList(
            make_dense(a, b, init=init, rwf=rwf, generator=generator, dtype=dtype)
            for a, b in zip(sizes, sizes[1:]))

    def dense_layers(self) -> list[nn.Module]:
        return list(self.layers)

    def stored(self) -> tuple[tuple[str, int], ...]:
        return tuple((f"hidden{l + 1}", self.width) for l in range(self.depth))

    def segments(self) -> tuple[Segment, ...]:
        act, layers = self.activation, self.layers

        def first(plan: JetPlan | None, F: Jets) -> Jets:
            return layers[0].jets(F)

        def hidden(dense):
            def rule(plan: JetPlan | None, Z: Jets) -> Jets:
                return dense.jets(activation_jets(act, Z, plan))
            return rule

        def head(plan: JetPlan | None, Z: Jets) -> Jets:
            return activation_jets(act, Z, plan)

        segs = [Segment("hidden1", (FEATURES,), first, (layers[0],), LinearOf(layers[0]))]
        for l in range(1, self.depth):
            segs.append(Segment(f"hidden{l + 1}", (f"hidden{l}",), hidden(layers[l]),
                                (layers[l],), ActDense(act, layers[l])))
        segs.append(Segment(HIDDEN, (f"hidden{self.depth}",), head, (), Act(act)))
        return tuple(segs)


class ModifiedMLPTrunk(nn.Module):
    """The modified MLP: gated hidden layers mixing two encoders of the input (module doc).

    Arguments as for :class:`MLPTrunk`; the encoders have ``width`` units each.
    """

    def __init__(self, in_features: int, width: int, depth: int, activation: str = "tanh", *,
                 init: str = "glorot", rwf: RWF | None = None,
                 generator: torch.Generator, dtype=torch.float32):
        super().__init__()
        _check_size("width", width)
        _check_size("depth", depth)
        self.in_features, self.width, self.depth = in_features, width, depth
        self.activation: Activation = get_activation(activation)

        def dense(a: int, b: int):
            return make_dense(a, b, init=init, rwf=rwf, generator=generator, dtype=dtype)

        self.encoder_u = dense(in_features, width)
        self.encoder_v = dense(in_features, width)
        sizes = [in_features] + [width] * depth
        self.layers = nn.ModuleList(dense(a, b) for a, b in zip(sizes, sizes[1:]))

    def dense_layers(self) -> list[nn.Module]:
        return [self.encoder_u, self.encoder_v, *self.layers]

    def stored(self) -> tuple[tuple[str, int], ...]:
        return (("encoder_u", self.width), ("encoder_v", self.width)) + tuple(
            (f"hidden{l + 1}", self.width) for l in range(self.depth))

    def gate(self, plan: JetPlan | None, Z: Jets, Pu: Jets, Pv: Jets) -> Jets:
        """Jets of (1 - s(z)) U + s(z) V = U + s(z) (V - U), U = s(p_u), V = s(p_v)."""
        act = self.activation
        U = activation_jets(act, Pu, plan)
        V = activation_jets(act, Pv, plan)
        return U + product_jets(activation_jets(act, Z, plan), V - U, plan)

    def segments(self) -> tuple[Segment, ...]:
        layers, enc = self.layers, ("encoder_u", "encoder_v")

        def linear(dense):
            def rule(plan: JetPlan | None, F: Jets) -> Jets:
                return dense.jets(F)
            return rule

        def gated(dense):
            def rule(plan: JetPlan | None, Z: Jets, Pu: Jets, Pv: Jets) -> Jets:
                return dense.jets(self.gate(plan, Z, Pu, Pv))
            return rule

        def head(plan: JetPlan | None, Z: Jets, Pu: Jets, Pv: Jets) -> Jets:
            return self.gate(plan, Z, Pu, Pv)

        segs = [Segment("encoder_u", (FEATURES,), linear(self.encoder_u), (self.encoder_u,),
                        LinearOf(self.encoder_u)),
                Segment("encoder_v", (FEATURES,), linear(self.encoder_v), (self.encoder_v,),
                        LinearOf(self.encoder_v)),
                Segment("hidden1", (FEATURES,), linear(layers[0]), (layers[0],),
                        LinearOf(layers[0]))]
        for l in range(1, self.depth):
            segs.append(Segment(f"hidden{l + 1}", (f"hidden{l}", *enc), gated(layers[l]),
                                (layers[l],), GateDense(self.activation, layers[l])))
        segs.append(Segment(HIDDEN, (f"hidden{self.depth}", *enc), head, (),
                            Gate(self.activation)))
        return tuple(segs)


def make_trunk(arch: str, in_features: int, width: int, depth: int, activation: str = "tanh",
               *, init: str = "glorot", rwf: RWF | None = None, generator: torch.Generator,
               dtype=torch.float32) -> MLPTrunk | ModifiedMLPTrunk:
    """The trunk named ``arch`` (one of :data:`ARCHITECTURES`).

    Raises:
        ValueError: an unknown architecture (the message lists the valid ones).
    """
    kinds = {"mlp": MLPTrunk, "modified": ModifiedMLPTrunk}
    if arch not in kinds:
        raise ValueError(f"unknown architecture {arch!r}; valid architectures: "
                         f"{', '.join(ARCHITECTURES)}")
    return kinds[arch](in_features, width, depth, activation, init=init, rwf=rwf,
                       generator=generator, dtype=dtype)

"""A PINN network: input maps -> trunk -> output map (-> output transforms), declared once.

:class:`Network` chains the parts; :class:`FieldNetworks` holds one network per output
field. Both compile to one :class:`~pinnsketch.network.program.Program` (their jet rule, cut
at the stored nonlinearities), which is everything any storage policy runs:

- ``net.jets(points, plan)``: output jets (J, N, F), plain differentiable torch;
- ``net(points)``: values (N, F), the same code with ``plan=None`` (plain values: exactly the
  ops of a plain forward pass);
- ``net.stored``: (name, width) of every stored activation (held-bytes formulas, ranks).

>>> import torch
>>> from pinnsketch.network import AffineInput, Dense, MLPTrunk, Network
>>> g = torch.Generator().manual_seed(0)
>>> net = Network([AffineInput((0.0, 0.0), (1.0, 1.0))],
...               MLPTrunk(2, width=8, depth=2, generator=g), Dense(8, 2, generator=g),
...               fields=("u", "v"))
>>> net(torch.zeros(5, 2)).shape, net.stored_widths
(torch.Size([5, 2]), (8, 8))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from pinnsketch._types import Jets, Points
from pinnsketch.network.inputs import AffineInput
from pinnsketch.network.jets import JetPlan, coordinate_jets
from pinnsketch.network.program import (
    FEATURES,
    HIDDEN,
    POINTS,
    Act,
    ActDense,
    AffineDense,
    Gate,
    GateDense,
    LinearOf,
    Program,
    Segment,
)
from pinnsketch.network.transform import OutputTransform, apply_transforms, check_transforms
from pinnsketch.pde.derivatives import check_fields

__all__ = ["NetworkBase", "Network", "FieldNetworks"]


class NetworkBase(nn.Module):
    """What every storage policy needs of a network (see the module doc)."""

    fields: tuple[str, ...]
    in_features: int

    def program(self) -> Program:
        raise NotImplementedError

    @property
    def stored(self) -> tuple[tuple[str, int], ...]:
        """(name, width) of every stored activation, in production order."""
        return self.program().stored

    @property
    def stored_widths(self) -> tuple[int, ...]:
        return tuple(w for _, w in self.stored)

    @property
    def periodic_coords(self) -> tuple[int, ...]:
        """Coordinates in which the network is periodic by construction (its input map)."""
        return ()

    @property
    def output_transforms(self) -> tuple[OutputTransform, ...]:
        return ()

    def set_output_transforms(self, transforms: Sequence[OutputTransform]) -> None:
        raise NotImplementedError

    def jets(self, points: Points, plan: JetPlan | None) -> Jets:
        """Output jets (J, N, F) (plain differentiable torch); ``plan=None``: values (N, F)."""
        if points.dim() != 2 or points.shape[1] != self.in_features:
            raise ValueError(f"points must be (N, {self.in_features}), got "
                             f"{tuple(points.shape)}")
        return self.program().run(points, plan)

    def forward(self, points: Points) -> Tensor:
        """Values (N, F): the jet rule with ``plan=None``."""
        return self.jets(points, None)


class Network(NetworkBase):
    """Input maps -> trunk -> output map (-> output transforms).

    Args:
        inputs: input maps applied in order to the coordinates (e.g. ``[AffineInput(lo,
            hi)]``, ``[AffineInput(lo, hi), FourierFeatures(...)]``,
            ``[PeriodicEmbedding(...)]``).
        trunk: an :class:`~pinnsketch.network.trunks.MLPTrunk` or
            :class:`~pinnsketch.network.trunks.ModifiedMLPTrunk` (any module with their
            protocol) reading the last input map's output.
        output: the output map, a dense layer trunk.width -> len(fields).
        fields: names of the output fields (default ``("u",)``).
        transforms: output transforms (hard constraints), at most one per field.

    Raises:
        ValueError: widths that do not chain, a bad field list, a transform of an unknown
            field.
    """

    def __init__(self, inputs: Sequence[nn.Module], trunk: nn.Module, output: nn.Module,
                 fields: Sequence[str] = ("u",),
                 transforms: Sequence[OutputTransform] = ()):
        super().__init__()
        if not inputs:
            raise ValueError("a network needs at least one input map, e.g. "
                             "[AffineInput(domain.lo, domain.hi)]")
        self.inputs = nn.ModuleList(inputs)
        for a, b in zip(self.inputs, self.inputs[1:]):
            if a.out_features != b.in_features:
                raise ValueError(f"input map {type(b).__name__} takes {b.in_features} features "
                                 f"but {type(a).__name__} gives {a.out_features}")
        if self.inputs[-1].out_features != trunk.in_features:
            raise ValueError(f"the trunk takes {trunk.in_features} features but the input maps "
                             f"give {self.inputs[-1].out_features}")
        self.trunk = trunk
        self.fields = check_fields(fields)
        if output.in_features != trunk.width or output.out_features != len(self.fields):
            raise ValueError(f"the output map must be {trunk.width} -> {len(self.fields)} "
                             f"(trunk width -> one output per field {self.fields}), got "
                             f"{output.in_features} -> {output.out_features}")
        self.output = output
        self.in_features = self.inputs[0].in_features
        self._transforms: tuple[OutputTransform, ...] = ()
        self.set_output_transforms(transforms)

    # --- the description ---

    def features(self, points: Points, plan: JetPlan | None) -> Jets:
        """Jets of the input maps' output at the points."""
        H = coordinate_jets(points, plan)
        for m in self.inputs:
            H = m.jets(H, plan)
        return H

    def program(self) -> Program:
        segs = [self._from_points(s) for s in self.trunk.segments()]
        *body, head = segs
        if head.output != HIDDEN:
            raise ValueError(f"a trunk's last segment must produce {HIDDEN!r}")
        return Program(tuple(body) + (self._output_segment(head),), self.trunk.stored(),
                       ("output",))

    def _from_points(self, seg: Segment) -> Segment:
        """``seg`` with its FEATURES input replaced by the points through the input maps."""
        if FEATURES not in seg.inputs:
            return seg
        at = seg.inputs.index(FEATURES)
        rule = seg.rule

        def composed(plan: JetPlan | None, *args: Tensor) -> Jets:
            args = list(args)
            args[at] = self.features(args[at], plan)
            return rule(plan, *args)

        fast = None
        if isinstance(seg.fast, LinearOf) and len(self.inputs) == 1 \
                and type(self.inputs[0]) is AffineInput:
            fast = AffineDense(self.inputs[0], seg.fast.dense)
        inputs = tuple(POINTS if n == FEATURES else n for n in seg.inputs)
        return Segment(seg.output, inputs, composed, (*self.inputs, *seg.modules), fast)

    def _output_segment(self, head: Segment) -> Segment:
        out, fields, transforms = self.output, self.fields, self._transforms
        inputs = head.inputs
        if transforms and POINTS not in inputs:
            inputs = inputs + (POINTS,)
        at = inputs.index(POINTS) if transforms else None
        n_head = len(head.inputs)

        def rule(plan: JetPlan | None, *args: Tensor) -> Jets:
            y = out.jets(head.rule(plan, *args[:n_head]))
            return y if not transforms else apply_transforms(transforms, fields, args[at], y, plan)

        fast = None
        if isinstance(head.fast, Act) and not transforms:
            fast = ActDense(head.fast.act, out)
        elif isinstance(head.fast, Gate) and not transforms:
            fast = GateDense(head.fast.act, out)
        return Segment("output", inputs, rule, (*head.modules, out), fast)

    # --- transforms, periodicity ---

    @property
    def output_transforms(self) -> tuple[OutputTransform, ...]:
        return self._transforms

    def set_output_transforms(self, transforms: Sequence[OutputTransform]) -> None:
        """Replace the output transforms (hard constraints), at most one per field."""
        transforms = tuple(transforms)
        check_transforms(transforms, self.fields)
        self._transforms = transforms

    @property
    def periodic_coords(self) -> tuple[int, ...]:
        return tuple(sorted({c for m in self.inputs for c in getattr(m, "periodic_coords", ())}))

    # --- conveniences of the plain MLP (pinnsketch.model.MLP, notebooks, DeepXDE parity) ---

    @property
    def layers(self) -> list[nn.Module]:
        """Every dense layer of the trunk, then the output map."""
        return [*self.trunk.dense_layers(), self.output]

    @property
    def activation(self):
        return self.trunk.activation

    @property
    def width(self) -> int:
        return self.trunk.width

    @property
    def depth(self) -> int:
        return self.trunk.depth

    def _affine(self) -> AffineInput:
        first = self.inputs[0]
        if not isinstance(first, AffineInput):
            raise AttributeError(f"this network's first input map is {type(first).__name__}, "
                                 "not an AffineInput")
        return first

    @property
    def in_scale(self) -> Tensor:
        return self._affine().in_scale

    @property
    def in_shift(self) -> Tensor:
        return self._affine().in_shift


class FieldNetworks(NetworkBase):
    """One :class:`Network` per output field, evaluated side by side.

    Args:
        nets: field name -> a network with that single field (same input dimension).

    Stored activations are named ``"<field>.<name>"``.
    """

    def __init__(self, nets: Mapping[str, Network]):
        super().__init__()
        self.fields = check_fields(tuple(nets))
        dims = set()
        for f, net in nets.items():
            if not isinstance(net, Network) or net.fields != (f,):
                raise ValueError(f"FieldNetworks needs, for field {f!r}, a Network with "
                                 f"fields=({f!r},)")
            dims.add(net.in_features)
        if len(dims) != 1:
            raise ValueError(f"the per-field networks take different input sizes {sorted(dims)}")
        self.nets = nn.ModuleDict(dict(nets))
        self.in_features = dims.pop()

    def program(self) -> Program:
        segs, stored, outputs = [], [], []
        for f, net in self.nets.items():
            prog = net.program()

            def name(n: str, f=f) -> str:
                return n if n == POINTS else f"{f}.{n}"

            segs.extend(Segment(name(s.output), tuple(name(n) for n in s.inputs), s.rule,
                                s.modules, s.fast) for s in prog.segments)
            stored.extend((name(n), w) for n, w in prog.stored)
            outputs.extend(name(n) for n in prog.outputs)
        return Program(tuple(segs), tuple(stored), tuple(outputs))

    @property
    def output_transforms(self) -> tuple[OutputTransform, ...]:
        return tuple(t for net in self.nets.values() for t in net.output_transforms)

    def set_output_transforms(self, transforms: Sequence[OutputTransform]) -> None:
        transforms = tuple(transforms)
        check_transforms(transforms, self.fields)
        for f, net in self.nets.items():
            net.set_output_transforms(tuple(t for t in transforms if t.field == f))

    @property
    def periodic_coords(self) -> tuple[int, ...]:
        sets = [set(net.periodic_coords) for net in self.nets.values()]
        return tuple(sorted(set.intersection(*sets)))

"""A network as a chain of segments between the nonlinearities whose inputs are stored.

Every storage policy runs the same description (DESIGN.md section 8). A network declares its
*stored activations*: the pre-activation jets Z of the elementwise nonlinearities of its
trunk, each with a name and a width. A :class:`Segment` computes one of them (or the output)
from earlier stored activations and/or the points, in plain differentiable torch on jets; its
``rule`` is the only code that says what the network computes there. Then:

- plain evaluation (:meth:`Program.run`; ``net.jets``, ``net(x)``, the ``checkpoint`` and
  ``autograd`` policies) calls the rules in order;
- the jet storage policies (:mod:`pinnsketch.storage`) call each rule inside a custom autograd
  Function that keeps its stored inputs the policy's way (exact, sketched, quantized,
  projected) and in backward rebuilds them and differentiates the same rule.

``fast`` tags say that a rule equals one of the hand-fused Functions of
:mod:`pinnsketch.storage.functions`, which the engines then use for speed (the float64 tests
check that both routes agree to round-off).

Input names: :data:`POINTS` is the (N, d) points themselves (kept by every policy); any other
name is a stored activation produced by an earlier segment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from pinnsketch._types import Jets, Points
from pinnsketch.activations import Activation
from pinnsketch.network.jets import JetPlan

__all__ = ["POINTS", "FEATURES", "HIDDEN", "ActDense", "AffineDense", "GateDense", "LinearOf",
           "Act", "Gate", "Segment", "Program"]

POINTS = "points"
"""Input name of the raw (N, d) points."""
FEATURES = "features"
"""Input name (inside a trunk) of the input map's output jets; the network replaces it by
:data:`POINTS` composed with its input maps."""
HIDDEN = "hidden"
"""Output name (inside a trunk) of the trunk's last (post-activation) jets; the network feeds
it to the output map."""


@dataclass(frozen=True, eq=False)
class ActDense:
    """Fast-path tag: the rule is ``dense(act(Z))`` of its single stored input Z."""

    act: Activation
    dense: nn.Module


@dataclass(frozen=True, eq=False)
class AffineDense:
    """Fast-path tag: the rule is ``dense(affine(x))`` of the points."""

    affine: nn.Module
    dense: nn.Module


@dataclass(frozen=True, eq=False)
class GateDense:
    """Fast-path tag: the rule is ``dense(U + s(Z) (V - U))``, U = s(P_u), V = s(P_v), of its
    inputs (Z, P_u, P_v) (the modified MLP's gated layer)."""

    act: Activation
    dense: nn.Module


@dataclass(frozen=True, eq=False)
class Gate:
    """Trunk-level tag: the head rule is the gate ``U + s(Z) (V - U)`` of (Z, P_u, P_v)."""

    act: Activation


@dataclass(frozen=True, eq=False)
class LinearOf:
    """Trunk-level tag: the rule is ``dense(features)``."""

    dense: nn.Module


@dataclass(frozen=True, eq=False)
class Act:
    """Trunk-level tag: the head rule is ``act(Z)`` of its single stored input Z."""

    act: Activation


@dataclass(frozen=True, eq=False)
class Segment:
    """One piece of a network between stored nonlinearities.

    Attributes:
        output: the name of what it computes (a stored activation, or an output).
        inputs: the names it reads (:data:`POINTS` or stored activations), in the order
            ``rule`` takes them.
        rule: ``rule(plan, *inputs) -> jets`` in plain differentiable torch (``plan=None``:
            values on (N, w) tensors); row i of the output depends on row i of every input
            only (points are independent).
        modules: the modules whose parameters ``rule`` reads.
        fast: a tag naming an equivalent fused Function, or None.
    """

    output: str
    inputs: tuple[str, ...]
    rule: Callable[..., Jets]
    modules: tuple[nn.Module, ...]
    fast: ActDense | AffineDense | GateDense | LinearOf | Act | Gate | None = None

    def parameters(self) -> tuple[nn.Parameter, ...]:
        """The distinct parameters of ``modules``, in order."""
        seen: dict[int, nn.Parameter] = {}
        for m in self.modules:
            for p in m.parameters():
                seen.setdefault(id(p), p)
        return tuple(seen.values())


@dataclass(frozen=True, eq=False)
class Program:
    """The segments of a network, its stored activations and its outputs.

    Attributes:
        segments: in evaluation order.
        stored: (name, width) of every stored activation, in production order.
        outputs: names whose jets, concatenated along the features, are the network's
            output jets (J, N, F), one column per field.

    Raises:
        ValueError: a segment reading a name not produced before it, a name produced twice,
            a stored activation without a producer, an output never produced.
    """

    segments: tuple[Segment, ...]
    stored: tuple[tuple[str, int], ...]
    outputs: tuple[str, ...]

    def __post_init__(self) -> None:
        made: set[str] = set()
        for seg in self.segments:
            for name in seg.inputs:
                if name != POINTS and name not in made:
                    raise ValueError(f"segment {seg.output!r} reads {name!r} before it is made")
            if seg.output in made or seg.output == POINTS:
                raise ValueError(f"segment output {seg.output!r} is produced twice")
            made.add(seg.output)
        names = [n for n, _ in self.stored]
        if len(set(names)) != len(names) or not set(names) <= made:
            raise ValueError(f"stored activations {names} must be distinct segment outputs")
        if not self.outputs or not set(self.outputs) <= made - set(names):
            raise ValueError(f"outputs {self.outputs} must be produced and not stored")

    def consumers(self) -> dict[str, int]:
        """How many segments read each stored activation."""
        counts = {name: 0 for name, _ in self.stored}
        for seg in self.segments:
            for name in seg.inputs:
                if name in counts:
                    counts[name] += 1
        return counts

    def last_use(self) -> dict[str, int]:
        """Index of the last segment reading each name (after it, the name can be freed)."""
        last: dict[str, int] = {}
        for i, seg in enumerate(self.segments):
            for name in seg.inputs:
                last[name] = i
        return last

    def run(self, points: Points, plan: JetPlan | None) -> Jets:
        """Output jets (J, N, F) by calling every rule in order (plain differentiable torch);
        ``plan=None``: values (N, F)."""
        values: dict[str, Jets] = {POINTS: points}
        last = self.last_use()
        for i, seg in enumerate(self.segments):
            values[seg.output] = seg.rule(plan, *(values[n] for n in seg.inputs))
            for name in seg.inputs:
                if last[name] == i and name != POINTS:
                    del values[name]
        outs = [values[n] for n in self.outputs]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)

"""Build a network from a model configuration (the choices of ``ModelConfig`` and the CLI).

Parts, in the order their weights are drawn from the generator: the input maps (a periodic
embedding of the chosen coordinates, else the affine scaling; then Fourier features), the
trunk (``arch``), the output map; with several fields and ``per_field``, one such network
per field, field by field. The plain default draws exactly as the original MLP did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from pinnsketch.network.dense import RWF, make_dense
from pinnsketch.network.inputs import AffineInput, FourierFeatures, PeriodicEmbedding
from pinnsketch.network.network import FieldNetworks, Network, NetworkBase
from pinnsketch.network.trunks import make_trunk
from pinnsketch.pde.derivatives import check_fields

if TYPE_CHECKING:  # pragma: no cover
    from pinnsketch.config import ModelConfig
    from pinnsketch.pde.domain import Box

__all__ = ["build_network", "periodic_indices"]


def periodic_indices(periodic: Sequence[str], domain: Box) -> tuple[int, ...]:
    """Column indices of the periodic coordinates named in ``periodic``.

    Raises:
        ValueError: a name that is not a coordinate of the domain (the message lists them).
    """
    out = []
    for name in periodic:
        if name not in domain.names:
            raise ValueError(f"periodic coordinate {name!r} is not a coordinate of this domain; "
                             f"its coordinates: {', '.join(domain.names)}")
        out.append(domain.names.index(name))
    return tuple(out)


def build_network(model: ModelConfig, domain: Box, fields: Sequence[str] = ("u",), *,
                  generator: torch.Generator, dtype: torch.dtype = torch.float32
                  ) -> NetworkBase:
    """The network that ``model`` describes, for ``domain`` and the output ``fields``.

    Raises:
        ValueError: a periodic coordinate outside the domain, bad field names.
    """
    fields = check_fields(fields, domain)
    periodic = periodic_indices(model.periodic, domain)
    rwf = RWF(*model.rwf) if model.rwf is not None else None

    def one(names: tuple[str, ...]) -> Network:
        if periodic:
            maps = [PeriodicEmbedding(domain.lo, domain.hi, periodic, model.harmonics, dtype)]
        else:
            maps = [AffineInput(domain.lo, domain.hi, dtype)]
        if model.fourier_features:
            maps.append(FourierFeatures(maps[-1].out_features, model.fourier_features,
                                        model.fourier_sigma, model.fourier_trainable,
                                        generator=generator, dtype=dtype))
        trunk = make_trunk(model.arch, maps[-1].out_features, model.width, model.depth,
                           model.activation, init=model.init, rwf=rwf, generator=generator,
                           dtype=dtype)
        out = make_dense(model.width, len(names), init=model.init, rwf=rwf,
                         generator=generator, dtype=dtype)
        return Network(maps, trunk, out, names)

    if model.per_field and len(fields) > 1:
        return FieldNetworks({f: one((f,)) for f in fields})
    return one(fields)

"""Tensor shape aliases used in signatures and docstrings across pinnsketch.

The names document shapes; they are plain ``torch.Tensor`` at run time.
"""

from __future__ import annotations

from torch import Tensor

Points = Tensor
"""(N, d) coordinates of N points in a d-dimensional (space x time) domain."""

Field = Tensor
"""(N,) one scalar value per point (a solution, a residual, a derivative)."""

Jets = Tensor
"""(J, N, w) stacked jet components of a layer: J components (value, first and second
derivatives) for N points and w features."""

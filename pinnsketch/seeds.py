"""Seeds derived from seeds: one definition for points, sketches and test matrices.

A run has one seed; every random object (a batch of points, a layer's sketch at a forward
call, a test matrix) draws from a seed derived from words such as (run seed, batch index,
point set) with numpy's ``SeedSequence``, so distinct word tuples give independent streams
and nothing reads a global random state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pinnsketch.checks import is_int

__all__ = ["derive_seed", "derive_seeds"]


def derive_seeds(words: int | Sequence[int], count: int) -> tuple[int, ...]:
    """``count`` distinct seeds in [0, 2**63) from integer words (any sign).

    The seeds are the first ``count`` 64-bit words of ``SeedSequence(words mod 2**64)``
    shifted right by one bit.

    Raises:
        ValueError: ``count < 1`` or a word that is not an integer.
        RuntimeError: two seeds collide (probability about count^2 / 2^64).

    >>> derive_seeds((0, 1), 3) == derive_seeds((0, 1), 3) != derive_seeds((0, 2), 3)
    True
    """
    entropy = [words] if is_int(words) else list(words)
    if not entropy or not all(is_int(w) for w in entropy):
        raise ValueError(f"seed words must be integers, got {words!r}")
    if not is_int(count) or count < 1:
        raise ValueError(f"count must be an int >= 1, got {count!r}")
    state = np.random.SeedSequence([int(w) % 2**64 for w in entropy]).generate_state(
        count, np.uint64)
    seeds = tuple(int(w >> np.uint64(1)) for w in state)
    if len(set(seeds)) != count:
        raise RuntimeError(f"seeds derived from {words!r} collide; choose another seed")
    return seeds


def derive_seed(*words: int) -> int:
    """One seed in [0, 2**63) from integer words, e.g. (run seed, batch index, point set).

    >>> derive_seed(0, -1, 2) == derive_seed(0, -1, 2) != derive_seed(0, -1, 3)
    True
    """
    return derive_seeds(words, 1)[0]

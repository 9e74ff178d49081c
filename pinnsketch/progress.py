"""Progress display for long runs: a tqdm bar with loss, L2 error, held bytes and it/s."""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

__all__ = ["Progress"]


def _fmt(value: float) -> str:
    return f"{value:.3e}"


class Progress:
    """A progress bar over training iterations; ``quiet`` prints nothing at all."""

    def __init__(self, total: int, initial: int = 0, quiet: bool = False):
        self.quiet = quiet
        self.bar = None if quiet else tqdm(total=total, initial=initial, unit="it",
                                           dynamic_ncols=True, file=sys.stderr,
                                           mininterval=0.5)
        self.last_l2: float | None = None

    def update(self, n: int) -> None:
        if self.bar is not None and n:
            self.bar.update(n)

    def show(self, row: dict[str, Any]) -> None:
        if self.bar is None:
            return
        if row.get("l2_relative_error") is not None:
            self.last_l2 = row["l2_relative_error"]
        post = {"phase": row.get("phase")}
        if row.get("loss") is not None:
            post["loss"] = _fmt(row["loss"])
        if self.last_l2 is not None:
            post["L2"] = _fmt(self.last_l2)
        if row.get("held_bytes_per_point") is not None:
            post["held B/pt"] = f"{row['held_bytes_per_point']:.0f}"
        self.bar.set_postfix(post, refresh=False)

    def note(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

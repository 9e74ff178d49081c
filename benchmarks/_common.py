"""Shared helpers of the benchmark scripts: a PINN task on a built-in problem, tables."""

from __future__ import annotations

import csv
import os
import platform
from pathlib import Path

import torch

from pinnsketch import ModelConfig, OptimConfig, SamplingConfig, StorageConfig, load_problem
from pinnsketch.tasks.pinn import PINNTask


def make_task(problem: str, width: int, depth: int, points: int, storage: StorageConfig,
              seed: int = 0, dtype: torch.dtype = torch.float32, chunk_size: int = 0,
              lr: float = 1e-3, arch: str = "mlp") -> PINNTask:
    """A PINNTask with ``points`` interior points and small condition sets."""
    return PINNTask(load_problem(problem), ModelConfig(width=width, depth=depth, arch=arch),
                    SamplingConfig(collocation=points, boundary=200, initial=256),
                    OptimConfig(chunk_size=chunk_size, lr=lr), storage, seed=seed, dtype=dtype)


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def write_table(rows: list[dict], out: Path, stem: str, command: str, title: str,
                cols: list[str] | None = None, floatfmt: str = ".3g") -> str:
    """Write ``stem``.csv and ``stem``.md under ``out``; return the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    cols = cols or list(dict.fromkeys(k for r in rows for k in r))
    with open(out / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

    def cell(v):
        if isinstance(v, float):
            return format(v, floatfmt)
        return "" if v is None else str(v)

    lines = [f"### {title}", "", f"Command: `{command}` ({machine()})", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    md = "\n".join(lines) + "\n"
    (out / f"{stem}.md").write_text(md)
    return md

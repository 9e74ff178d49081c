"""Convergence of the reaction-diffusion reference (Fourier pseudo-spectral + ETDRK4 for the
two-species system) in modes and step.

For each resolution pair, the largest change of u and of v on the problem's 128 x 201
evaluation grid and the relative L2 change of both, plus the solve time (a ratio only: the
cores may be shared). Rows: modes doubled at the problem's step, the step halved at the
problem's modes (the ratio of successive changes is 2^4 = 16 for a fourth-order scheme).

    python benchmarks/reaction_diffusion_convergence.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_table  # noqa: E402

from pinnsketch import load_problem  # noqa: E402

MODES_DEFAULT, DT_DEFAULT = 128, 1e-3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    problem = load_problem("reaction_diffusion_inverse")
    pts = problem.evaluation_grid().coordinates()
    cache: dict[tuple[int, float], tuple[np.ndarray, float]] = {}

    def solve(modes: int, dt: float) -> tuple[np.ndarray, float]:
        if (modes, dt) not in cache:
            t0 = time.perf_counter()
            u, v = problem.spectral_reference(modes=modes, dt=dt)
            cache[modes, dt] = (torch.stack([u(pts), v(pts)], 1).numpy(), time.perf_counter() - t0)
        return cache[modes, dt]

    pairs = ([("modes", (m, DT_DEFAULT), (2 * m, DT_DEFAULT)) for m in (16, 32, 64, 128)]
             + [("step", (MODES_DEFAULT, dt), (MODES_DEFAULT, dt / 2))
                for dt in (5e-3, 2.5e-3, 1.25e-3)]
             + [("step", (MODES_DEFAULT, DT_DEFAULT), (MODES_DEFAULT, DT_DEFAULT / 2))])
    rows, prev = [], None
    for kind, a, b in pairs:
        ua, sa = solve(*a)
        ub, _ = solve(*b)
        d = np.abs(ua - ub)
        change = float(d.max())
        chained = prev is not None and prev[0] == a  # the previous row refined to this one's start
        rows.append({"refine": kind, "from": f"{a[0]} pts, dt {a[1]:g}",
                     "to": f"{b[0]} pts, dt {b[1]:g}", "max change u": float(d[:, 0].max()),
                     "max change v": float(d[:, 1].max()),
                     "rel L2 change": float(np.linalg.norm(ua - ub) / np.linalg.norm(ub)),
                     "previous change / this": prev[1] / change if chained else None,
                     "solve s (from)": sa})
        prev = (b, change)
    md = write_table(rows, Path(args.out), "reaction_diffusion_convergence",
                     "python benchmarks/reaction_diffusion_convergence.py",
                     "Reaction-diffusion reference: change on the 128 x 201 grid under "
                     "refinement (the problem's default is 128 points, dt 1e-3; cores shared, "
                     "times are ratios only)", floatfmt=".2e")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

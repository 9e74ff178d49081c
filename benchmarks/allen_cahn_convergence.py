"""Convergence of the Allen-Cahn reference (Fourier pseudo-spectral + ETDRK4) in modes and step.

For each resolution pair the change of the reference on the problem's 512 x 201 evaluation
grid is reported: the largest change at t >= 0.05, at t >= 0.005, over the whole grid, and the
relative L2 change over the whole grid, plus the solve time (a ratio only: the cores may be
shared). Rows: modes doubled at a fixed step, the step halved at fixed modes, and both.

    python benchmarks/allen_cahn_convergence.py
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    problem = load_problem("allen_cahn")
    grid = problem.evaluation_grid()
    x = grid.axes[0].numpy()
    cache: dict[tuple[int, float], tuple[np.ndarray, float]] = {}

    def solve(modes: int, dt: float) -> tuple[np.ndarray, float]:
        if (modes, dt) not in cache:
            t0 = time.perf_counter()
            sol = problem.spectral_reference(modes=modes, dt=dt, check=False)
            cache[modes, dt] = (sol.snapshots(x), time.perf_counter() - t0)
        return cache[modes, dt]

    t = grid.axes[1].numpy()
    late, early = t >= 0.05 - 1e-12, t >= 0.005 - 1e-12
    pairs = ([("modes", (m, 1e-3), (2 * m, 1e-3)) for m in (512, 1024, 2048, 4096)]
             + [("step", (2048, dt), (2048, dt / 2)) for dt in (5e-3, 2.5e-3, 1e-3)]
             + [("both", (m, dt), (2 * m, dt / 2)) for m, dt in ((1024, 2.5e-3), (2048, 1e-3))])
    rows = []
    for kind, a, b in pairs:
        ua, sa = solve(*a)
        ub, _ = solve(*b)
        d = np.abs(ua - ub)
        rows.append({"refine": kind, "from": f"{a[0]} pts, dt {a[1]:g}", "to": f"{b[0]} pts, dt {b[1]:g}",
                     "max change t>=0.05": float(d[late].max()), "max change t>=0.005": float(d[early].max()),
                     "max change all t": float(d.max()),
                     "rel L2 change": float(np.linalg.norm(ua - ub) / np.linalg.norm(ub)),
                     "solve s (from)": sa})
    md = write_table(rows, Path(args.out), "allen_cahn_convergence",
                     "python benchmarks/allen_cahn_convergence.py",
                     "Allen-Cahn reference: change on the 512 x 201 grid under refinement "
                     "(the problem's default is 2048 points, dt 1e-3; cores shared, times are "
                     "ratios only)", floatfmt=".2e")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

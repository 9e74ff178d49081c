"""Convergence of the finite-difference reference of Poisson's equation on the L-shape.

-laplacian u = 1 on DeepXDE's L-shape, u = 0 on the boundary, 5-point scheme on nested grids
h = 2/16 ... 2/1024. Prints (1) the changes between successive grids at the coarse nodes (max
and root mean square) with the observed orders (theory for the re-entrant corner: 2/3 near it,
4/3 for the pollution elsewhere), and (2) the error of candidate references at 20,000 Sobol'
points of the L-shape against the finest Richardson extrapolation R(512, 1024) (order 4/3),
evaluated through each candidate's interpolant. The finest solve takes about 2 GB and 15 s.

    python benchmarks/lshape_convergence.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_table  # noqa: E402

from pinnsketch.pde.fd_poisson import LSHAPE, convergence_table, poisson_fd, richardson  # noqa: E402
from pinnsketch.pde.geometry import Polygon  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finest", type=int, default=1024, help="finest n (h = 2/n)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lshape = Polygon(LSHAPE)
    ns = [16 * 2**i for i in range(20) if 16 * 2**i <= args.finest]
    sols, times = {}, {}
    for n in ns:
        t0 = time.perf_counter()
        sols[n] = poisson_fd(lshape, 1.0, 0.0, 2.0 / n)
        times[n] = time.perf_counter() - t0
    rows = []
    for n, row in zip(ns, convergence_table([sols[n] for n in ns])):
        rows.append({"grid": f"{n} -> {2 * n}", "h": row["h"], "max change": row["max_change"],
                     "max order": row["order"], "rms change": row["rms_change"],
                     "solve s": times[n], "solver residual": sols[n].residual})
    for prev, row in zip([None] + rows[:-1], rows):
        row["rms order"] = (float(torch.log2(torch.tensor(prev["rms change"] / row["rms change"])))
                            if prev else float("nan"))
    out = Path(args.out)
    md = write_table(rows, out, "lshape_convergence",
                     "python benchmarks/lshape_convergence.py",
                     "L-shape Poisson, 5-point scheme: changes between nested grids at the coarse "
                     "nodes (u max 0.149; cores shared, times are ratios only)",
                     cols=["grid", "h", "max change", "max order", "rms change", "rms order",
                           "solve s", "solver residual"], floatfmt=".3g")
    print(md)
    top = ns[-1]
    best = richardson(sols[top // 2], sols[top], 4.0 / 3.0)
    pts = lshape.sample_interior(20_000, "sobol", seed=0)
    ub = best(pts)
    cands = [(f"plain n={n}", sols[n]) for n in ns[-3:]]
    cands += [(f"Richardson({n}, {2 * n})", richardson(sols[n], sols[2 * n], 4.0 / 3.0))
              for n in ns[-4:-2]]
    rows2 = []
    for name, cand in cands:
        e = cand(pts) - ub
        rows2.append({"reference": name, "max error": float(e.abs().max()),
                      "relative L2 error": float(e.norm() / ub.norm())})
    md2 = write_table(rows2, out, "lshape_reference_error",
                      "python benchmarks/lshape_convergence.py",
                      f"L-shape Poisson references at 20,000 Sobol' points against "
                      f"Richardson({top // 2}, {top}) (interpolated; cores shared)")
    print(md2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

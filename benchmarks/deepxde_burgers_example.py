"""DeepXDE's own Burgers example, run here as the reference row of the optimizer comparison.

The example as DeepXDE ships it (examples/pinn_forward/Burgers.py, DeepXDE 1.15): a
[2] + [20] * 3 + [1] tanh network (Glorot normal), 2,540 interior, 80 boundary and 160
initial points sampled by DeepXDE, x in [-1, 1], t in [0, 0.99], nu = 0.01 / pi; Adam with
lr 1e-3 for 15,000 iterations, then DeepXDE's L-BFGS on its default options. The L2 relative
error is measured on pinnsketch's Burgers evaluation grid (256 x 100, t in [0, 0.99], the
Cole-Hopf reference) after every ``--block`` Adam iterations and after L-BFGS, with the
process's CPU time and the wall time of training (evaluation excluded).

    python benchmarks/deepxde_burgers_example.py --seed 0 --threads 1

Writes ``benchmarks/results/deepxde_burgers_example.csv`` (the curve) and appends a row to
``deepxde_burgers_example.md`` (final error, time to L2 <= 1e-3, 1e-4, 1e-5).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deepxde_problems import import_deepxde  # noqa: E402

from pinnsketch import load_problem  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = (1e-3, 1e-4, 1e-5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--adam", type=int, default=15000, help="Adam iterations (15,000)")
    ap.add_argument("--block", type=int, default=1000, help="Adam iterations between errors")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dde = import_deepxde()
    dde.config.set_random_seed(args.seed)

    problem = load_problem("burgers")
    points = problem.evaluation_grid().coordinates()
    reference = problem.reference(points).double().reshape(-1).numpy()
    nu = problem.nu

    def pde(x, y):
        dy_x = dde.grad.jacobian(y, x, i=0, j=0)
        dy_t = dde.grad.jacobian(y, x, i=0, j=1)
        dy_xx = dde.grad.hessian(y, x, i=0, j=0)
        return dy_t + y * dy_x - nu * dy_xx

    geomtime = dde.geometry.GeometryXTime(dde.geometry.Interval(-1, 1),
                                          dde.geometry.TimeDomain(0, 0.99))
    bc = dde.icbc.DirichletBC(geomtime, lambda x: 0, lambda _, on_boundary: on_boundary)
    ic = dde.icbc.IC(geomtime, lambda x: -np.sin(np.pi * x[:, 0:1]),
                     lambda _, on_initial: on_initial)
    data = dde.data.TimePDE(geomtime, pde, [bc, ic], num_domain=2540, num_boundary=80,
                            num_initial=160)
    net = dde.nn.FNN([2] + [20] * 3 + [1], "tanh", "Glorot normal")
    model = dde.Model(data, net)

    grid = points.numpy().astype(np.float32)
    curve: list[dict] = []
    clock = {"wall": 0.0, "cpu": 0.0}

    def timed(fn):
        w, c = time.perf_counter(), time.process_time()
        fn()
        clock["wall"] += time.perf_counter() - w
        clock["cpu"] += time.process_time() - c

    def record(phase: str, iteration: int) -> None:
        u = model.predict(grid).reshape(-1).astype(np.float64)
        err = float(np.linalg.norm(u - reference) / np.linalg.norm(reference))
        curve.append({"phase": phase, "iteration": iteration, "wall_s": round(clock["wall"], 2),
                      "cpu_s": round(clock["cpu"], 2), "l2_relative_error": err})
        print(curve[-1], flush=True)

    model.compile("adam", lr=1e-3)
    done = 0
    while done < args.adam:
        block = min(args.block, args.adam - done)
        timed(lambda block=block: model.train(iterations=block, display_every=10**9,
                                               verbose=0))
        done += block
        record("adam", done)
    model.compile("L-BFGS")
    timed(lambda: model.train(display_every=10**9, verbose=0))
    record("lbfgs", int(model.train_state.step))

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "deepxde_burgers_example"
    with open(f"{stem}_seed{args.seed}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(curve[0]))
        w.writeheader()
        w.writerows(curve)
    reached = {}
    for level in LEVELS:
        hit = next((r for r in curve if r["l2_relative_error"] <= level), None)
        reached[level] = f"{hit['cpu_s']:.0f}" if hit else "-"
    md = Path(f"{stem}.md")
    if not md.exists():
        md.write_text("### DeepXDE's own Burgers example (3 x 20, 2,780 points, Adam 15,000 + "
                      "L-BFGS), L2 on pinnsketch's 256 x 100 Cole-Hopf grid; one thread, the "
                      "2 cores shared with other runs\n\n| seed | final L2 | cpu_1e-03 | "
                      "cpu_1e-04 | cpu_1e-05 | training cpu s | training wall s | iterations "
                      "(Adam + L-BFGS) | command |\n|---|---|---|---|---|---|---|---|---|\n")
    final = curve[-1]
    cmd = "python benchmarks/deepxde_burgers_example.py " + " ".join(argv or sys.argv[1:])
    with open(md, "a") as f:
        f.write(f"| {args.seed} | {final['l2_relative_error']:.2e} | {reached[1e-3]} | "
                f"{reached[1e-4]} | {reached[1e-5]} | {final['cpu_s']:.0f} | "
                f"{final['wall_s']:.0f} | {args.adam} + {final['iteration'] - args.adam} | "
                f"`{cmd.strip()}` |\n")
    return 0 if math.isfinite(final["l2_relative_error"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Training with sketched storage against exact storage, same steps, side by side.

For each problem and network, trains the same initial network with the same points and
Adam schedule (no L-BFGS) under ``exact`` storage and under ``sketch`` storage at each rank,
and reports the final L2 relative error, its ratio to exact, mean held bytes per point and
wall time. With --lbfgs-steps, an L-BFGS phase follows (under ``auto`` the controller
switches it to exact storage: a line search needs consistent gradients).

    python benchmarks/sketch_training.py --problems burgers heat poisson \
        --nets 4x256 4x50 --ranks 8 32 --steps 1000 --points 1000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_table  # noqa: E402

from pinnsketch import (  # noqa: E402
    ModelConfig,
    OptimConfig,
    RunConfig,
    SamplingConfig,
    StorageConfig,
    load_problem,
    solve,
)
from pinnsketch.control import RankController  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", nargs="+", default=["burgers", "heat", "poisson"])
    p.add_argument("--nets", nargs="+", default=["4x256", "4x50"])
    p.add_argument("--ranks", nargs="+", default=["8", "32"],
                   help="integers, or 'auto' for the rank controller")
    p.add_argument("--method", default=StorageConfig().method)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lbfgs-steps", type=int, default=0)
    p.add_argument("--error-low", type=float, default=None,
                   help="the rank controller's error_low (default: RankController's)")
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = p.parse_args(argv)
    rows = []

    def controller(storage):
        if storage.rank != "auto" or args.error_low is None:
            return None
        return RankController(error_low=args.error_low)

    for problem in args.problems:
        for net in args.nets:
            depth, width = (int(v) for v in net.split("x"))
            exact_l2 = None
            configs = [("exact", StorageConfig(policy="exact"))] + [
                (f"sketch r={r}", StorageConfig(policy="sketch", method=args.method,
                                                rank=r if r == "auto" else int(r)))
                for r in args.ranks]
            for label, storage in configs:
                result = solve(load_problem(problem),
                               model=ModelConfig(width=width, depth=depth),
                               sampling=SamplingConfig(collocation=args.points, boundary=200,
                                                       initial=200, resample_every=100),
                               optim=OptimConfig(steps=args.steps, lbfgs_steps=args.lbfgs_steps),
                               storage=storage, controller=controller(storage),
                               run=RunConfig(seed=args.seed, quiet=True,
                                             eval_every=max(args.steps // 4, 1)))
                s = result.summary
                exact_l2 = s["l2_relative_error"] if label == "exact" else exact_l2
                row = {"problem": problem, "net": net, "storage": label,
                       "l2_relative_error": s["l2_relative_error"],
                       "l2_vs_exact": s["l2_relative_error"] / exact_l2,
                       "mean_held_B_per_pt": s["mean_held_bytes_per_point"],
                       "final_ranks": s["final_ranks"], "wall_time_s": s["wall_time_s"]}
                rows.append(row)
                print(row, flush=True)
                log = s.get("rank_changes", [])
                for line in log:
                    print("   ", line, flush=True)
                if log:  # the controller's decisions and verdicts, one file per auto run
                    args.out.mkdir(parents=True, exist_ok=True)
                    name = f"rank_log_{problem}_{net}_{label.replace(' ', '_').replace('=', '')}"
                    (args.out / f"{name}.txt").write_text("\n".join(log) + "\n")
    command = "python benchmarks/sketch_training.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    print(write_table(rows, args.out, "sketch_training", command,
                      f"Training with sketched vs exact storage: {args.steps} Adam steps + "
                      f"{args.lbfgs_steps} L-BFGS, "
                      f"{args.points} points, float32, method {args.method}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

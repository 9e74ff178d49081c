"""Data-parallel throughput: the same run on 1 process and on P processes (torchrun, gloo).

Each configuration is ``pinnsketch solve PROBLEM`` with the same total collocation points,
schedule and seed, launched as a subprocess one after the other:

- ``1 proc x T threads`` for T in --threads (the single-process baselines), and
- ``P procs x 1 thread`` via ``python -m torch.distributed.run --standalone``.

Reported: Adam time per step (median of the per-step wall times in history.csv, so start-up
is excluded), throughput in collocation points per second and its ratio to the
single-thread single process, the L-BFGS wall time, and the final L2 error (equal up to
round-off: the union of the processes' points is the single-process set).

    python benchmarks/distributed_throughput.py --problem burgers --steps 1000 --lbfgs-steps 200
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _common import write_table


def _adam_step_times(history_csv: Path) -> list[float]:
    rows = list(csv.DictReader(history_csv.open()))
    times = [(int(r["step"]), float(r["wall_time_s"])) for r in rows if r["phase"] == "adam"]
    return [b[1] - a[1] for a, b in zip(times, times[1:]) if b[0] == a[0] + 1]


def _run(label: str, launcher: list[str], args: argparse.Namespace, out: Path,
         threads: int) -> dict:
    run_dir = out / label.replace(" ", "")
    cmd = [*launcher, "-m", "pinnsketch", "solve", args.problem, "--collocation", str(args.points),
           "--width", str(args.width), "--depth", str(args.depth), "--steps", str(args.steps),
           "--lbfgs-steps", str(args.lbfgs_steps), "--storage", args.storage,
           "--eval-every", str(args.steps), "--threads", str(threads), "--seed", str(args.seed),
           "--quiet", "--overwrite", "--out", str(run_dir)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.pop("WORLD_SIZE", None)
    print(" ".join(cmd), flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"config": label, "status": f"exit {proc.returncode}"}
    s = json.loads((run_dir / "summary.json").read_text())
    steps = _adam_step_times(run_dir / "history.csv")
    step = statistics.median(steps) if steps else float("nan")
    hist = list(csv.DictReader((run_dir / "history.csv").open()))
    adam_end = max(float(r["wall_time_s"]) for r in hist if r["phase"] == "adam")
    return {"config": label, "processes": s["world_size"], "threads_each": threads,
            "adam_step_ms": 1e3 * step, "points_per_s": args.points / step,
            "lbfgs_s": s["wall_time_s"] - adam_end, "wall_time_s": s["wall_time_s"],
            "l2_relative_error": s["l2_relative_error"],
            "held_B_per_point": s["held_bytes_per_point"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--problem", default="burgers")
    p.add_argument("--points", type=int, default=8000, help="total collocation points")
    p.add_argument("--width", type=int, default=20)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lbfgs-steps", type=int, default=200)
    p.add_argument("--storage", default="exact")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--processes", type=int, nargs="+", default=[2])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="thread counts of the single-process baselines")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/distributed"))
    args = p.parse_args()
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    rows = [_run(f"1 proc x {t} thr", [sys.executable], args, args.out, t) for t in args.threads]
    for n in args.processes:
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node", str(n)]
        rows.append(_run(f"{n} proc x 1 thr", torchrun, args, args.out, 1))
    base = next((r for r in rows if r.get("processes") == 1 and r.get("threads_each") == 1), None)
    for r in rows:
        if base and "points_per_s" in r:
            r["throughput_vs_1x1"] = r["points_per_s"] / base["points_per_s"]
    title = (f"Data-parallel throughput, {args.problem}, {args.depth} x {args.width}, "
             f"{args.points} points in total, {args.storage} storage, {args.steps} Adam + "
             f"{args.lbfgs_steps} L-BFGS")
    print(write_table(rows, args.out, f"distributed_{args.problem}", command, title))


if __name__ == "__main__":
    main()

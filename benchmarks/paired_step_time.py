"""Step time of the default run, two source trees side by side (paired, alternating).

Each round runs, for each tree in turn, a fresh process with that tree first on the Python
path that builds the default Burgers PINN (8 x 20 tanh, 8,000 Sobol points, ``autograd``
storage, float32, seed 0) and times ``--steps`` Adam steps (forward, backward, update) on
one thread. The table gives every run's wall and CPU time (``time.process_time``: on a
shared machine it does not count the time the process waits for a core) and the median over
rounds of the per-round ratios to the first tree (pairs within a round share the machine's
state of the moment).

    git archive d28ebdb | tar -x -C /tmp/pinnsketch-old
    python benchmarks/paired_step_time.py --trees /tmp/pinnsketch-old . --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

_CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
import pinnsketch
from pinnsketch import ModelConfig, OptimConfig, SamplingConfig, StorageConfig, load_problem
from pinnsketch.tasks.pinn import PINNTask
task = PINNTask(load_problem(PROBLEM), ModelConfig(), SamplingConfig(), OptimConfig(),
                StorageConfig(), seed=0)
batch = task.sample(0)
opt = torch.optim.Adam(task.model.parameters(), lr=1e-3)
def step():
    opt.zero_grad(set_to_none=True)
    terms = task.backward(batch)
    opt.step()
    return terms["loss"]
for _ in range(5):
    step()
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(STEPS):
    loss = step()
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0,
                              "cpu_seconds": time.process_time() - c0, "loss": loss,
                              "module": pinnsketch.__file__}))
"""


def run_one(tree: Path, steps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()))
    problem = repr(str(tree.resolve() / "problems" / "burgers.py"))  # the tree's own file
    code = _CHILD.replace("STEPS", str(steps)).replace("PROBLEM", problem)
    proc = subprocess.run([sys.executable, "-c", code],
                          capture_output=True, text=True, env=env, cwd="/")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{tree}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    row = json.loads(lines[-1][7:])
    if not row["module"].startswith(str(tree.resolve())):
        raise SystemExit(f"{tree}: imported {row['module']}, not this tree")
    return row


def main(argv: list[str] | None = None) -> int:
    from _common import write_table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trees", nargs=2, type=Path, required=True, metavar=("BASE", "NEW"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    times: dict[int, list[float]] = {0: [], 1: []}
    cpu: dict[int, list[float]] = {0: [], 1: []}
    losses = {}
    for r in range(args.rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)  # alternate who goes first
        for i in order:
            row = run_one(args.trees[i], args.steps)
            times[i].append(row["seconds"])
            cpu[i].append(row["cpu_seconds"])
            losses[i] = row["loss"]
            print(f"round {r} tree {args.trees[i]}: {row['seconds']:.2f} s "
                  f"({row['cpu_seconds']:.2f} s CPU)", flush=True)
    ratios = [b / a for a, b in zip(times[0], times[1], strict=True)]
    cpu_ratios = [b / a for a, b in zip(cpu[0], cpu[1], strict=True)]
    rows = [{"tree": str(args.trees[i]), "steps": args.steps,
             "seconds_per_run": " ".join(f"{t:.2f}" for t in times[i]),
             "median_s": statistics.median(times[i]),
             "ms_per_step": 1e3 * statistics.median(times[i]) / args.steps,
             "cpu_seconds_per_run": " ".join(f"{t:.2f}" for t in cpu[i]),
             "cpu_ms_per_step": 1e3 * statistics.median(cpu[i]) / args.steps,
             "loss_after": losses[i],
             "wall_ratio_to_base": 1.0 if i == 0 else statistics.median(ratios),
             "cpu_ratio_to_base": 1.0 if i == 0 else statistics.median(cpu_ratios)}
            for i in (0, 1)]
    command = "python benchmarks/paired_step_time.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    print(write_table(rows, args.out, "paired_step_time_default", command,
                      f"Default Burgers run (8 x 20, 8,000 points, autograd), {args.steps} Adam "
                      f"steps, one thread, {args.rounds} alternating rounds; per-round wall "
                      f"ratios {' '.join(f'{x:.3f}' for x in ratios)}, CPU-time ratios "
                      f"{' '.join(f'{x:.3f}' for x in cpu_ratios)} (the 2 cores were shared "
                      "with other jobs)", floatfmt=".4g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

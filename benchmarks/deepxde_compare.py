"""pinnsketch against DeepXDE side by side: same network, points, Adam schedule and float32.

For each problem, in one process, DeepXDE (PyTorch backend, nested autograd through
``dde.grad``) and pinnsketch under ``autograd``, ``exact`` and ``sketch`` storage (one
configuration per rank in ``--ranks``) start from identical weights and train on identical
points (tests/test_deepxde_parity.py checks that the two losses and gradients agree to
float64 round-off). The runners advance in
interleaved blocks of ``--block`` steps, so load from other processes falls on all of them.
Reported per configuration:

- ms per step and its ratio to DeepXDE's (each library's own step: loss, backward, Adam,
  scheduler; no logging);
- held bytes per point at ``--points`` (all points of the loss, conditions included), and the
  marginal held bytes per extra interior point (slope of a fit a + b N at ``--fit-points``),
  each with its ratio to DeepXDE's;
- the L2 relative error after ``--steps`` steps (equal iterations), and after equal wall time
  T = the slowest configuration's time for those steps (the others keep training until their
  own training time reaches T);
- the largest collocation batch whose held bytes fit ``--cap``: from the fit, checked by a
  measurement at that N (``held_at_largest``), and pinnsketch's own ``plan_memory`` figure
  (interior points only) for comparison.

    python benchmarks/deepxde_compare.py --problems burgers heat poisson --net 8x20 \
        --points 2000 --steps 500 --ranks 8 --cap 32MB --threads 1

(about 8 minutes on one thread of a loaded 2-core machine). The wide network, Burgers only
(about 5 minutes):

    python benchmarks/deepxde_compare.py --problems burgers --net 4x256 --points 1000 \
        --steps 100 --block 20 --ranks 8 32 --cap 32MB --threads 1

Needs the ``compare`` extra (deepxde); sets DDE_BACKEND=pytorch.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("DDE_BACKEND", "pytorch")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import write_table  # noqa: E402
from _side_by_side import DdeRunner, PinnRunner, Setup, linear_fit_largest  # noqa: E402
from deepxde_problems import SUPPORTED, import_deepxde  # noqa: E402

from pinnsketch import ModelConfig, RunConfig, SamplingConfig, StorageConfig, load_problem  # noqa: E402
from pinnsketch.api import plan_memory  # noqa: E402
from pinnsketch.control import format_bytes, parse_bytes  # noqa: E402

COLUMNS = ["problem", "config", "points", "ms_per_step", "time_vs_dde", "held_B_per_pt",
           "held_vs_dde", "marginal_B_per_pt", "marginal_vs_dde", "l2_equal_steps",
           "l2_vs_dde", "equal_time_s", "steps_in_time", "l2_equal_time", "largest_N",
           "largest_vs_dde", "held_at_largest_MB", "plan_memory_N", "target_time",
           "target_held_l2", "target_batch"]


def _configs(ranks: list[int], method: str) -> list[tuple[str, StorageConfig | None]]:
    return [("deepxde", None), ("autograd", StorageConfig(policy="autograd")),
            ("exact", StorageConfig(policy="exact"))] + [
            (f"sketch r={r}", StorageConfig(policy="sketch", rank=r, method=method)) for r in ranks]


def _runner(label: str, storage: StorageConfig | None, setup: Setup):
    return DdeRunner(setup) if storage is None else PinnRunner(label, setup, storage)


def _train_interleaved(runners, until, block: int) -> None:
    """Advance the runners round-robin in blocks until ``until(runner)`` gives 0 steps left."""
    while True:
        left = [(r, until(r)) for r in runners]
        left = [(r, k) for r, k in left if k > 0 and not r.diverged]
        if not left:
            return
        for r, k in left:
            r.advance(min(block, k))


def _largest(label, storage, setup: Setup, cap: int, fit: tuple[int, int]) -> dict:
    def held_at(n: int) -> int:
        return _runner(label, storage, setup.with_points(n)).held_bytes()

    n, _, slope = linear_fit_largest(held_at, cap, *fit)
    row = {"largest_N": n, "marginal_B_per_pt": slope}
    if n > 0:
        row["held_at_largest_MB"] = held_at(n) / 1e6
    if storage is not None and storage.policy != "autograd":
        model = ModelConfig(width=setup.width, depth=setup.depth)
        sampling = SamplingConfig(collocation=10**9, boundary=setup.boundary,
                                  initial=setup.initial)
        planned, _, _ = plan_memory(setup.problem, model, sampling, storage, RunConfig(), None, cap)
        row["plan_memory_N"] = planned.collocation
    return row


def compare_problem(name: str, args) -> list[dict]:
    depth, width = (int(v) for v in args.net.split("x"))
    setup = Setup(load_problem(name), width=width, depth=depth, points=args.points,
                  lr=args.lr, decay=args.lr_decay, steps=args.steps, seed=args.seed)
    configs = _configs(args.ranks, args.method)
    runners = [_runner(label, storage, setup) for label, storage in configs]
    held = {r.label: r.held_bytes() for r in runners}
    _train_interleaved(runners, lambda r: args.steps - r.step, args.block)
    at_steps = {r.label: (r.train_time, r.l2(), r.diverged) for r in runners}
    horizon = max(t for t, _, _ in at_steps.values())

    def time_left(r) -> int:
        if r.train_time >= horizon:
            return 0
        return max(1, math.ceil((horizon - r.train_time) / (r.train_time / r.step)))

    _train_interleaved(runners, time_left, args.block)
    rows = []
    for (label, storage), r in zip(configs, runners, strict=True):
        t, l2, diverged = at_steps[label]
        row = {"problem": name, "config": label + (" (diverged)" if diverged else ""),
               "points": r.num_points, "ms_per_step": 1e3 * t / args.steps,
               "held_B_per_pt": held[label] / r.num_points, "l2_equal_steps": l2,
               "equal_time_s": r.train_time, "steps_in_time": r.step, "l2_equal_time": r.l2()}
        row.update(_largest(label, storage, setup, args.cap, tuple(args.fit_points)))
        rows.append(row)
        print({k: v for k, v in row.items()}, flush=True)
    base = rows[0]
    for row in rows:
        for col, ref in (("time_vs_dde", "ms_per_step"), ("held_vs_dde", "held_B_per_pt"),
                         ("marginal_vs_dde", "marginal_B_per_pt"), ("l2_vs_dde", "l2_equal_steps"),
                         ("largest_vs_dde", "largest_N")):
            row[col] = row[ref] / base[ref] if base[ref] else None
        if row is not base:
            row["target_time"] = "met" if row["time_vs_dde"] <= 0.5 else "not met"
            row["target_held_l2"] = ("met" if row["marginal_vs_dde"] <= 1 / 20
                                     and row["l2_vs_dde"] <= 1.5 else "not met")
            row["target_batch"] = "met" if row["largest_vs_dde"] >= 10 else "not met"
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", nargs="+", default=list(SUPPORTED), choices=SUPPORTED)
    p.add_argument("--net", default="8x20", help="DEPTHxWIDTH, e.g. 8x20 or 4x256")
    p.add_argument("--points", type=int, default=2000, help="interior collocation points")
    p.add_argument("--steps", type=int, default=500,
                   help="Adam steps for the equal-iteration comparison (also the schedule length)")
    p.add_argument("--ranks", nargs="+", type=int, default=[8],
                   help="sketch ranks (one configuration each, the same rank in every hidden layer)")
    p.add_argument("--method", default="truncated_svd", help="sketch method")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-decay", type=float, default=0.1)
    p.add_argument("--cap", default="32MB", help="held-bytes cap for the largest batch")
    p.add_argument("--fit-points", nargs=2, type=int, default=[500, 1000],
                   help="interior point counts of the linear held-bytes fit")
    p.add_argument("--block", type=int, default=50, help="steps per interleaved block")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = p.parse_args(argv)
    args.cap = parse_bytes(args.cap)
    if args.threads:
        torch.set_num_threads(args.threads)
    import_deepxde()
    rows = []
    for name in args.problems:
        rows += compare_problem(name, args)
    command = "python benchmarks/deepxde_compare.py " + " ".join(sys.argv[1:] if argv is None else argv)
    title = (f"pinnsketch vs DeepXDE {import_deepxde().__version__}: net {args.net} tanh, "
             f"{args.points} interior points, Adam lr {args.lr} (x{args.lr_decay} over "
             f"{args.steps} steps), float32, held-bytes cap {format_bytes(args.cap)}")
    md = write_table(rows, args.out, f"deepxde_compare_{args.net}", command, title, COLUMNS)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time to accuracy under a cap on held bytes: wall time each configuration needs to reach a target L2.

The problem (Burgers by default) offers ``--points`` interior collocation points and every
configuration must keep the bytes held for backward (DESIGN.md section 4, measured with
saved-tensor hooks) under ``--cap``. Each configuration gets what fits:

- ``deepxde`` and ``autograd`` (nested autograd): the largest single batch under the cap
  (a held-bytes fit a + b N at ``--fit-points``, N <= ``--points``);
- ``exact+chunks``: all points, gradients accumulated over chunks of the largest size that
  fits (exact gradient of the full batch);
- ``checkpoint``: all points in one batch (holds only the points; recomputes in backward);
- ``sketch r=R``: the largest batch at rank R in every hidden layer (``--ranks``);
- ``auto``: ``--sketch-rank auto``, batch and rank caps from pinnsketch's ``plan_memory``
  on the cap less the condition points' held bytes.

All start from the same weights (DeepXDE gets a copy, see deepxde_problems.py) and train with
Adam, lr ``--lr`` decaying by ``--lr-decay`` over ``--steps`` steps, float32, until the L2
relative error on the problem's evaluation grid reaches ``--target`` or the training time
reaches ``--time-limit`` seconds. The error is evaluated about every ``--eval-seconds`` of
training time; evaluation is not timed. Each configuration runs in its own processes, one
after the other (sequential runs: load from other processes on the machine shifts their wall
times). Peak memory is measured in a separate short probe process per configuration, because
glibc keeps freed memory resident and so hides the working set of a step from the resident set
size: the probe runs with MALLOC_MMAP_THRESHOLD_=65536 (every allocation of 64 KiB or more is
mapped on its own and returned on free; this slows steps about 3x, which is why the timed run
does not use it), builds the same runner, and samples the resident set size every millisecond
over ``--probe-steps`` steps; ``peak_MB`` is the peak less the size before the first step
(weights, optimizer state and points are already there). ``--peak-cap`` marks which
configurations stay under a cap on that figure.

    python benchmarks/time_to_accuracy.py --problem burgers --net 8x20 --points 8000 \
        --cap 12MB --peak-cap 64MB --target 0.35 --time-limit 60 --steps 10000 --ranks 4 8 \
        --threads 1

(about 7.5 minutes; enlarge with --points, --net 4x256, --target 0.05 --time-limit 1800).

Needs the ``compare`` extra (deepxde) for the deepxde configuration; sets DDE_BACKEND=pytorch.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import gc
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

os.environ.setdefault("DDE_BACKEND", "pytorch")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import write_table  # noqa: E402
from _side_by_side import DdeRunner, PinnRunner, Setup, linear_fit_largest, rss_bytes  # noqa: E402
from deepxde_problems import SUPPORTED  # noqa: E402

from pinnsketch import (  # noqa: E402
    ModelConfig,
    RankController,
    RunConfig,
    SamplingConfig,
    StorageConfig,
    load_problem,
)
from pinnsketch.api import plan_memory  # noqa: E402
from pinnsketch.control import format_bytes, parse_bytes  # noqa: E402

COLUMNS = ["config", "points", "chunks", "ranks", "held_MB", "within_cap", "peak_MB",
           "within_peak_cap",
           "ms_per_step", "steps", "time_to_target_s", "l2_final", "l2_best", "status"]


def config_names(ranks: list[int]) -> list[str]:
    return (["deepxde", "autograd", "exact+chunks", "checkpoint"]
            + [f"sketch r={r}" for r in ranks] + ["auto"])


def build_runner(name: str, setup: Setup, cap: int, fit: tuple[int, int]):
    """The runner of configuration ``name`` under the held-bytes cap, and a note on its plan."""
    limit = setup.points

    def largest(make) -> int:
        n, _, _ = linear_fit_largest(lambda k: make(setup.with_points(k)).held_bytes(), cap,
                                     *fit, limit=limit)
        if n < 1:
            raise ValueError(f"{name}: the cap {format_bytes(cap)} does not fit one point")
        return n

    if name == "deepxde":
        return DdeRunner(setup.with_points(largest(DdeRunner)))
    if name == "autograd" or name.startswith("sketch r="):  # as many points as fit the cap
        storage = (StorageConfig(policy="autograd") if name == "autograd" else
                   StorageConfig(policy="sketch", rank=int(name.split("=")[1])))
        n = largest(lambda s: PinnRunner(name, s, storage))
        return PinnRunner(name, setup.with_points(n), storage)
    if name == "exact+chunks":
        storage = StorageConfig(policy="exact")
        n, _, _ = linear_fit_largest(
            lambda k: PinnRunner(name, setup.with_points(k), storage).held_bytes(), cap, *fit)
        return PinnRunner(name, setup, storage, chunk_size=n)
    if name == "checkpoint":
        return PinnRunner(name, setup, StorageConfig(policy="checkpoint"))
    if name == "auto":
        exact = StorageConfig(policy="exact")
        _, conditions, _ = linear_fit_largest(
            lambda k: PinnRunner(name, setup.with_points(k), exact).held_bytes(), cap, *fit)
        storage = StorageConfig(policy="sketch", rank="auto")
        sampling, controller, _ = plan_memory(
            setup.problem, ModelConfig(width=setup.width, depth=setup.depth),
            SamplingConfig(collocation=setup.points, boundary=setup.boundary,
                           initial=setup.initial),
            storage, RunConfig(), RankController(), int(cap - conditions))
        return PinnRunner(name, setup.with_points(sampling.collocation), storage,
                          controller=controller)
    raise ValueError(f"unknown configuration {name!r}")


class PeakRSS:
    """Samples this process's resident set size every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, rss_bytes(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def probe_peak(name: str, args) -> dict:
    """Peak resident set size over ``--probe-steps`` steps, less the size before them (bytes).

    Meaningful only with MALLOC_MMAP_THRESHOLD_ set small (see the module docstring).
    """
    runner = build_runner(name, _setup(args), args.cap, tuple(args.fit_points))
    runner.advance(1)  # Adam's state exists from here on
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the figure is then an underestimate
        pass
    rss0 = rss_bytes()
    with PeakRSS(interval=0.001) as peak:
        runner.advance(args.probe_steps)
    return {"peak_bytes": peak.peak - rss0}


def _setup(args) -> Setup:
    depth, width = (int(v) for v in args.net.split("x"))
    return Setup(load_problem(args.problem), width=width, depth=depth, points=args.points,
                 lr=args.lr, decay=args.lr_decay, steps=args.steps, seed=args.seed)


def run_one(name: str, args) -> tuple[dict, list[dict]]:
    """Train one configuration to the target or the time limit; (summary row, L2 history)."""
    runner = build_runner(name, _setup(args), args.cap, tuple(args.fit_points))
    held = runner.held_bytes()
    history = [{"config": name, "step": 0, "train_time_s": 0.0, "l2": runner.l2()}]
    reached = None
    last_eval = 0.0
    while runner.train_time < args.time_limit and not runner.diverged:
        runner.advance(args.block)
        if runner.train_time - last_eval < args.eval_seconds:
            continue
        last_eval = runner.train_time
        history.append({"config": name, "step": runner.step,
                        "train_time_s": runner.train_time, "l2": runner.l2()})
        if history[-1]["l2"] <= args.target:
            reached = history[-1]
            break
    held = max(held, runner.max_held)
    l2s = [h["l2"] for h in history if math.isfinite(h["l2"])]
    chunks = getattr(getattr(runner, "task", None), "_chunks", None)
    row = {"config": name, "points": runner.num_points,
           "chunks": chunks(runner.batch) if chunks else 1,
           "ranks": " ".join(map(str, runner.ranks)) if runner.ranks else "",
           "held_MB": held / 1e6, "within_cap": held <= args.cap,
           "ms_per_step": 1e3 * runner.train_time / max(runner.step, 1), "steps": runner.step,
           "time_to_target_s": reached["train_time_s"] if reached else None,
           "l2_final": history[-1]["l2"], "l2_best": min(l2s) if l2s else None,
           "status": ("diverged" if runner.diverged else "reached" if reached
                      else f"not reached in {args.time_limit:g} s")}
    return row, history


def _child(raw_argv: list[str], name: str, probe: bool) -> dict:
    """Run one configuration in a fresh process; its RESULT line as a dict, or {"error": ...}."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536") if probe else None
    cmd = [sys.executable, __file__, *raw_argv, "--one", name] + (["--probe"] if probe else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"{'probe ' if probe else ''}failed (exit {proc.returncode}): {tail[0]}"}
    return json.loads(lines[-1][7:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", default="burgers", choices=SUPPORTED)
    p.add_argument("--net", default="8x20", help="DEPTHxWIDTH")
    p.add_argument("--points", type=int, default=8000, help="interior points on offer")
    p.add_argument("--cap", default="12MB", help="cap on bytes held for backward")
    p.add_argument("--target", type=float, default=0.35, help="target L2 relative error")
    p.add_argument("--time-limit", type=float, default=60.0, help="training seconds per configuration")
    p.add_argument("--eval-seconds", type=float, default=1.0, help="training seconds between evaluations")
    p.add_argument("--block", type=int, default=10, help="steps between checks of the clock")
    p.add_argument("--ranks", nargs="+", type=int, default=[4, 8], help="fixed sketch ranks")
    p.add_argument("--configs", nargs="+", default=None,
                   help="a subset of: deepxde autograd exact+chunks checkpoint 'sketch r=R' auto")
    p.add_argument("--steps", type=int, default=10000, help="length of the learning-rate schedule")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-decay", type=float, default=0.1)
    p.add_argument("--fit-points", nargs=2, type=int, default=[500, 1000])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    p.add_argument("--peak-cap", default=None, help="cap on the probed peak memory (reported)")
    p.add_argument("--probe-steps", type=int, default=3, help="steps of the peak-memory probe")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    raw_argv = sys.argv[1:] if argv is None else list(argv)
    args.cap = parse_bytes(args.cap)
    if args.threads:
        torch.set_num_threads(args.threads)
    peak_cap = parse_bytes(args.peak_cap) if args.peak_cap else None
    if args.one:
        if args.probe:
            print("RESULT " + json.dumps(probe_peak(args.one, args)))
        else:
            row, history = run_one(args.one, args)
            print("RESULT " + json.dumps({"row": row, "history": history}))
        return 0
    names = args.configs or config_names(args.ranks)
    rows, histories = [], []
    for name in names:
        probe = _child(raw_argv, name, probe=True)
        result = _child(raw_argv, name, probe=False)
        if "error" in result or "error" in probe:
            rows.append({"config": name, "status": result.get("error") or probe["error"]})
        else:
            row = result["row"]
            row["peak_MB"] = probe["peak_bytes"] / 1e6
            if peak_cap is not None:
                row["within_peak_cap"] = probe["peak_bytes"] <= peak_cap
            rows.append(row)
            histories += result["history"]
        print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"time_to_accuracy_{args.problem}"
    with open(args.out / f"{stem}_history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["config", "step", "train_time_s", "l2"])
        w.writeheader()
        w.writerows(histories)
    command = "python benchmarks/time_to_accuracy.py " + " ".join(raw_argv)
    title = (f"Time to L2 <= {args.target:g} on {args.problem} under a held-bytes cap of "
             f"{format_bytes(args.cap)}: net {args.net} tanh, {args.points} interior points on "
             f"offer, Adam lr {args.lr} (x{args.lr_decay} over {args.steps} steps), float32, "
             f"at most {args.time_limit:g} s of training each"
             + (f", peak cap {format_bytes(peak_cap)}" if peak_cap else ""))
    print(write_table(rows, args.out, stem, command, title, COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())

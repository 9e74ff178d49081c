"""Accuracy of the gradient-norm monitor: sketch estimates against exact norms during training.

Trains with ``--monitor`` (Burgers PINN; MNIST MLP when its files are in --data-dir) for each
monitor sketch size k, the exact per-layer norms recorded every --every steps beside the
estimates, and reports over all layers and checks after --warmup steps: the median and 90th
percentile of |estimate - exact| / exact and the fraction within 10%, for the per-step
estimate (``gnorm_est``) and the paper's EMA monitoring sketch (``gnorm_ema``, which
estimates the norm of the exponentially averaged gradient). Theory for the per-step
estimate: the squared-norm estimate has relative standard deviation at most sqrt(2/k), so
the norm about sqrt(1/(2k)) (0.18 at k = 16, 0.044 at k = 256). Writes a CSV, a markdown
table and a PNG of estimate vs exact for the first hidden layer.

    python benchmarks/monitor_accuracy.py --ranks 16 64 256 --steps 2000 --data-dir /tmp/psdata
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from _common import write_table

from pinnsketch import ModelConfig, OptimConfig, RunConfig, SamplingConfig, load_problem, solve
from pinnsketch.plots import new_figure, save_png


def _errors(history: list[dict], warmup: int, kind: str) -> list[float]:
    out = []
    for row in history:
        if row.get("phase") not in (None, "adam") or row["step"] < warmup:
            continue
        for key, exact in row.items():
            if key.startswith("gnorm_exact_") and exact:
                est = row.get(f"gnorm_{kind}_{key.rsplit('_', 1)[1]}")
                if est is not None:
                    out.append(abs(est - exact) / exact)
    return out


def _summary(task: str, k: int, history: list[dict], warmup: int) -> dict:
    row: dict = {"task": task, "k": k, "theory_norm_rel_sd": (1 / (2 * k)) ** 0.5}
    for kind in ("est", "ema"):
        errs = sorted(_errors(history, warmup, kind))
        if not errs:
            continue
        row[f"{kind}_checks"] = len(errs)
        row[f"{kind}_median_relerr"] = statistics.median(errs)
        row[f"{kind}_p90_relerr"] = errs[int(0.9 * (len(errs) - 1))]
        row[f"{kind}_within_10pct"] = sum(e <= 0.1 for e in errs) / len(errs)
    return row


def _burgers(k: int, args) -> list[dict]:
    result = solve(load_problem("burgers"), model=ModelConfig(width=args.width, depth=args.depth),
                   sampling=SamplingConfig(collocation=args.points),
                   optim=OptimConfig(steps=args.steps, lbfgs_steps=0),
                   run=RunConfig(seed=args.seed, quiet=True, monitor=True, monitor_rank=k,
                                 monitor_every=args.every, eval_every=args.steps,
                                 threads=args.threads))
    return result.history


def _mnist(k: int, args) -> list[dict] | None:
    from pinnsketch.classification import classify

    if not (args.data_dir / "mnist").is_dir():
        print(f"MNIST not in {args.data_dir}; skipped (pinnsketch fetch mnist)", file=sys.stderr)
        return None
    result = classify("mnist", storage="sketch", rank=args.mnist_rank, epochs=args.epochs,
                      data_dir=args.data_dir, quiet=True, monitor=True, monitor_rank=k,
                      monitor_every=args.every, seed=args.seed, threads=args.threads)
    return result.history


def _plot(path: Path, runs: dict[str, list[dict]]) -> None:
    fig = new_figure(figsize=(5 * len(runs), 3.6))
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    for ax, (label, history) in zip(axes, runs.items()):
        steps = [r["step"] for r in history if "gnorm_est_1" in r]
        ax.plot(steps, [r["gnorm_est_1"] for r in history if "gnorm_est_1" in r], lw=0.6,
                label="sketch estimate")
        ax.plot(steps, [r["gnorm_ema_1"] for r in history if "gnorm_est_1" in r], lw=0.9,
                label="EMA monitoring sketch")
        ex = [(r["step"], r["gnorm_exact_1"]) for r in history if r.get("gnorm_exact_1")]
        ax.plot(*zip(*ex), "k.", ms=3, label="exact")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("||dL/dW_1||_F")
    save_png(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--steps", type=int, default=2000, help="Adam steps of the Burgers runs")
    p.add_argument("--every", type=int, default=20, help="exact norms every this many steps")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--width", type=int, default=20)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--points", type=int, default=8000)
    p.add_argument("--epochs", type=int, default=1, help="MNIST epochs")
    p.add_argument("--mnist-rank", type=int, default=16)
    p.add_argument("--data-dir", type=Path, default=Path("/tmp/psdata"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/monitor"))
    args = p.parse_args()
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    rows, plotted = [], {}
    for k in args.ranks:
        for task, run in (("burgers", _burgers), ("mnist", _mnist)):
            history = run(k, args)
            if history is None:
                continue
            rows.append(_summary(task, k, history, args.warmup))
            print(rows[-1], flush=True)
            if k == args.ranks[-1]:
                plotted[f"{task}, k = {k}"] = history
    title = (f"Gradient-norm monitor vs exact norms after {args.warmup} warm-up steps "
             f"(Burgers {args.depth} x {args.width}, {args.steps} Adam steps; MNIST MLP, "
             f"{args.epochs} epoch(s), sketched rank {args.mnist_rank}; exact every {args.every})")
    print(write_table(rows, args.out, "monitor_accuracy", command, title))
    if plotted:
        _plot(args.out / "monitor_accuracy.png", plotted)


if __name__ == "__main__":
    main()

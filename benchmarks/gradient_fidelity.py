"""Gradient fidelity of sketched storage: relative error and cosine against the exact gradient.

For a Burgers PINN (float32) at initialisation and after ``--train-steps`` Adam steps with
exact storage, the parameter gradient of the loss on one batch is computed with
``exact`` storage (the reference) and with ``sketch`` storage for each method and rank:

- ``truncated_svd``: the optimal rank-k approximation (eigenvectors of the Gram matrix);
- ``three_sketch``: the paper's per-step three-sketch (Tropp et al. 2019) of each jet component;
- ``range_finder``: the two-pass randomized range finder with one power iteration;
- ``ema(beta)``: the paper's EMA sketches, fed ``--ema-batches`` earlier batches of fresh
  points (same size) before the measured one, as in training with resampling.

Sketch methods are averaged over ``--seeds`` sketch seeds. Equal rank means (nearly) equal
held bytes: k (N + w) + s^2 numbers per component for the three-sketch, k (N + w) for the
range finder.

    python benchmarks/gradient_fidelity.py --nets 4x50 4x256 --points 4000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import make_task, write_table  # noqa: E402

from pinnsketch import StorageConfig  # noqa: E402


def flat_grad(task, batch) -> torch.Tensor:
    task.model.zero_grad(set_to_none=True)
    task.backward(batch)
    return torch.cat([p.grad.reshape(-1) for p in task.model.parameters()])


def train_exact(problem: str, depth: int, width: int, points: int, steps: int) -> dict:
    task = make_task(problem, width, depth, points, StorageConfig(policy="exact"))
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-3)
    for i in range(steps):
        batch = task.sample(i // 100)
        opt.zero_grad(set_to_none=True)
        task.backward(batch)
        opt.step()
    return task.model.state_dict()


def compare(problem, depth, width, points, state, storage, ema_batches, index) -> dict:
    task = make_task(problem, width, depth, points, storage)
    task.model.load_state_dict(state)
    batch = task.sample(index)
    if storage.policy == "sketch" and storage.method == "ema":
        for i in range(ema_batches):  # earlier batches of fresh points, same network
            flat_grad(task, task.sample(index - ema_batches + i))
    t0 = time.perf_counter()
    g = flat_grad(task, batch)
    return {"grad": g, "time": time.perf_counter() - t0,
            "held_bytes_per_point": task.held_bytes_per_point}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", default="burgers")
    p.add_argument("--nets", nargs="+", default=["4x50", "4x256"])
    p.add_argument("--points", type=int, default=4000)
    p.add_argument("--ranks", nargs="+", type=int, default=[4, 8, 16, 32, 64])
    p.add_argument("--train-steps", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--ema-batches", type=int, default=10)
    p.add_argument("--methods", nargs="+",
                   default=["truncated_svd", "range_finder", "three_sketch", "ema:0.9",
                            "ema:0.99"])
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = p.parse_args(argv)
    methods = [(m.split(":")[0], float(m.split(":")[1]) if ":" in m else 0.0)
               for m in args.methods]
    rows = []
    for net in args.nets:
        depth, width = (int(v) for v in net.split("x"))
        ref_task = make_task(args.problem, width, depth, args.points, StorageConfig())
        states = {"initial": ref_task.model.state_dict(),
                  f"trained {args.train_steps}": train_exact(args.problem, depth, width,
                                                             args.points, args.train_steps)}
        for label, state in states.items():
            index = 1000  # a batch never seen in training
            exact = compare(args.problem, depth, width, args.points, state,
                            StorageConfig(policy="exact"), 0, index)
            g0 = exact["grad"]
            ranks = sorted({min(r, width) for r in args.ranks} | {width})
            for method, beta in methods:
                for r in ranks:
                    errs, coss, held = [], [], None
                    seeds = 1 if method == "truncated_svd" else args.seeds  # deterministic
                    for seed in range(seeds):
                        storage = StorageConfig(policy="sketch", rank=r, method=method,
                                                beta=beta or 0.9, seed=seed)
                        res = compare(args.problem, depth, width, args.points, state, storage,
                                      args.ema_batches, index)
                        g = res["grad"]
                        errs.append(float((g - g0).norm() / g0.norm()))
                        coss.append(float(g @ g0 / (g.norm() * g0.norm())))
                        held = res["held_bytes_per_point"]
                    name = method if method != "ema" else f"ema(beta={beta})"
                    row = {"net": net, "network": label, "method": name,
                           "rank": "full" if r == width else r,
                           "grad_rel_error": sum(errs) / len(errs),
                           "grad_cosine": sum(coss) / len(coss),
                           "held_B_per_pt": held,
                           "exact_held_B_per_pt": exact["held_bytes_per_point"]}
                    rows.append(row)
                    print(row, flush=True)
    command = "python benchmarks/gradient_fidelity.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    stem = f"gradient_fidelity_{args.problem}" + (
        "" if len(methods) == 5 else "_" + "_".join(m for m, _ in methods))
    print(write_table(rows, args.out, stem, command,
                      f"Gradient fidelity against exact storage, {args.problem}, "
                      f"{args.points} points, float32, mean of {args.seeds} sketch seeds"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

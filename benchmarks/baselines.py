"""Activation-memory baselines at (nearly) equal held bytes: gradient fidelity, step time, L2.

On a Burgers PINN (float32), for each network, every configuration below keeps the hidden
layers' pre-activation jets for backward in its own way:

- ``exact``: the jets themselves (the reference gradient); ``checkpoint``: only the points,
  everything recomputed; ``autograd`` (nested autograd, the naive baseline: bytes and time
  only, its gradient equals exact's);
- ``quant8``: 8-bit codes with stochastic rounding per row block of 256 points and column
  (ActNN-style), about 1/4 of exact's bytes;
- ``projection``: Z R (N x k), R Gaussian / sqrt(k) (RAD/EXACT-style), k the largest rank
  whose bytes fit the target;
- ``sketch`` with ``three_sketch`` (per-step, Tropp et al.), ``ema`` (the paper's EMA
  three-sketch, beta 0.9, fed ``--ema-batches`` earlier batches before a measured gradient),
  ``truncated_svd`` and ``range_finder``, each at the largest rank whose bytes fit the target.

The target is quant8's held bytes (``--budget quant8``) or a fraction of exact's
(``--budget 0.1``). Per configuration: held bytes per interior point of the PDE engine
(saved-tensor hooks; the residual's own few tensors included) and the ratios to
``autograd`` and ``exact``; gradient cosine and relative error against exact on the initial
network and on one trained ``--pretrain-steps`` Adam steps with exact storage (mean over
``--seeds`` noise seeds); the median time of one step (forward + backward) as a ratio to
exact, timed side by side in this process, configurations interleaved round by round; the
L2 relative error after ``--train-steps`` Adam steps (lr 1e-3, fresh points every 100
steps, no L-BFGS) from the same initial network.

    python benchmarks/baselines.py --nets 4x50 --points 500 --train-steps 1000 \
        --pretrain-steps 500 --seeds 3 --time-reps 20 --out benchmarks/out/baselines_4x50
    python benchmarks/baselines.py --nets 4x256 --points 500 --train-steps 200 \
        --pretrain-steps 300 --seeds 3 --time-reps 10 --out benchmarks/out/baselines_4x256

(each under 10 minutes with one thread on a shared 2-core machine; the tables are in
benchmarks/results/baselines_burgers.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import make_task, write_table  # noqa: E402
from gradient_fidelity import flat_grad, train_exact  # noqa: E402

from pinnsketch import StorageConfig  # noqa: E402
from pinnsketch.control import compressed_held_bytes, exact_held_bytes, sketch_held_bytes  # noqa: E402
from pinnsketch.memory import HeldBytes  # noqa: E402
from pinnsketch.pde.derivatives import required_derivatives  # noqa: E402
from pinnsketch.storage import JetPlan  # noqa: E402

ITEMSIZE = 4  # float32
RESAMPLE_EVERY = 100
MEASURED_BATCH = 1000  # the index of a batch of points never seen in training


@dataclass(frozen=True)
class Config:
    label: str
    storage: StorageConfig
    rank: int | None = None

    @property
    def stochastic(self) -> bool:
        s = self.storage
        return s.policy in ("quant8", "projection") or (
            s.policy == "sketch" and s.method != "truncated_svd")

    def with_seed(self, seed: int) -> StorageConfig:
        return replace(self.storage, seed=seed)


def _largest_rank(width: int, held) -> int:
    """The largest k in [1, width] with held(k) <= the target (held(k) is increasing)."""
    best = 1
    for k in range(1, width + 1):
        if held(k):
            best = k
    return best


def configs(net_width: int, depth: int, points: int, J: int, dim: int, budget: str,
            beta: float) -> tuple[list[Config], int]:
    """The configurations and the target held bytes they are sized to."""
    widths = (net_width,) * depth
    exact = exact_held_bytes(points, widths, J, dim, ITEMSIZE)
    quant = compressed_held_bytes("quant8", points, widths, J, dim, ITEMSIZE)
    target = quant if budget == "quant8" else int(float(budget) * exact)

    def sketch_rank(method: str) -> int:
        return _largest_rank(net_width, lambda k: sketch_held_bytes(
            points, widths, k, J, dim, ITEMSIZE, method) <= target)

    proj = _largest_rank(net_width, lambda k: compressed_held_bytes(
        "projection", points, widths, J, dim, ITEMSIZE, k) <= target)
    r3, rsvd = sketch_rank("three_sketch"), sketch_rank("truncated_svd")
    rrf = sketch_rank("range_finder")
    out = [Config("autograd", StorageConfig("autograd")),
           Config("exact", StorageConfig("exact")),
           Config("checkpoint", StorageConfig("checkpoint")),
           Config("quant8", StorageConfig("quant8")),
           Config("projection", StorageConfig("projection", rank=proj), proj),
           Config("sketch three_sketch", StorageConfig("sketch", rank=r3,
                                                       method="three_sketch"), r3),
           Config(f"sketch ema({beta})", StorageConfig("sketch", rank=r3, method="ema",
                                                       beta=beta), r3),
           Config("sketch truncated_svd", StorageConfig("sketch", rank=rsvd,
                                                        method="truncated_svd"), rsvd),
           Config("sketch range_finder", StorageConfig("sketch", rank=rrf,
                                                       method="range_finder"), rrf)]
    return out, target


def pde_held_bytes(task, batch) -> int:
    """Bytes saved for backward by the PDE residual on the interior points."""
    pts = batch.sets["pde"][0].to(task.dtype)
    with HeldBytes(exclude=task.model.parameters()) as held:
        task.problem.residual(task.engines["pde"](pts))
    return held.bytes


def gradient(args, width, depth, state, cfg: Config, seed: int) -> torch.Tensor:
    storage = cfg.with_seed(seed) if cfg.stochastic else cfg.storage
    task = make_task(args.problem, width, depth, args.points, storage)
    task.model.load_state_dict(state)
    if storage.policy == "sketch" and storage.method == "ema":
        for i in range(args.ema_batches):  # earlier batches of fresh points, same network
            flat_grad(task, task.sample(MEASURED_BATCH - args.ema_batches + i))
    return flat_grad(task, task.sample(MEASURED_BATCH))


def step_times(args, width, depth, cfgs: list[Config]) -> dict[str, float]:
    """Median forward + backward time of each configuration, interleaved round by round."""
    tasks = {c.label: make_task(args.problem, width, depth, args.points, c.storage)
             for c in cfgs}
    batch = next(iter(tasks.values())).sample(0)
    times: dict[str, list[float]] = {c.label: [] for c in cfgs}
    for _ in range(args.time_reps + 1):  # the first round warms up
        for label, task in tasks.items():
            t0 = time.perf_counter()
            task.model.zero_grad(set_to_none=True)
            task.backward(batch)
            times[label].append(time.perf_counter() - t0)
    return {label: statistics.median(t[1:]) for label, t in times.items()}


def train_l2(args, width, depth, cfg: Config) -> float:
    task = make_task(args.problem, width, depth, args.points, cfg.storage)
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-3)
    for i in range(args.train_steps):
        batch = task.sample(i // RESAMPLE_EVERY)
        opt.zero_grad(set_to_none=True)
        task.backward(batch)
        opt.step()
    return task.evaluate()["l2_relative_error"]


def run_net(args, net: str) -> list[dict]:
    depth, width = (int(v) for v in net.split("x"))
    probe = make_task(args.problem, width, depth, args.points, StorageConfig("exact"))
    plan = JetPlan.from_keys(required_derivatives([probe.problem.residual], probe.domain),
                             probe.domain.dim)
    cfgs, target = configs(width, depth, args.points, plan.num_components, probe.domain.dim,
                           args.budget, args.beta)
    print(f"{net}: target {target / args.points:.0f} B/point; ranks "
          + ", ".join(f"{c.label} {c.rank}" for c in cfgs if c.rank), flush=True)
    t0 = time.perf_counter()
    states = {"initial": probe.model.state_dict(),
              "trained": train_exact(args.problem, depth, width, args.points,
                                     args.pretrain_steps)}
    print(f"  pretraining {time.perf_counter() - t0:.0f} s", flush=True)
    exact_grads = {k: gradient(args, width, depth, s, cfgs[1], 0) for k, s in states.items()}
    times = step_times(args, width, depth, cfgs)
    held = {}
    for cfg in cfgs:
        task = make_task(args.problem, width, depth, args.points, cfg.storage)
        held[cfg.label] = pde_held_bytes(task, task.sample(0))
    rows = []
    for cfg in cfgs:
        t0 = time.perf_counter()
        row = {"net": net, "config": cfg.label, "rank": cfg.rank,
               "held_B_per_pt": held[cfg.label] / args.points,
               "vs_autograd": held[cfg.label] / held["autograd"],
               "vs_exact": held[cfg.label] / held["exact"]}
        for name, state in states.items():
            g0 = exact_grads[name]
            seeds = range(args.seeds if cfg.stochastic else 1)
            gs = [gradient(args, width, depth, state, cfg, s) for s in seeds]
            gs, g0 = [g.double() for g in gs], g0.double()
            row[f"cos_{name}"] = statistics.mean(float(g @ g0 / (g.norm() * g0.norm()))
                                                 for g in gs)
            row[f"rel_err_{name}"] = statistics.mean(float((g - g0).norm() / g0.norm())
                                                     for g in gs)
        row["time_vs_exact"] = times[cfg.label] / times["exact"]
        row["step_ms"] = 1e3 * times[cfg.label]
        if cfg.label != "autograd" and args.train_steps > 0:
            row["final_L2"] = train_l2(args, width, depth, cfg)
        rows.append(row)
        print(f"  {row} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", default="burgers")
    p.add_argument("--nets", nargs="+", default=["4x50", "4x256"])
    p.add_argument("--points", type=int, default=500)
    p.add_argument("--budget", default="quant8",
                   help="'quant8' (match its held bytes) or a fraction of exact's, e.g. 0.1")
    p.add_argument("--beta", type=float, default=0.9, help="EMA weight of the ema sketch")
    p.add_argument("--train-steps", type=int, default=1000)
    p.add_argument("--pretrain-steps", type=int, default=500,
                   help="exact Adam steps before the 'trained' gradient comparison")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--ema-batches", type=int, default=10)
    p.add_argument("--time-reps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = p.parse_args(argv)
    if args.budget != "quant8":
        try:
            ok = 0 < float(args.budget) <= 1
        except ValueError:
            ok = False
        if not ok:
            p.error(f"--budget {args.budget!r}: use 'quant8' or a fraction in (0, 1]")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = [row for net in args.nets for row in run_net(args, net)]
    command = "python benchmarks/baselines.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    print(f"total {time.perf_counter() - t0:.0f} s")
    print(write_table(rows, args.out, f"baselines_{args.problem}", command,
                      f"Activation-memory baselines at equal held bytes ({args.budget}), "
                      f"{args.problem}, {args.points} points, float32, "
                      f"{args.pretrain_steps} pretraining / {args.train_steps} training Adam "
                      f"steps, mean of {args.seeds} noise seeds"))
    print(f"command: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The first thing to run on a machine with a GPU: one command, at most 8 minutes.

    python benchmarks/gpu_check.py                        # CUDA, the full check
    python benchmarks/gpu_check.py --device cpu --quick   # tiny sizes: the same code paths

For the plain and the modified MLP (4 x 256, Burgers, float32) and the storage policies
``autograd``, ``exact`` and a rank-32 ``sketch``:

1. at 10^5 and 10^6 collocation points: the median step time (forward, backward, Adam) over
   3 steps after a warm-up, the bytes held for backward (saved-tensor hooks, DESIGN.md
   section 4) and the peak device memory of a step (``torch.cuda.max_memory_allocated``
   after ``reset_peak_memory_stats``; on a CPU the process's peak RSS, which only grows);
2. the largest single batch each fits: one step at 10^5 points, doubling until the device
   runs out of memory (caught, reported) or ``--max-points``;
3. the wall time of one default ``pinnsketch solve burgers`` run on the device (the network
   and phases of ``ModelConfig()`` and ``OptimConfig()``, named in the row).

Items are skipped (and say so) once ``--budget-s`` seconds have passed. Writes
``gpu_check_<device>.md`` / ``.csv`` under ``--out``. All device handling is in
:class:`Device` (synchronisation, peak memory, out-of-memory), which the CPU quick mode runs
too (a test does).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

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
from pinnsketch.memory import peak_rss_bytes  # noqa: E402
from pinnsketch.pde.sampling import sample_interior  # noqa: E402
from pinnsketch.tasks.pinn import PINNBatch, PINNTask  # noqa: E402

POLICIES = {"autograd": StorageConfig("autograd"), "exact": StorageConfig("exact"),
            "sketch r32": StorageConfig("sketch", rank=32)}


class Device:
    """Everything that differs between a CUDA device and the CPU, in one place."""

    def __init__(self, name: str):
        self.name = name
        self.cuda = name.startswith("cuda")
        if self.cuda and not torch.cuda.is_available():
            raise SystemExit(f"--device {name}: CUDA is not available here; use --device cpu")

    def describe(self) -> str:
        if self.cuda:
            p = torch.cuda.get_device_properties(torch.device(self.name))
            return f"{p.name}, {p.total_memory / 2**30:.0f} GiB"
        return "CPU"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.name)

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.name)

    def peak_bytes(self) -> int:
        """Peak allocated device memory since :meth:`reset_peak` (CPU: peak RSS so far)."""
        return torch.cuda.max_memory_allocated(self.name) if self.cuda else peak_rss_bytes()

    @staticmethod
    def out_of_memory(exc: BaseException) -> bool:
        if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
            return True
        return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()

    def recover(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()


@dataclass(frozen=True)
class Sizes:
    width: int
    depth: int
    points: tuple[int, ...]
    first_batch: int
    steps: int
    condition_points: int
    burgers: dict


FULL = Sizes(256, 4, (100_000, 1_000_000), 100_000, 3, 256, {})
QUICK = Sizes(16, 2, (256, 512), 256, 1, 16,
              {"model": ModelConfig(width=8, depth=2),
               "sampling": SamplingConfig(collocation=128, boundary=16, initial=16),
               "optim": OptimConfig(steps=5, lbfgs_steps=2)})


def make_task(dev: Device, sizes: Sizes, arch: str, policy: str) -> PINNTask:
    """A Burgers task on the device (its interior batch is replaced per size, see
    :func:`step_stats`, so that the reference is computed once per task)."""
    return PINNTask(load_problem("burgers"), ModelConfig(width=sizes.width, depth=sizes.depth,
                                                         arch=arch),
                    SamplingConfig(collocation=16, boundary=sizes.condition_points,
                                   initial=sizes.condition_points, method="uniform"),
                    OptimConfig(), POLICIES[policy], seed=0, device=dev.name)


def step_stats(dev: Device, task: PINNTask, points: int, steps: int) -> dict:
    """Median step time, held bytes and peak memory of ``steps`` steps on ``points`` uniform
    interior points after a warm-up step (of the warm-up step alone for ``steps=0``)."""
    dev.reset_peak()
    batch = task.sample(0)
    interior = sample_interior(task.domain, points, "uniform", 1)
    batch = PINNBatch({**batch.sets, "pde": (interior, torch.zeros_like(interior))})
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-4)
    times = []
    for _ in range(steps + 1):
        dev.sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        task.backward(batch)
        opt.step()
        dev.sync()
        times.append(time.perf_counter() - t0)
    del batch, interior
    return {"step_time_s": statistics.median(times[1:] or times),
            "held_GB": task.held_bytes / 1e9, "held_B_per_pt": task.held_bytes_per_point,
            "peak_GB": dev.peak_bytes() / 1e9}


def guarded(dev: Device, fn, *args) -> dict:
    """fn(*args), or a note when the device runs out of memory."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is caught
        if not dev.out_of_memory(exc):
            raise
        dev.recover()
        return {"note": "out of memory"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run of the paths)")
    p.add_argument("--budget-s", type=float, default=450.0,
                   help="skip the remaining items after this many seconds (default 450)")
    p.add_argument("--max-points", type=int, default=None,
                   help="stop doubling the batch here (default 64e6; 1024 with --quick)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = Device(args.device)
    sizes = QUICK if args.quick else FULL
    cap = args.max_points or (1024 if args.quick else 64_000_000)
    start = time.perf_counter()

    def time_left() -> bool:
        return time.perf_counter() - start < args.budget_s

    rows = []
    for arch in ("mlp", "modified"):
        net = f"{sizes.depth}x{sizes.width} {'plain' if arch == 'mlp' else 'modified'}"
        for policy in POLICIES:
            task = make_task(dev, sizes, arch, policy)
            for n in sizes.points:
                row = {"item": "step", "net": net, "policy": policy, "points": n}
                row.update(guarded(dev, step_stats, dev, task, n, sizes.steps)
                           if time_left() else {"note": "skipped (time budget)"})
                rows.append(row)
                print(row, flush=True)
            n, fits = sizes.first_batch, None
            while n <= cap and time_left():
                got = guarded(dev, step_stats, dev, task, n, 0)
                if "note" in got:
                    break
                fits = (n, got)
                n *= 2
            row = {"item": "largest batch", "net": net, "policy": policy}
            if fits is None:
                row["note"] = "not even the first batch" if time_left() else "skipped (time)"
            else:
                row.update({"points": fits[0], **fits[1]})
                row["note"] = (f"the next doubling ({n}) ran out of memory" if n <= cap
                               else f"stopped at --max-points {cap}")
            rows.append(row)
            print(row, flush=True)
            del task
            dev.recover()
    model = sizes.burgers.get("model", ModelConfig())
    row = {"item": "default burgers run", "net": f"{model.depth}x{model.width} {model.arch}",
           "policy": "autograd"}
    if time_left():
        dev.reset_peak()
        t0 = time.perf_counter()
        s = solve(load_problem("burgers"), run=RunConfig(device=dev.name, quiet=True),
                  **sizes.burgers).summary
        row.update({"points": s["collocation"], "step_time_s": None,
                    "wall_time_s": time.perf_counter() - t0, "peak_GB": dev.peak_bytes() / 1e9,
                    "note": f"L2 {s['l2_relative_error']:.2e} after " + " + ".join(
                        f"{ph['done']} {ph['optimizer']}" for ph in s["phases"])})
    else:
        row["note"] = "skipped (time budget)"
    rows.append(row)
    print(row, flush=True)
    command = "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv)
    cols = ["item", "net", "policy", "points", "step_time_s", "held_GB", "held_B_per_pt",
            "peak_GB", "wall_time_s", "note"]
    title = (f"GPU check on {dev.describe()} ({'quick sizes' if args.quick else 'full'}; "
             f"peak = {'torch.cuda.max_memory_allocated' if dev.cuda else 'process peak RSS'}; "
             f"{time.perf_counter() - start:.0f} s in all)")
    stem = f"gpu_check_{'cuda' if dev.cuda else 'cpu'}{'_quick' if args.quick else ''}"
    print(write_table(rows, args.out, stem, command, title, cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Held bytes per point, peak RSS and step time of each storage policy, side by side.

For each network and policy, a fresh subprocess builds a Burgers PINN with N interior
points (float32), runs a few training steps (forward + backward + Adam), and reports:
held bytes per point (saved-tensor hooks, DESIGN.md section 4), the ratio to ``autograd``,
the median step time and its ratio to ``autograd``, and the process's peak RSS.

    python benchmarks/storage_memory.py --points 100000 --nets 4x50 4x256 --rank 32
    python benchmarks/storage_memory.py --points 100000 --nets 4x256 --arch modified \
        --policies autograd exact sketch:randomized_svd --repeats 3

With ``--repeats R`` every policy runs in R fresh processes, round-robin, and the table gives
the median step time and the median of the per-round ratios to ``autograd`` (this 2-core
machine is shared: its speed drifts by tens of percent between runs).

Held bytes per point divide by all points of the forward (interior and the small boundary
and initial sets, which always use nested autograd); with chunks, by the points of one chunk.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

POLICIES = ["autograd", "exact", "checkpoint", "sketch:randomized_svd", "sketch:truncated_svd",
            "sketch:range_finder", "sketch:three_sketch", "exact-chunked"]
"""``exact-chunked``: exact storage with gradient accumulation over chunks sized so that its
held bytes match ``sketch:truncated_svd`` at the same rank (the honest low-memory baseline:
exact gradients, more passes)."""


def measure_one(problem: str, net: str, policy: str, points: int, rank: int, steps: int,
                arch: str = "mlp") -> dict:
    import torch
    from _common import make_task

    from pinnsketch import StorageConfig
    from pinnsketch.memory import peak_rss_bytes

    depth, width = int(net.split("x")[0]), int(net.split("x")[1])
    chunk = 0
    if policy.startswith("sketch:"):
        storage = StorageConfig(policy="sketch", rank=rank, method=policy.split(":")[1])
    elif policy == "exact-chunked":
        from pinnsketch.memory import expected_exact_bytes, expected_sketch_bytes
        from pinnsketch.pde.derivatives import required_derivatives
        from pinnsketch.storage import JetPlan

        storage = StorageConfig(policy="exact")
        probe = make_task(problem, width, depth, 1, storage, arch=arch)
        plan = JetPlan.from_keys(required_derivatives([probe.problem.residual],
                                                      probe.domain), probe.domain.dim)
        ratio = (expected_sketch_bytes(probe.model, plan, points, 4, rank, "truncated_svd")
                 / expected_exact_bytes(probe.model, plan, points, 4))
        chunk = max(1, int(points * ratio))
    else:
        storage = StorageConfig(policy=policy)
    task = make_task(problem, width, depth, points, storage, chunk_size=chunk, arch=arch)
    batch = task.sample(0)
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-4)
    rss_before = peak_rss_bytes()
    times, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        terms = task.backward(batch)
        opt.step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"problem": problem, "net": net, "arch": arch, "policy": policy, "points": points,
            "held_bytes_per_point": task.held_bytes_per_point,
            "held_MB": task.held_bytes / 2**20,
            "step_time_s": statistics.median(times[1:] if len(times) > 1 else times),
            "step_cpu_s": statistics.median(cpu[1:] if len(cpu) > 1 else cpu),
            "peak_rss_MB": peak_rss_bytes() / 2**20, "chunk_size": chunk or None,
            "setup_rss_MB": rss_before / 2**20, "loss": terms["loss"]}


def _combine_runs(net: str, policies: list[str], runs: dict[str, list[dict]]) -> list[dict]:
    """One row per policy from its round-robin runs: the first run's counts, the median step
    time over runs, and ``time_vs_autograd`` = the median over rounds of the ratio to
    autograd's step time in the same round (paired, so that a slow spell of the shared
    machine moves both); ``time_runs_s`` lists every run's median step time. The same for
    the process CPU time of a step (``step_cpu_s``, ``cpu_vs_autograd``): on a machine
    whose cores other jobs share, wall time counts the waits for a core, CPU time does not
    (compare it at one thread, ``--threads 1``)."""
    rows = []
    base = runs.get("autograd", [])
    for policy in policies:
        good = [r for r in runs[policy] if "step_time_s" in r]
        if not good:
            rows.append({"net": net, "policy": policy, "note": runs[policy][0]["note"]})
            continue
        row = dict(good[0])
        times = [r["step_time_s"] for r in good]
        row["step_time_s"] = statistics.median(times)
        row["time_runs_s"] = " ".join(f"{t:.3g}" for t in times)
        row["peak_rss_MB"] = max(r["peak_rss_MB"] for r in good)
        if "step_cpu_s" in good[0]:
            row["step_cpu_s"] = statistics.median(r["step_cpu_s"] for r in good)
        if base and "held_MB" in base[0]:
            row["held_vs_autograd"] = row["held_MB"] / base[0]["held_MB"]
            for key, col in (("step_time_s", "time_vs_autograd"), ("step_cpu_s", "cpu_vs_autograd")):
                ratios = [r[key] / b[key] for r, b in zip(runs[policy], base, strict=True)
                          if key in r and key in b]
                row[col] = statistics.median(ratios) if ratios else None
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", default="burgers")
    p.add_argument("--points", type=int, default=100_000)
    p.add_argument("--nets", nargs="+", default=["4x50", "4x256"])
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads of each measuring process (0: torch's default)")
    p.add_argument("--arch", default=None,
                   help="trunk of every net: mlp (default) or modified; when given, the table's "
                        "name ends in _ARCH")
    p.add_argument("--policies", nargs="+", default=POLICIES)
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1,
                   help="rounds of one fresh process per policy, run round-robin; the table "
                        "gives medians over rounds (the machine's speed drifts between runs)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    p.add_argument("--one", nargs=2, metavar=("NET", "POLICY"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    arch = args.arch or "mlp"
    if args.one:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        row = measure_one(args.problem, args.one[0], args.one[1], args.points, args.rank,
                          args.steps, arch)
        print("RESULT " + json.dumps(row))
        return 0
    from _common import write_table

    rows = []
    for net in args.nets:
        runs: dict[str, list[dict]] = {policy: [] for policy in args.policies}
        for _ in range(args.repeats):  # round-robin: each round runs every policy once
            for policy in args.policies:
                cmd = [sys.executable, __file__, "--problem", args.problem, "--points",
                       str(args.points), "--rank", str(args.rank), "--steps", str(args.steps),
                       "--arch", arch, "--threads", str(args.threads), "--one", net, policy]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode != 0 or not lines:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    runs[policy].append({"note": f"failed ({proc.returncode})"})
                    continue
                runs[policy].append(json.loads(lines[-1][7:]))
                print(json.dumps(runs[policy][-1]), flush=True)
        rows.extend(_combine_runs(net, args.policies, runs))
    command = "python benchmarks/storage_memory.py " + " ".join(sys.argv[1:] if argv is None else argv)
    cols = ["net", "arch", "policy", "points", "chunk_size", "held_MB", "held_bytes_per_point",
            "held_vs_autograd",
            "step_time_s", "time_vs_autograd", "time_runs_s", "step_cpu_s", "cpu_vs_autograd",
            "peak_rss_MB"]
    stem = f"storage_memory_{args.problem}_{args.points}" + (
        f"_{args.arch}" if args.arch else "")
    print(write_table(rows, args.out, stem, command,
                      f"Held bytes and step time, {args.problem}, {args.points} points, float32, "
                      f"sketch rank {args.rank}, {arch} trunk (the 2 cores were shared "
                      "with other jobs)", cols))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())

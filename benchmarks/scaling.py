"""Scaling with the collocation count: held bytes, peak memory and step time of each policy.

For each storage policy (``autograd``, ``exact``, ``checkpoint``, ``sketch`` at ``--rank``)
and each interior collocation count N (``--points``, default 10^3 ... 10^6), a fresh
subprocess builds the Burgers PINN (float32, ``--net``, 200 boundary and 256 initial
points) and runs full training steps (forward + backward + Adam). Reported:

- ``held_MB`` and ``held_bytes_per_point``: bytes saved for backward (saved-tensor hooks,
  DESIGN.md section 4); per point of the forward (interior plus the 456 condition points,
  which always use nested autograd), so at N = 10^3 the conditions weigh in.
- ``peak_delta_MB``: the rise of the process's resident set during the steps, i.e. the
  high-water mark after them minus the resident set before them. On Linux the high-water
  mark is reset first (``/proc/self/clear_refs``) and read as ``VmHWM``; elsewhere it is
  ``ru_maxrss`` (then the figure is a lower bound when setting up peaked higher). Freed heap
  memory is handed back to the OS (glibc ``malloc_trim``) before the resident set is read.
  ``peak_rss_MB`` is the whole process's peak (torch itself is about 0.3 GB).
- ``step_time_s``: the median over ``--steps`` timed steps after one warm-up step; for
  N > ``--big`` a single step, untimed warm-up skipped (the one-off costs are negligible
  there and a step takes tens of seconds on a CPU).

Memory cap: before running (policy, N) the peak resident set is estimated from the largest
smaller N measured for that policy, linearly (every tensor of a step is N x something):
``rss_before + peak_delta(N0) N / N0``. If that exceeds ``--mem-cap`` the configuration,
and every larger N of that policy, is skipped with a note; a failed or killed subprocess is
noted too, never fatal.

    python benchmarks/scaling.py --net 4x50 --rank 32 --points 1000 10000 100000 1000000

Writes benchmarks/out/scaling_<net>.csv, .md and .png (three log-log panels against N).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

POLICIES = ("autograd", "exact", "checkpoint", "sketch")
MB = 2**20


def _status_kib(field: str) -> int | None:
    """A ``VmRSS`` / ``VmHWM`` line of /proc/self/status in KiB (None off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's resident-set high-water mark of this process (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``), so that the resident
    set before the steps holds no reusable free blocks that would hide part of their rise."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_one(problem: str, net: str, policy: str, points: int, rank: int, steps: int,
                big: int, method: str) -> dict:
    import torch
    from _common import make_task

    from pinnsketch import StorageConfig
    from pinnsketch.memory import peak_rss_bytes

    depth, width = (int(v) for v in net.split("x"))
    storage = (StorageConfig(policy="sketch", rank=rank, method=method) if policy == "sketch"
               else StorageConfig(policy=policy))
    task = make_task(problem, width, depth, points, storage)
    batch = task.sample(0)
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-4)

    def step() -> dict:
        opt.zero_grad(set_to_none=True)
        terms = task.backward(batch)
        opt.step()
        return terms

    _trim_heap()
    exact_peak = _reset_peak() and _status_kib("VmHWM") is not None
    rss_before = (_status_kib("VmRSS") or 0) * 1024 if exact_peak else peak_rss_bytes()
    times = []
    if points <= big:
        step()
    for _ in range(steps if points <= big else 1):
        t0 = time.perf_counter()
        terms = step()
        times.append(time.perf_counter() - t0)
    peak = (_status_kib("VmHWM") or 0) * 1024 if exact_peak else peak_rss_bytes()
    return {"policy": policy, "rank": rank if policy == "sketch" else None, "points": points,
            "held_MB": task.held_bytes / MB, "held_bytes_per_point": task.held_bytes_per_point,
            "peak_delta_MB": max(peak - rss_before, 0) / MB,
            "peak_rss_MB": peak_rss_bytes() / MB, "rss_before_MB": rss_before / MB,
            "step_time_s": statistics.median(times), "timed_steps": len(times),
            "loss": float(terms["loss"])}


def estimate_peak_mb(row: dict, points: int) -> float:
    """Peak resident set at ``points`` extrapolated linearly from a measured ``row``."""
    return row["rss_before_MB"] + row["peak_delta_MB"] * points / row["points"]


def plot(rows: list[dict], path: Path, title: str) -> None:
    import numpy as np

    from pinnsketch.plots import new_figure, save_png

    panels = (("held_MB", "held for backward (MB)"), ("peak_delta_MB", "peak RSS rise (MB)"),
              ("step_time_s", "step time (s)"))
    fig = new_figure((13.0, 4.0))
    for i, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        for j, policy in enumerate(dict.fromkeys(r["policy"] for r in rows)):
            pts = [(r["points"], r[key]) for r in rows
                   if r["policy"] == policy and r.get(key) is not None and r[key] > 0]
            if pts:
                x, y = np.array(pts, float).T
                ax.loglog(x, y, "o-", color=f"C{j}", label=_label(rows, policy))
        ax.set_xlabel("collocation points N")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        if i == 0:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_png(fig, path)


def _label(rows: list[dict], policy: str) -> str:
    ranks = {r.get("rank") for r in rows if r["policy"] == policy} - {None}
    return f"{policy} (rank {ranks.pop()})" if ranks else policy


def parse_bytes_mb(text: str) -> float:
    """'16GB', '512MB' or a number of bytes -> megabytes (2^20)."""
    from pinnsketch.control import parse_bytes

    try:
        return parse_bytes(text) / MB
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", default="burgers")
    p.add_argument("--net", default="4x50", help="DEPTHxWIDTH (default 4x50)")
    p.add_argument("--rank", type=int, default=32, help="sketch rank (default 32)")
    p.add_argument("--method", default="truncated_svd", help="sketch method (default truncated_svd)")
    p.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    p.add_argument("--points", nargs="+", type=int,
                   default=[1_000, 10_000, 100_000, 1_000_000])
    p.add_argument("--steps", type=int, default=3, help="timed steps for N <= --big (3)")
    p.add_argument("--big", type=int, default=200_000,
                   help="above this N: no warm-up, one timed step (200000)")
    p.add_argument("--mem-cap", type=parse_bytes_mb, default=parse_bytes_mb("16GB"),
                   help="skip a configuration whose estimated peak RSS exceeds this (16GB)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per subprocess (900)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    p.add_argument("--one", nargs=2, metavar=("POLICY", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rank < 1 or args.steps < 1 or any(n < 1 for n in args.points):
        p.error("--rank, --steps and every --points value must be >= 1")
    if args.one:
        print("RESULT " + json.dumps(measure_one(args.problem, args.net, args.one[0],
                                                 int(args.one[1]), args.rank, args.steps,
                                                 args.big, args.method)))
        return 0
    from _common import write_table

    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    rows: list[dict] = []
    for policy in args.policies:
        last = None
        for n in sorted(args.points):
            if last is not None and estimate_peak_mb(last, n) > args.mem_cap:
                rows.append({"policy": policy, "points": n, "note": (
                    f"skipped: estimated peak RSS {estimate_peak_mb(last, n) * MB / 1e9:.1f} GB "
                    f"> cap {args.mem_cap * MB / 1e9:.1f} GB")})
                print(rows[-1], flush=True)
                break
            cmd = [sys.executable, __file__, "--problem", args.problem, "--net", args.net,
                   "--rank", str(args.rank), "--method", args.method, "--steps", str(args.steps),
                   "--big", str(args.big), "--one", policy, str(n)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                      timeout=args.timeout)
            except subprocess.TimeoutExpired:
                rows.append({"policy": policy, "points": n,
                             "note": f"timed out after {args.timeout:g} s"})
                print(rows[-1], flush=True)
                break
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                rows.append({"policy": policy, "points": n, "note": (
                    f"failed (exit {proc.returncode}): {proc.stderr.strip()[-200:]!r}")})
                print(rows[-1], flush=True)
                break
            last = json.loads(lines[-1][7:])
            rows.append(last)
            print(json.dumps(last), flush=True)
    command = "python benchmarks/scaling.py " + " ".join(sys.argv[1:] if argv is None else argv)
    stem = f"scaling_{args.problem}_{args.net}"
    title = (f"Scaling with N, {args.problem}, {args.net} tanh, float32, sketch "
             f"{args.method} rank {args.rank}")
    cols = ["policy", "rank", "points", "held_MB", "held_bytes_per_point", "peak_delta_MB",
            "peak_rss_MB", "step_time_s", "timed_steps", "note"]
    print(write_table(rows, args.out, stem, command, title, cols))
    plot([r for r in rows if "note" not in r], args.out / f"{stem}.png", title)
    print(f"figure: {args.out / f'{stem}.png'}")
    print(f"regenerate: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One training step on a single huge collocation batch: held bytes, peak RSS, step time.

Each batch size runs in a fresh subprocess (peak RSS is per process); sizes are tried in
order and the first failure (error or out-of-memory kill) ends the list for that setting.

    python benchmarks/largest_batch.py --net 4x50 --storage sketch --rank 32 --points 250000 500000 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def one(problem: str, net: str, storage: str, rank: int, points: int) -> dict:
    import torch
    from _common import make_task

    from pinnsketch import StorageConfig
    from pinnsketch.memory import peak_rss_bytes

    depth, width = (int(v) for v in net.split("x"))
    cfg = (StorageConfig(policy="sketch", rank=rank) if storage == "sketch"
           else StorageConfig(policy=storage))
    task = make_task(problem, width, depth, points, cfg)
    batch = task.sample(0)
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-4)
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    terms = task.backward(batch)
    opt.step()
    return {"net": net, "storage": storage, "rank": rank if storage == "sketch" else None,
            "points": points, "held_GB": task.held_bytes / 1e9,
            "held_bytes_per_point": task.held_bytes_per_point,
            "peak_rss_GB": peak_rss_bytes() / 1e9, "step_time_s": time.perf_counter() - t0,
            "loss_finite": bool(terms["loss"] == terms["loss"])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", default="burgers")
    p.add_argument("--net", default="4x50")
    p.add_argument("--storage", default="sketch")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--points", nargs="+", type=int, default=[250_000, 500_000, 1_000_000])
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(one(args.problem, args.net, args.storage, args.rank,
                                         args.points[0])))
        return 0
    from _common import write_table

    rows = []
    for n in args.points:
        cmd = [sys.executable, __file__, "--one", "--problem", args.problem, "--net", args.net,
               "--storage", args.storage, "--rank", str(args.rank), "--points", str(n)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            rows.append({"net": args.net, "storage": args.storage, "points": n,
                         "note": f"failed (exit {proc.returncode}): {proc.stderr[-300:]!r}"})
            print(rows[-1], flush=True)
            break
        rows.append(json.loads(lines[-1][7:]))
        print(rows[-1], flush=True)
    command = "python benchmarks/largest_batch.py " + " ".join(sys.argv[1:] if argv is None else argv)
    stem = f"largest_batch_{args.net}_{args.storage}"
    print(write_table(rows, args.out, stem, command,
                      f"One step on a single batch, {args.problem}, {args.net}, {args.storage}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

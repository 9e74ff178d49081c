"""Default-settings accuracy benchmark: each built-in problem on its defaults, several seeds.

Runs ``pinnsketch solve PROBLEM --seed S`` (through the same solve() the CLI calls) one
after the other, and writes a CSV and a markdown table of L2 relative error and wall time.

    python benchmarks/defaults.py --problems burgers heat poisson --seeds 0 1 2 --out benchmarks/out/defaults

Each run's directory (history.csv, result.h5, plots) is kept under --out.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from pinnsketch.cli import main as cli_main
from pinnsketch.results import read_json


def run(problems: list[str], seeds: list[int], out: Path, extra: list[str]) -> list[dict]:
    rows = []
    for problem in problems:
        for seed in seeds:
            run_dir = out / f"{problem}-seed{seed}"
            argv = ["solve", problem, "--seed", str(seed), "--out", str(run_dir), "--overwrite",
                    "--quiet", *extra]
            print("pinnsketch " + " ".join(argv), flush=True)
            code = cli_main(argv)
            if code != 0:
                rows.append({"problem": problem, "seed": seed, "status": f"exit {code}"})
                continue
            s = read_json(run_dir / "summary.json")
            reached = _time_to(run_dir / "history.csv", (1e-3, 1e-4, 1e-5, 1e-6))
            rows.append({"problem": problem, "seed": seed, "status": s["status"], **reached,
                         "l2_relative_error": s["l2_relative_error"],
                         "wall_time_s": round(s["wall_time_s"], 1),
                         "phases": " + ".join(f"{p['optimizer']}:{p['done']}" for p in s["phases"]),
                         "peak_rss_MB": round(s["peak_rss_bytes"] / 2**20)})
            print(rows[-1], flush=True)
    return rows


def _time_to(history: Path, levels: tuple[float, ...]) -> dict[str, float | str]:
    """Wall seconds until the evaluated L2 error first reached each level ('-': never)."""
    with open(history) as f:
        rows = [r for r in csv.DictReader(f) if r.get("l2_relative_error")]
    out: dict[str, float | str] = {}
    for level in levels:
        hit = next((float(r["wall_time_s"]) for r in rows
                    if float(r["l2_relative_error"]) <= level), None)
        out[f"t_{level:.0e}"] = round(hit, 1) if hit is not None else "-"
    return out


def write_tables(rows: list[dict], out: Path, command: str, name: str = "defaults") -> None:
    cols = ["problem", "seed", "status", "l2_relative_error", "wall_time_s", "t_1e-03",
            "t_1e-04", "t_1e-05", "t_1e-06", "phases", "peak_rss_MB"]
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = [f"Command: `{command}`", "", "| " + " | ".join(cols) + " |",
             "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.2e}" if c == "l2_relative_error" and v != "" else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", nargs="+", default=["burgers", "heat", "poisson"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--table", default="defaults", help="name of the table files (NAME.csv, .md)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/defaults"))
    p.add_argument("extra", nargs=argparse.REMAINDER,
                   help="further 'pinnsketch solve' options after --, applied to every run")
    args = p.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/defaults.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = run(args.problems, args.seeds, args.out, extra)
    write_tables(rows, args.out, command, args.table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Inject faults into real ``pinnsketch solve`` processes and check what survives (issue 16).

Faults, drawn in turn: SIGINT and SIGTERM at a random moment of the Adam phase and of the
L-BFGS phase, SIGKILL at a random moment of a run that checkpoints every step (so that most
kills land inside a checkpoint write), and a second writer started on the directory of a
running run. After each fault the directory is checked, then the run is resumed to its end
and checked again:

- resumable: ``--resume`` finishes with exit 0 (a kill before the first checkpoint is
  counted apart: there is nothing to resume);
- steps lost: the steps the process had shown done (its progress bar, a lower bound) minus
  the steps its checkpoint holds (target 0 for SIGINT/SIGTERM, at most the checkpoint
  interval for SIGKILL);
- inconsistent: summary.json, checkpoint.pt and history.csv disagree, a result file is
  missing after a graceful stop, a temporary file is left behind, or the second writer
  changed anything (target 0).

    python benchmarks/fault_injection.py --faults 60 --seed 0

writes ``benchmarks/results/fault_injection.md`` (and the per-fault rows as CSV).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

HERE = Path(__file__).parent
NET = ["--width", "8", "--depth", "2", "--collocation", "128", "--boundary-points", "16",
       "--initial-points", "16", "--threads", "1"]
KINDS = ("sigint-adam", "sigterm-adam", "sigint-lbfgs", "sigterm-lbfgs", "sigkill-write",
         "second-writer")
EXPECTED_CODE = {"sigint": 130, "sigterm": 143, "sigkill": -9}


@dataclass
class Outcome:
    kind: str
    delay_s: float
    exit_code: int
    shown_steps: int
    saved_steps: int | None
    steps_lost: int | None
    hit_checkpoint_write: bool | None
    resumable: bool | None
    inconsistent: str


class _Run:
    """A ``pinnsketch solve`` process whose stderr (the progress bar) is read as it runs."""

    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "pinnsketch", "solve", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read(64), ""):
            self.err += chunk

    def shown_steps(self) -> int:
        """The largest step count the progress bar has shown."""
        counts = [int(m) for m in re.findall(r"(\d+)/\d+ \[", self.err)]
        return max(counts, default=0)

    def wait(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code


def _wait_until_training(out: Path, run: _Run, warmup: float) -> None:
    deadline = time.monotonic() + 120
    while not (out / "config.json").exists():
        if run.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the run did not start: {run.err[-2000:]}")
        time.sleep(0.05)
    time.sleep(warmup)  # the first step pays torch's lazy initialisation


def _history(out: Path) -> list[dict]:
    with open(out / "history.csv") as f:
        return list(csv.DictReader(f))


def _check(out: Path, graceful: bool) -> tuple[int | None, str]:
    """(steps held by the checkpoint, what is inconsistent or "")."""
    problems = []
    ckpt_path = out / "checkpoint.pt"
    if not ckpt_path.exists():
        return None, "" if not graceful else "no checkpoint"
    try:
        ts = torch.load(ckpt_path, weights_only=True)["train_state"]
    except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
        return None, f"checkpoint unreadable: {exc}"
    saved = sum(ts["phase_steps"])
    summary_path = out / "summary.json"
    if graceful:
        if not summary_path.exists():
            problems.append("no summary.json")
        else:
            s = json.loads(summary_path.read_text())
            if s["steps"] + s["lbfgs_steps"] != saved:
                problems.append("summary and checkpoint disagree")
        rows = _history(out)
        if not rows or int(rows[-1]["step"]) != saved:
            problems.append("history.csv and checkpoint disagree")
        adam = [int(r["step"]) for r in rows if r["phase"] == "adam"]
        if adam != list(range(1, s["steps"] + 1)):
            problems.append("history.csv has gaps")
        for name in ("result.h5", "solution.png", "history.png", "config.json"):
            if not (out / name).exists():
                problems.append(f"{name} missing")
    elif summary_path.exists():
        problems.append("a killed run has a summary.json")
    if graceful and list(out.glob(".*.tmp")):
        problems.append("temporary files left")
    return saved, "; ".join(problems)


def _resume(out: Path, total_args: list[str]) -> tuple[bool, str]:
    done = subprocess.run([sys.executable, "-m", "pinnsketch", "solve", "--resume", str(out),
                           "--quiet", *total_args], capture_output=True, text=True)
    if done.returncode != 0:
        return False, f"resume failed: {done.stderr.strip()[-300:]}"
    saved, problem = _check(out, graceful=True)
    s = json.loads((out / "summary.json").read_text())
    if s["status"] != "completed":
        problem = (problem + "; " if problem else "") + f"resumed status {s['status']}"
    return True, problem


def one_fault(kind: str, rng: random.Random, root: Path) -> Outcome:
    out = root / f"{kind}-{rng.randrange(10**9)}"
    signal_name = kind.split("-")[0]
    if kind.endswith("lbfgs"):
        phases = ["--steps", "0", "--lbfgs-steps", "200000", "--eval-every", "100000"]
    elif kind == "sigkill-write":
        phases = ["--steps", "200000", "--lbfgs-steps", "0", "--eval-every", "1"]
    else:
        phases = ["--steps", "200000", "--lbfgs-steps", "0", "--eval-every", "100000"]
    run = _Run(["heat", "--out", str(out), *NET, *phases])
    _wait_until_training(out, run, warmup=3.0)
    delay = rng.uniform(0.2, 3.0)
    time.sleep(delay)
    if kind == "second-writer":
        before = (out / "config.json").read_bytes()
        second = subprocess.run([sys.executable, "-m", "pinnsketch", "solve", "heat", "--out",
                                 str(out), "--overwrite", "--quiet", *NET, "--steps", "5"],
                                capture_output=True, text=True)
        problems = []
        if second.returncode != 2 or "being written by another" not in second.stderr:
            problems.append(f"second writer not refused (exit {second.returncode})")
        if (out / "config.json").read_bytes() != before:
            problems.append("second writer changed config.json")
        run.proc.send_signal(signal.SIGINT)
        code = run.wait()
        saved, problem = _check(out, graceful=True)
        if problem:
            problems.append(problem)
        ok, resumed_problem = _resume(out, ["--steps", str(saved + 5)])
        if resumed_problem:
            problems.append(resumed_problem)
        shown = run.shown_steps()
        return Outcome(kind, delay, code, shown, saved, max(shown - (saved or 0), 0), None, ok,
                       "; ".join(problems))
    run.proc.send_signal(getattr(signal, signal_name.upper()))
    code = run.wait()
    shown = run.shown_steps()
    graceful = signal_name != "sigkill"
    hit_write = (any(out.glob(".*.tmp")) if not graceful else None)
    saved, problem = _check(out, graceful=graceful)
    problems = [problem] if problem else []
    if code != EXPECTED_CODE[signal_name]:
        problems.append(f"exit code {code}, expected {EXPECTED_CODE[signal_name]}")
    resumable = None
    if saved is not None:
        target = (["--lbfgs-steps", str(saved + 10)] if kind.endswith("lbfgs")
                  else ["--steps", str(saved + 10)])
        resumable, resumed_problem = _resume(out, target)
        if resumed_problem:
            problems.append(resumed_problem)
    lost = max(shown - saved, 0) if saved is not None else None
    return Outcome(kind, delay, code, shown, saved, lost, hit_write, resumable,
                   "; ".join(problems))


def _summary_table(rows: list[Outcome]) -> str:
    lines = ["| fault | n | resumable | not resumable (killed before the first checkpoint) | "
             "steps lost: mean / max | kills inside a checkpoint write | inconsistent |",
             "|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        sub = [r for r in rows if r.kind == kind]
        if not sub:
            continue
        lost = [r.steps_lost for r in sub if r.steps_lost is not None]
        resumable = sum(1 for r in sub if r.resumable)
        no_ckpt = sum(1 for r in sub if r.saved_steps is None)
        hits = [r.hit_checkpoint_write for r in sub if r.hit_checkpoint_write is not None]
        lines.append(
            f"| {kind} | {len(sub)} | {resumable} | {no_ckpt} | "
            + (f"{sum(lost) / len(lost):.1f} / {max(lost)}" if lost else "-")
            + f" | {sum(hits) if hits else '-'} | {sum(1 for r in sub if r.inconsistent)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    rows: list[Outcome] = []
    root = Path(tempfile.mkdtemp(prefix="pinnsketch-faults-"))
    try:
        for i in range(args.faults):
            kind = KINDS[i % len(KINDS)]
            outcome = one_fault(kind, rng, root)
            rows.append(outcome)
            print(f"{i + 1:3d}/{args.faults} {outcome.kind:14s} exit {outcome.exit_code:4d} "
                  f"shown {outcome.shown_steps:6d} saved {outcome.saved_steps} "
                  f"lost {outcome.steps_lost} resumable {outcome.resumable} "
                  f"{outcome.inconsistent or 'consistent'}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    args.results.mkdir(parents=True, exist_ok=True)
    with open(args.results / "fault_injection.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    table = _summary_table(rows)
    text = (f"# Fault injection\n\n`python benchmarks/fault_injection.py --faults {args.faults} "
            f"--seed {args.seed}` ({len(rows)} faults; a heat problem on a 2 x 8 network, one "
            "thread per run; the machine's two cores were shared with other jobs).\n\n"
            "Steps lost: the steps the process's progress bar had shown (a lower bound of "
            "those done) minus the steps in its checkpoint. SIGKILL runs checkpoint every "
            "step; 'inside a checkpoint write' counts kills that left a temporary file.\n\n"
            + table + "\n\nEvery fault: `benchmarks/results/fault_injection.csv`.\n")
    (args.results / "fault_injection.md").write_text(text)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

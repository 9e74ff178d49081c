"""SIGINT and SIGTERM keep every finished step (issue 16, item 4), in real processes.

Before (commit d28ebdb) Ctrl-C restored the last evaluation's state, losing every step since
(up to ``--eval-every`` - 1 Adam steps, or a whole L-BFGS phase), and SIGTERM was not handled
at all (the process died with no summary). These tests send the signals to a real
``python -m pinnsketch solve`` process.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

ARGS = ["--width", "6", "--depth", "2", "--collocation", "64", "--boundary-points", "8",
        "--initial-points", "8", "--quiet", "--threads", "1", "--eval-every", "100000"]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pinnsketch", "solve", "heat", "--out",
                             str(out), *ARGS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_training(out: Path, proc: subprocess.Popen, seconds: float) -> None:
    """Until the run directory exists (checks done, training started), then ``seconds``."""
    deadline = time.monotonic() + 60
    while not (out / "config.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    time.sleep(seconds)


def _consistent(out: Path) -> tuple[int, int]:
    """(steps in summary.json, L-BFGS iterations), after checking that the summary, the
    checkpoint and history.csv describe the same state."""
    summary = json.loads((out / "summary.json").read_text())
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    ts = ckpt["train_state"]
    assert ts["phase_steps"] == [p["done"] for p in summary["phases"]]
    assert sum(ts["phase_steps"]) == summary["steps"] + summary["lbfgs_steps"]
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    total = summary["steps"] + summary["lbfgs_steps"]
    assert rows and int(rows[-1]["step"]) == total
    adam = [int(r["step"]) for r in rows if r["phase"] == "adam"]
    assert adam == list(range(1, summary["steps"] + 1))
    for name in ("result.h5", "solution.png", "history.png"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp"))
    return summary["steps"], summary["lbfgs_steps"]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_in_adam_keeps_every_finished_step(tmp_path, sig, code):
    out = tmp_path / "run"
    proc = _start(out, "--steps", "1000000", "--lbfgs-steps", "0")
    _wait_for_training(out, proc, 5.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"stopped on {signal.Signals(sig).name} after" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stop_reason"] == sig.name
    steps, _ = _consistent(out)
    assert steps > 1, "the run should have trained for a while"
    # Nothing was checkpointed before the signal (--eval-every 100000): every saved step
    # was saved at the signal, so none of those done was lost.
    done = subprocess.run([sys.executable, "-m", "pinnsketch", "solve", "--resume", str(out),
                           "--steps", str(steps + 5), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _consistent(out) == (steps + 5, 0)


def test_a_signal_in_lbfgs_keeps_every_finished_iteration(tmp_path):
    out = tmp_path / "run"
    proc = _start(out, "--steps", "0", "--lbfgs-steps", "1000000")
    _wait_for_training(out, proc, 5.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    steps, iters = _consistent(out)
    assert steps == 0 and iters > 0
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"


def test_two_quick_signals_still_leave_complete_files(tmp_path):
    """The second signal either lands in the save (which then finishes) or aborts the step
    in progress (the last good state is saved); the files are complete either way."""
    out = tmp_path / "run"
    proc = _start(out, "--steps", "1000000", "--lbfgs-steps", "0")
    _wait_for_training(out, proc, 4.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    _consistent(out)

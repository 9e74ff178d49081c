"""Run directories belong to the user (issue 16, items 1-3 and 5): overwrite, lock, resume.

Every test here failed on the code before the marker, the lock, data-only checkpoints and
the resume checks (commit d28ebdb), in the way its docstring says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pinnsketch.cli import main
from pinnsketch.rundir import MARKER, RunDirectory, RunDirectoryInUse

TINY = ["--width", "6", "--depth", "2", "--collocation", "64", "--boundary-points", "8",
        "--initial-points", "8", "--quiet", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _run(out: Path, *extra: str, steps: int = 4) -> int:
    return main(["solve", "heat", "--steps", str(steps), "--lbfgs-steps", "0", "--eval-every",
                 "2", "--out", str(out), *TINY, *extra])


def _tree(path: Path) -> dict[str, bytes]:
    """Every file's bytes, except the marker's lock record (who locked it last, and when)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != MARKER}


# ----- overwrite -----

def test_overwrite_refuses_a_directory_pinnsketch_did_not_write(tmp_path, capsys):
    """Before: a directory holding any config.json was deleted whole by --overwrite."""
    out = tmp_path / "myproject"
    (out / "src").mkdir(parents=True)
    (out / "config.json").write_text("{}")
    (out / "thesis.tex").write_text("precious")
    (out / "src" / "model.py").write_text("code")
    before = _tree(out)
    assert _run(out, "--overwrite") == 2
    assert "not a pinnsketch run directory" in capsys.readouterr().err
    assert _tree(out) == before and not (out / MARKER).exists()


def test_overwrite_of_the_current_directory_touches_nothing(tmp_path, monkeypatch, capsys):
    """Before: --out . --overwrite emptied the current directory, then failed."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "data.csv").write_text("1,2")
    before = _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert _run(Path("."), "--overwrite") == 2
    assert "not a pinnsketch run directory" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_overwrite_replaces_only_the_files_a_run_writes(tmp_path, capsys):
    """Before: every file of the directory went, the user's too."""
    out = tmp_path / "run"
    assert _run(out) == 0
    (out / "notes.txt").write_text("mine")
    (out / "analysis").mkdir()
    (out / "analysis" / "fig.png").write_bytes(b"png")
    old = json.loads((out / "config.json").read_text())
    assert _run(out, "--overwrite", "--seed", "3") == 0
    assert "kept 2 file(s)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "analysis" / "fig.png").read_bytes() == b"png"
    assert json.loads((out / "config.json").read_text())["run"]["seed"] == 3 != old["run"]["seed"]


BAD_REFERENCE = '''
import torch
from dataclasses import dataclass
from typing import ClassVar
from pinnsketch import Dirichlet, Problem, interval


@dataclass(frozen=True)
class BadRef(Problem):
    name: ClassVar[str] = "badref"

    @property
    def domain(self):
        return interval(x=(0.0, 1.0))

    def residual(self, d):
        return d.u_xx + 1.0

    def conditions(self):
        return (Dirichlet(0.0),)

    def reference(self, points):
        return torch.zeros(points.shape[0] + 1)
'''


def test_a_failing_overwrite_leaves_the_old_run_intact(tmp_path, capsys):
    """Before: the old run was deleted first, then the wrong-shape reference crashed after
    training, leaving a directory with only config.json."""
    out = tmp_path / "run"
    assert _run(out) == 0
    before = _tree(out)
    bad = tmp_path / "badref.py"
    bad.write_text(BAD_REFERENCE)
    assert main(["solve", str(bad), "--steps", "2", "--lbfgs-steps", "0", "--out", str(out),
                 "--overwrite", *TINY]) == 2
    assert "reference(points) returned (102,) for 101 evaluation points" in capsys.readouterr().err
    assert _tree(out) == before


# ----- the lock -----

def test_a_second_writer_is_refused_while_a_run_holds_the_directory(tmp_path, capsys):
    """Before: a second run with --overwrite deleted the first's files under it."""
    out = tmp_path / "run"
    assert _run(out) == 0
    before = _tree(out)
    with RunDirectory.open(out):  # as a running process would hold it
        assert _run(out, "--overwrite") == 2
        assert "being written by another pinnsketch process" in capsys.readouterr().err
        assert main(["solve", "--resume", str(out), "--steps", "6", "--quiet"]) == 2
        assert "being written by another" in capsys.readouterr().err
        assert _tree(out) == before
    assert main(["solve", "--resume", str(out), "--steps", "6", "--quiet"]) == 0


def test_the_lock_is_released_by_a_killed_process(tmp_path):
    """A lock held by a process that dies (SIGKILL) is released by the operating system."""
    out = tmp_path / "run"
    code = (f"import os, time; from pinnsketch.rundir import RunDirectory; "
            f"rd = RunDirectory.create({str(out)!r}, overwrite=False); print('locked', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirectoryInUse, match=f"pid {proc.pid}"):
            RunDirectory.open(out)
    finally:
        proc.kill()
        proc.wait()
    with RunDirectory.open(out) as rd:
        assert rd.path == out


# ----- resume reads checkpoints as data -----

class _Payload:
    """Pickling this object makes unpickling call os.system: a crafted checkpoint."""

    def __init__(self, flag: Path):
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def test_a_crafted_checkpoint_is_not_executed_on_resume(tmp_path, capsys):
    """Before: torch.load(weights_only=False) ran the payload during --resume."""
    out = tmp_path / "run"
    assert _run(out) == 0
    flag = tmp_path / "pwned"
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    ckpt["train_state"]["history"].append(_Payload(flag))
    torch.save(ckpt, out / "checkpoint.pt")  # a pickle holding a call of os.system
    assert main(["solve", "--resume", str(out), "--steps", "6", "--quiet"]) == 2
    assert "not plain data" in capsys.readouterr().err
    assert not flag.exists()


def test_checkpoints_hold_only_plain_data_under_rank_control(tmp_path):
    """Before: the rank controller's state was pickled as a RankState object, so the
    checkpoint of a --sketch-rank auto run could not be read with weights_only=True."""
    out = tmp_path / "run"
    assert main(["solve", "heat", "--steps", "4", "--lbfgs-steps", "2", "--eval-every", "2",
                 "--sketch-rank", "auto", "--out", str(out), *TINY]) == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    saved = ckpt["train_state"]["task_state"]["rank"]
    assert saved["adam_ranks"] == [6, 6] and saved["rank_state"]["widths"] == [6, 6]


# ----- resume: what may change, the problem file -----

def test_resume_refuses_options_it_would_ignore(tmp_path, capsys):
    """Before: --resume silently ignored --lr, --width, --storage, --seed, --out."""
    out = tmp_path / "run"
    assert _run(out) == 0
    before = _tree(out)
    for extra in (["--lr", "0.1"], ["--width", "9"], ["--storage", "exact"], ["--seed", "2"],
                  ["--out", str(tmp_path / "x")], ["--overwrite"], ["--param", "alpha=1"]):
        assert main(["solve", "--resume", str(out), "--quiet", *extra]) == 2
        err = capsys.readouterr().err
        assert f"{extra[0]} cannot change when a run is resumed" in err, err
    assert _tree(out) == before


def test_resume_refuses_fewer_steps_than_were_done(tmp_path, capsys):
    """Before: config.json then said 2 steps and summary.json 4."""
    out = tmp_path / "run"
    assert _run(out) == 0
    before = _tree(out)
    assert main(["solve", "--resume", str(out), "--steps", "2", "--quiet"]) == 2
    assert "--steps 2 is below the 4 Adam steps" in capsys.readouterr().err
    assert _tree(out) == before


def test_resume_after_the_time_limit_says_so(tmp_path, capsys):
    """Before: a resumed run whose time limit was used up silently did one more step."""
    out = tmp_path / "run"
    assert _run(out, "--time-limit", "1e-9", steps=50) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "time limit" and summary["steps"] == 1
    before = _tree(out)
    assert main(["solve", "--resume", str(out), "--quiet"]) == 2
    assert "this run has used its time limit" in capsys.readouterr().err
    assert _tree(out) == before
    assert main(["solve", "--resume", str(out), "--time-limit", "0", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 50


ROD = '''
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from pinnsketch import Dirichlet, Problem, interval


@dataclass(frozen=True)
class Rod(Problem):
    name: ClassVar[str] = "rod"
    k: float = math.pi

    @property
    def domain(self):
        return interval(x=(0.0, 1.0))

    def residual(self, d):
        return d.u_xx + self.k**2 * torch.sin(self.k * d.x)

    def conditions(self):
        return (Dirichlet(0.0),)

    def reference(self, points):
        return torch.sin(self.k * points[:, 0])
'''


def test_a_user_problem_resumes_from_another_directory_and_refuses_a_changed_file(
        tmp_path, monkeypatch, capsys):
    """Before: config.json kept the path as typed (relative), so resume from another
    directory failed; a changed file was silently trained."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "rod.py").write_text(ROD)
    monkeypatch.chdir(work)
    assert main(["solve", "rod.py", "--steps", "4", "--lbfgs-steps", "0", "--eval-every", "2",
                 "--out", "run", *TINY]) == 0
    source = json.loads((work / "run" / "config.json").read_text())["problem"]["source"]
    assert source["file"] == str(work / "rod.py") and len(source["sha256"]) == 64
    monkeypatch.chdir(tmp_path)
    assert main(["solve", "--resume", "work/run", "--steps", "6", "--quiet"]) == 0

    (work / "rod.py").write_text(ROD.replace("self.k**2", "2.0 * self.k**2"))
    before = _tree(work / "run")
    assert main(["solve", "--resume", "work/run", "--steps", "8", "--quiet"]) == 2
    assert "changed since the run started" in capsys.readouterr().err
    assert _tree(work / "run") == before
    assert main(["solve", "--resume", "work/run", "--steps", "8", "--quiet",
                 "--allow-changed-problem"]) == 0


def test_a_damaged_config_is_refused_without_touching_the_run(tmp_path, capsys):
    """Before: a config.json without its model section ended in a KeyError traceback."""
    out = tmp_path / "run"
    assert _run(out) == 0
    config = json.loads((out / "config.json").read_text())
    del config["model"]
    (out / "config.json").write_text(json.dumps(config))
    before = _tree(out)
    assert main(["solve", "--resume", str(out), "--steps", "6", "--quiet"]) == 2
    assert "config.json' is damaged" in capsys.readouterr().err
    assert _tree(out) == before


def test_empty_out_is_refused(tmp_path, monkeypatch, capsys):
    """Before: --out '' silently wrote to the default directory runs/heat-seed0."""
    monkeypatch.chdir(tmp_path)
    assert main(["solve", "heat", "--steps", "2", "--out", "", *TINY]) == 2
    assert "--out is empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

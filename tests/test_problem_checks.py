"""Silent wrong objectives and unhelpful errors (issue 16, items 7-12).

Each test failed on the code before these checks (commit d28ebdb) as its docstring says.
"""

from __future__ import annotations

import errno
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pinnsketch import Dirichlet, Problem
from pinnsketch.cli import main
from pinnsketch.config import ModelConfig, OptimConfig, SamplingConfig
from pinnsketch.distributed import SINGLE
from pinnsketch.pde.domain import rectangle, space_time
from pinnsketch.pde.problem import uniform_grid
from pinnsketch.storage import StorageConfig
from pinnsketch.tasks.pinn import PINNTask

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker  # noqa: E402

F64 = torch.float64
ROUNDOFF = 1e-12  # float64 sums of a few hundred terms in another order

TINY = ["--width", "6", "--depth", "2", "--collocation", "64", "--boundary-points", "8",
        "--initial-points", "8", "--quiet", "--threads", "1", "--lbfgs-steps", "0"]

HEADER = '''
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from pinnsketch import Dirichlet, Periodic, Problem, interval, rectangle, space_time
'''


def _problem_file(tmp_path: Path, body: str, name: str = "p.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def _rod(residual: str, reference: str | None = "torch.sin(math.pi * points[:, 0])",
         extra: str = "") -> str:
    ref = f"""
    def reference(self, points):
        return {reference}
""" if reference is not None else ""
    return f"""
@dataclass(frozen=True)
class Rod(Problem):
    name: ClassVar[str] = "rod"

    @property
    def domain(self):
        return interval(x=(0.0, 1.0))

    def residual(self, d):
        return {residual}

    def conditions(self):
        return (Dirichlet(0.0),)
{ref}{extra}"""


def _solve(path: Path, out: Path, *extra: str) -> int:
    return main(["solve", str(path), "--steps", "3", "--eval-every", "3", "--out", str(out),
                 *TINY, *extra])


GOOD = "d.u_xx + math.pi**2 * torch.sin(math.pi * d.x)"


# ----- item 7: the shape of every residual -----

@pytest.mark.parametrize("residual, shape", [
    ("d.u_xx.reshape(-1, 1) + math.pi**2 * torch.sin(math.pi * d.x)", "(16, 16)"),
    (f"({GOOD}).sum()", "()"),
    (f"({GOOD}).pow(2).mean().reshape(1)", "(1,)"),
])
def test_a_residual_of_the_wrong_shape_is_refused(tmp_path, capsys, residual, shape):
    """Before: these trained another objective (a (N, N) broadcast, a sum) and exited 0."""
    path = _problem_file(tmp_path, _rod(residual))
    out = tmp_path / "run"
    assert _solve(path, out) == 2
    err = capsys.readouterr().err
    assert f"the residual returned shape {shape} for 16 points" in err, err
    assert not out.exists()


def test_a_condition_of_the_wrong_shape_is_refused(tmp_path, capsys):
    body = _rod(GOOD).replace("return (Dirichlet(0.0),)",
                              "return (Dirichlet(lambda d: d.x.reshape(-1, 1)),)")
    assert _solve(_problem_file(tmp_path, body), tmp_path / "run") == 2
    assert "condition 'dirichlet' returned shape (16, 16) for 16 points" \
        in capsys.readouterr().err


def test_a_residual_that_is_not_finite_is_refused(tmp_path, capsys):
    assert _solve(_problem_file(tmp_path, _rod("torch.log(d.u - 100.0)")), tmp_path / "r") == 2
    assert "the residual is not finite at 16 of 16 points" in capsys.readouterr().err


def test_a_residual_that_raises_names_the_file_and_line(tmp_path, capsys):
    """Before: a KeyError traceback and exit 1."""
    path = _problem_file(tmp_path, _rod("{'a': d.u}['b']"))
    assert _solve(path, tmp_path / "run") == 2
    err = capsys.readouterr().err
    line = path.read_text().splitlines().index("        return {'a': d.u}['b']") + 1
    assert f"rod: residual(d) raised KeyError: 'b' ({path}, line {line})" in err, err


@pytest.mark.parametrize("body, cause", [
    ("def broken(:\n    pass\n", "has a syntax error"),
    ("import no_such_module_here\n", "ModuleNotFoundError: No module named"),
    ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
])
def test_problem_file_errors_are_one_line(tmp_path, capsys, body, cause):
    """Before: a traceback and exit 1."""
    path = _problem_file(tmp_path, body)
    assert _solve(path, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and cause in err, err
    assert ", line " in err


# ----- item 8: the reference -----

def test_a_non_finite_reference_is_refused_before_training(tmp_path, capsys):
    """Before: --param nu=1e-320 trained and reported L2 nan as completed."""
    out = tmp_path / "run"
    assert main(["solve", "burgers", "--param", "nu=1e-320", "--steps", "2", "--out", str(out),
                 *TINY]) == 2
    assert "reference solution is not finite" in capsys.readouterr().err
    assert not out.exists()


def test_a_problem_without_reference_finishes_and_reports_its_losses(tmp_path, capsys):
    """Before: trained, then a TypeError traceback (exit 1) from the final message."""
    out = tmp_path / "run"
    assert _solve(_problem_file(tmp_path, _rod(GOOD, reference=None)), out) == 0
    printed = capsys.readouterr().out
    assert "rod: no reference solution; final loss" in printed and "pde" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["l2_relative_error"] is None
    assert math.isfinite(summary["final_loss"]) and set(summary["final_loss_terms"]) \
        == {"pde", "dirichlet"}
    names = {p.name for p in out.iterdir()}
    assert {"solution.png", "history.png", "result.h5"} <= names
    assert not names & {"reference.png", "error.png"}


# ----- item 9: periodic pairs and chunks -----

def test_periodic_pairs_survive_chunking():
    """Before: chunking split the stacked [lower face; upper face] set, so chunk 0 compared
    unrelated points and the gradient changed with --chunk-size."""
    grads, terms = [], []
    for size in (0, 31):
        task = worker.make_periodic_task(SINGLE, size)
        terms.append(task.backward(task.sample(0)))
        grads.append(torch.cat([p.grad.reshape(-1) for p in task.model.parameters()]))
    assert task._chunks(task.sample(0)) == 3
    assert torch.allclose(grads[0], grads[1], rtol=0, atol=ROUNDOFF * grads[0].abs().max())
    assert terms[1]["periodic"] == pytest.approx(terms[0]["periodic"], rel=ROUNDOFF)


# ----- item 10: Condition.weight -----

def _weighted_task(weights=()) -> PINNTask:
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass(frozen=True)
    class Heavy(Problem):
        name: ClassVar[str] = "heavy"

        @property
        def domain(self):
            return rectangle(x=(0.0, 1.0), y=(0.0, 1.0))

        def residual(self, d):
            return d.laplacian + 1.0

        def conditions(self):
            return (Dirichlet(0.25, name="wall", weight=10.0),)

    return PINNTask(Heavy(), ModelConfig(width=6, depth=2),
                    SamplingConfig(collocation=50, boundary=20),
                    OptimConfig(steps=1, lbfgs_steps=0, weights=weights),
                    StorageConfig(), seed=1, dtype=F64)


def test_condition_weight_weights_its_term_and_weight_flag_replaces_it():
    """Before: Dirichlet(..., weight=10.0) had no effect on the loss."""
    task = _weighted_task()
    t = task.backward(task.sample(0))
    assert t["loss"] == pytest.approx(t["pde"] + 10.0 * t["wall"], rel=ROUNDOFF)
    task = _weighted_task(weights=(("wall", 2.0),))
    t = task.backward(task.sample(0))
    assert t["loss"] == pytest.approx(t["pde"] + 2.0 * t["wall"], rel=ROUNDOFF)


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_a_bad_condition_weight_is_refused(weight):
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        Dirichlet(0.0, weight=weight)


# ----- item 11: ranks as kept, not as asked -----

def test_final_ranks_are_the_ranks_kept(tmp_path):
    """Before: --sketch-rank 300 on a 6-wide network reported final_ranks [300, 300]."""
    out = tmp_path / "run"
    assert main(["solve", "heat", "--steps", "2", "--eval-every", "2", "--sketch-rank", "300",
                 "--out", str(out), *TINY]) == 0
    assert json.loads((out / "summary.json").read_text())["final_ranks"] == [6, 6]


# ----- item 12: errors -----

@pytest.mark.parametrize("argv, flag", [
    (["--steps", "-1"], "--steps must be an integer >= 0"),
    (["--collocation", "0"], "--collocation must be an integer >= 1"),
    (["--eval-every", "0"], "--eval-every must be an integer >= 1"),
    (["--time-limit", "-3"], "--time-limit must be a number >= 0"),
])
def test_messages_name_the_flag_typed(tmp_path, capsys, argv, flag):
    """Before: the messages named the internal field (optim.steps, sampling.collocation)."""
    assert main(["solve", "heat", "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err
    assert flag in err and "optim." not in err and "sampling." not in err, err


def test_out_of_memory_saves_the_last_good_state(tmp_path, monkeypatch, capsys):
    """Before: a traceback and exit 1, nothing saved since the last evaluation."""
    original = PINNTask.backward
    calls = {"n": 0}

    def backward(task, batch):
        calls["n"] += 1
        if calls["n"] == 9:  # Adam step 9 (the checks before training do not call it)
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                               "can't allocate memory: you tried to allocate 99999999999 bytes")
        return original(task, batch)

    monkeypatch.setattr(PINNTask, "backward", backward)
    out = tmp_path / "run"
    assert main(["solve", "heat", "--steps", "20", "--eval-every", "4", "--out", str(out),
                 *TINY]) == 2
    err = capsys.readouterr().err
    assert "out of memory at Adam step 9" in err and "step 8) is saved" in err
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["status"], summary["stop_reason"], summary["steps"]) \
        == ("failed", "out of memory", 8)


def test_a_full_disk_says_so(tmp_path, monkeypatch, capsys):
    """Before: a bare '[Errno 28] No space left on device' without the file."""
    import pinnsketch.results as results

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results.os, "replace", full)
    out = tmp_path / "run"
    assert main(["solve", "heat", "--steps", "2", "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert "disk full while writing" in err and "config.json" in err


def test_a_damaged_checkpoint_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["solve", "heat", "--steps", "2", "--eval-every", "2", "--out", str(out),
                 *TINY]) == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    del ckpt["model"]
    torch.save(ckpt, out / "checkpoint.pt")
    summary = (out / "summary.json").read_bytes()
    assert main(["solve", "--resume", str(out), "--steps", "4", "--quiet"]) == 2
    assert "is damaged: it lacks its config, model or train state" in capsys.readouterr().err
    assert (out / "summary.json").read_bytes() == summary


# ----- the seams -----

def test_import_works_without_the_resource_module():
    """Before: ``import pinnsketch`` imported ``resource`` at module level (absent on Windows)."""
    code = ("import sys; sys.modules['resource'] = None; import pinnsketch; "
            "from pinnsketch.memory import peak_rss_bytes; print(peak_rss_bytes())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stderr


def test_the_default_grid_of_a_3d_problem_stays_small():
    """Before: 101 points per axis in every dimension, 1,030,301 points in 3-D."""
    box = space_time(rectangle(x=(0.0, 1.0), y=(0.0, 1.0)), t=(0.0, 1.0))
    assert uniform_grid(box).points().shape[0] == 47**3
    assert uniform_grid(rectangle(x=(0.0, 1.0), y=(0.0, 1.0))).shape == (101, 101)

"""End-to-end runs through the CLI: files, exit codes, resume, divergence, Ctrl-C, chunking.

Exactness claims (resumed == uninterrupted) are made in float64 and compared to 1e-12: the
same operations on the same numbers in the same order give bitwise-equal results, so any
difference above round-off means state was lost, not rounding.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pinnsketch.cli import main
from pinnsketch.config import ModelConfig, OptimConfig, SamplingConfig
from pinnsketch.pde.registry import make_problem, resolve_problem
from pinnsketch.storage import StorageConfig
from pinnsketch.tasks.pinn import PINNTask

F64 = torch.float64
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HISTORY_COLUMNS = {"step", "phase", "pde", "boundary", "initial", "loss", "lr", "wall_time_s",
                   "l2_relative_error", "held_bytes_per_point", "evaluations", "step_length",
                   "line_search"}
SUMMARY_KEYS = {"problem", "steps", "wall_time_s", "l2_relative_error", "peak_rss_bytes", "seed",
                "status", "held_bytes_per_point", "storage"}
ROUNDOFF = 1e-12


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks run several times faster on one thread on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _history(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)


def _no_tmp_files(out: Path) -> None:
    assert not list(out.glob(".*.tmp")), list(out.iterdir())


def _max_weight_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# ----- a complete run -----

def test_solve_writes_every_file(tmp_path, capsys):
    import h5py

    out = tmp_path / "run"
    rc = main(["solve", "heat", "--steps", "20", "--lbfgs-steps", "10", "--width", "8",
               "--depth", "2", "--collocation", "200", "--boundary-points", "20",
               "--initial-points", "20", "--eval-every", "10", "--param", "hard=false",
               "--out", str(out), "--quiet"])
    assert rc == 0
    assert "heat: L2 relative error" in capsys.readouterr().out
    names = {"config.json", "history.csv", "result.h5", "solution.png", "reference.png",
             "error.png", "history.png", "checkpoint.pt", "summary.json"}
    assert names <= {p.name for p in out.iterdir()}
    _no_tmp_files(out)

    config = json.loads((out / "config.json").read_text())
    assert config["problem"] == {"name": "heat", "source": {"builtin": "heat"},
                                 "params": {"alpha": 0.1, "b": 0.5, "hard": False}}
    assert config["model"]["width"] == 8
    assert config["optim"]["phases"] == [{"optimizer": "adam", "steps": 20},
                                         {"optimizer": "lbfgs", "steps": 10}]

    rows = _history(out)
    assert set(rows[0].keys()) == HISTORY_COLUMNS
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(1, 31))  # 20 Adam steps, then 10 L-BFGS iterations
    assert [r["phase"] for r in rows] == ["adam"] * 20 + ["lbfgs"] * 10
    assert {r["line_search"] for r in rows[20:]} <= {"ok", "skipped", "reset"}
    assert all(int(r["evaluations"]) >= 1 for r in rows[20:])
    evaluated = [int(r["step"]) for r in rows if r["l2_relative_error"]]
    assert evaluated == [10, 20, 30]
    for r in rows:
        loss = float(r["pde"]) + float(r["boundary"]) + float(r["initial"])
        assert math.isclose(float(r["loss"]), loss, rel_tol=1e-12)

    summary = _summary(out)
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["status"] == "completed" and summary["problem"] == "heat"
    assert summary["steps"] == 20 and summary["lbfgs_steps"] == 10 and summary["seed"] == 0
    assert summary["storage"] == "autograd"
    assert 0 < summary["l2_relative_error"] < 10 and summary["held_bytes_per_point"] > 0
    assert math.isclose(summary["l2_relative_error"], float(rows[-1]["l2_relative_error"]),
                        rel_tol=1e-12)

    for png in ("solution.png", "reference.png", "error.png", "history.png"):
        assert (out / png).read_bytes()[:8] == PNG_SIGNATURE, png

    ckpt = _checkpoint(out)
    assert ckpt["format"] == "pinnsketch-checkpoint/2"
    assert ckpt["train_state"]["status"] == "completed"
    assert ckpt["train_state"]["phase_steps"] == [20, 10]

    with h5py.File(out / "result.h5", "r") as f:
        shape = (101, 101)
        assert f["points"].shape == (101 * 101, 2)
        for name in ("solution", "reference", "abs_error"):
            assert f[name].shape == shape, name
        assert (abs(f["solution"][()] - f["reference"][()]) == f["abs_error"][()]).all()
        assert f["grid/x"].shape == (101,) and f["grid/t"].shape == (101,)
        assert set(f["history"].keys()) == HISTORY_COLUMNS
        assert list(f["history/step"][()]) == steps
        assert set(f["model_state"].keys()) == set(ckpt["model"].keys())
        for k, v in ckpt["model"].items():
            assert (torch.from_numpy(f["model_state"][k][()]) == v).all(), k
        assert json.loads(f.attrs["config"]) == config
        assert json.loads(f.attrs["summary"]) == summary


def test_list_subprocess():
    proc = subprocess.run([sys.executable, "-m", "pinnsketch", "list"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert {"burgers", "heat", "poisson"} <= set(names)


def test_list_main(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("burgers", "heat", "poisson"):
        assert any(line.startswith(name) for line in out.splitlines()), out
    assert "u_t + u u_x = nu u_xx" in out


# ----- bad input: exit 2, a message, nothing written -----

@pytest.mark.parametrize("argv, message", [
    (["solve", "burger"], r"unknown problem 'burger'.*burgers, burgers_inverse, heat, helmholtz, kovasznay"),
    (["solve", "heat", "--width", "-3"], r"width.*-3"),
    (["solve", "burgers", "--param", "nu=-1"], r"nu must be > 0.*-1"),
    (["solve", "heat", "--collocation", "0"], r"collocation.*0"),
    (["solve", "heat", "--sampler", "foo"], r"unknown sampler 'foo'.*sobol"),
    (["solve", "heat", "--param", "nu"], r"--param expects KEY=VALUE.*'nu'"),
    (["solve", "heat", "--param", "nu=0.1"], r"no parameter 'nu'.*alpha, b"),
    (["solve", "heat", "--memory-budget", "abc"], r"abc"),
    (["solve", "heat", "--memory-budget", "1KB"], r"--memory-budget needs --storage"),
    (["solve", "heat", "--storage", "exact", "--memory-budget", "10B"], r"too small"),
    (["solve", "heat", "--sketch-rank", "auto", "--memory-budget", "100B"], r"too small"),
    (["solve", "heat", "--param", "hard=false", "--weight", "foo=1"],
     r"unknown terms \['foo'\].*pde, boundary, initial"),
    (["solve"], r"name a problem"),
])
def test_bad_input_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert main(argv + ["--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pinnsketch: error:")
    assert re.search(message, err), err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "nothing may be written anywhere"


@pytest.mark.parametrize("rank", ["0", "abc", "-2"])
def test_bad_sketch_rank_is_argparse_error(tmp_path, capsys, rank):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["solve", "heat", "--sketch-rank", rank, "--out", str(out)])
    assert exc.value.code == 2
    assert "--sketch-rank" in capsys.readouterr().err
    assert not out.exists()


def test_existing_out_dir_needs_overwrite(tmp_path, capsys, tiny_args):
    out = tmp_path / "run"
    argv = ["solve", "heat", "--steps", "2", "--eval-every", "2", "--out", str(out), *tiny_args]
    assert main(argv) == 0
    (out / "notes.txt").write_text("keep me")
    before = (out / "summary.json").read_text()
    assert main(argv) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == before

    assert main(argv + ["--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "keep me"  # not a file a run writes
    assert _summary(out)["status"] == "completed"


def test_unwritable_out_dir(tmp_path, capsys, tiny_args):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "run"  # a directory cannot be made under a regular file
    assert main(["solve", "heat", "--steps", "2", "--out", str(out), *tiny_args]) == 2
    err = capsys.readouterr().err
    assert "cannot create output directory" in err and str(out) in err
    assert blocker.read_text() == "x"
    assert main(["solve", "heat", "--steps", "2", "--out", str(blocker), *tiny_args]) == 2
    assert "not a directory" in capsys.readouterr().err


# ----- resume -----

F64_ARGS = ["--dtype", "float64", "--eval-every", "10", "--resample-every", "0"]


@pytest.fixture(scope="module")
def extended_run(tmp_path_factory):
    """20 Adam steps, then resumed to 40 (float64, one fixed point set)."""
    out = tmp_path_factory.mktemp("extended") / "run"
    tiny = ["--width", "8", "--depth", "2", "--collocation", "100", "--boundary-points", "10",
            "--initial-points", "10", "--lbfgs-steps", "0", "--quiet"]
    assert main(["solve", "heat", "--steps", "20", "--out", str(out), *tiny, *F64_ARGS]) == 0
    first = _history(out)
    assert main(["solve", "--resume", str(out), "--steps", "40", "--quiet"]) == 0
    return out, first


def test_resume_continues_history(extended_run):
    out, first = extended_run
    rows = _history(out)
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(1, 41))  # 21..40 appended, nothing duplicated
    assert rows[:20] == first  # the first 20 rows are kept as they were
    summary = _summary(out)
    assert summary["steps"] == 40 and summary["status"] == "completed"
    assert json.loads((out / "config.json").read_text())["optim"]["phases"][0]["steps"] == 40
    assert _checkpoint(out)["train_state"]["phase_steps"] == [40]
    _no_tmp_files(out)


def test_resume_does_not_raise_learning_rate(extended_run):
    out, _ = extended_run
    lrs = [float(r["lr"]) for r in _history(out)]
    assert all(b <= a for a, b in itertools.pairwise(lrs)), lrs[18:23]


def test_extended_run_equals_uninterrupted(tmp_path, tiny_args):
    a, b = tmp_path / "a", tmp_path / "b"
    common = [*tiny_args, *F64_ARGS, "--lr-decay", "1"]
    assert main(["solve", "heat", "--steps", "20", "--out", str(a), *common]) == 0
    assert main(["solve", "--resume", str(a), "--steps", "40", "--quiet"]) == 0
    assert main(["solve", "heat", "--steps", "40", "--out", str(b), *common]) == 0
    assert _max_weight_diff(_checkpoint(a)["model"], _checkpoint(b)["model"]) <= ROUNDOFF


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "run"
    assert main(["solve", "heat", "--steps", "4", "--eval-every", "2", "--width", "8",
                 "--depth", "2", "--collocation", "50", "--boundary-points", "8",
                 "--initial-points", "8", "--lbfgs-steps", "0", "--quiet",
                 "--out", str(out)]) == 0
    return out


def test_resume_corrupted_checkpoint(base_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    (out / "checkpoint.pt").write_bytes(b"\x00garbage" * 64)
    summary_before = (out / "summary.json").read_bytes()
    assert main(["solve", "--resume", str(out), "--steps", "8", "--quiet"]) == 2
    assert "corrupted" in capsys.readouterr().err
    assert (out / "summary.json").read_bytes() == summary_before  # nothing touched


def test_resume_mismatched_checkpoint(base_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    config = json.loads((out / "config.json").read_text())
    config["model"]["width"] = 16
    (out / "config.json").write_text(json.dumps(config))
    assert main(["solve", "--resume", str(out), "--steps", "8", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "does not match" in err and "width" in err


def test_resume_missing_dir(tmp_path, capsys):
    assert main(["solve", "--resume", str(tmp_path / "nothing"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_resume_and_problem_together(base_run, capsys):
    assert main(["solve", "heat", "--resume", str(base_run), "--quiet"]) == 2
    assert "either a problem or --resume" in capsys.readouterr().err


# ----- divergence and Ctrl-C -----

class _Fault:
    """Wraps PINNTask.backward; from the k-th call on (1-based) injects a fault."""

    def __init__(self, monkeypatch, k: int, kind: str):
        self.k, self.kind, self.calls, self.armed = k, kind, 0, True
        original = PINNTask.backward
        fault = self

        def backward(task, batch):
            fault.calls += 1
            terms = original(task, batch)
            if fault.armed and fault.calls >= fault.k:
                if fault.kind == "interrupt":
                    raise KeyboardInterrupt
                with torch.no_grad():  # the blow-up reaches the weights too
                    for p in task.model.parameters():
                        p.fill_(float("nan"))
                return dict(terms, loss=float("nan"))
            return terms

        monkeypatch.setattr(PINNTask, "backward", backward)


def test_divergence_exit_3(tmp_path, monkeypatch, capsys, tiny_args):
    out = tmp_path / "run"
    _Fault(monkeypatch, k=8, kind="nan")
    rc = main(["solve", "heat", "--steps", "20", "--eval-every", "5", "--out", str(out),
               *tiny_args])
    assert rc == 3
    assert "diverged" in capsys.readouterr().err
    summary = _summary(out)
    assert summary["status"] == "diverged" and summary["steps"] == 5
    ckpt = _checkpoint(out)
    assert ckpt["train_state"]["status"] == "diverged"
    assert ckpt["train_state"]["phase_steps"] == [5]
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert [int(r["step"]) for r in _history(out)] == [1, 2, 3, 4, 5]
    assert math.isfinite(summary["l2_relative_error"])
    _no_tmp_files(out)


def test_interrupt_exit_130_then_resume_is_exact(tmp_path, monkeypatch, capsys, tiny_args):
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--steps", "20", "--eval-every", "5", "--dtype", "float64",
              "--resample-every", "4", *tiny_args]
    fault = _Fault(monkeypatch, k=13, kind="interrupt")  # Ctrl-C inside step 13's backward
    assert main(["solve", "heat", "--out", str(a), *common]) == 130
    assert "the iteration in progress was abandoned; every finished step is saved" \
        in capsys.readouterr().err
    assert _summary(a)["status"] == "interrupted"
    rows = _history(a)
    ckpt = _checkpoint(a)
    assert ckpt["train_state"]["status"] == "interrupted"
    # the 12 finished steps are kept (before: back to step 10, the last evaluation)
    assert ckpt["train_state"]["phase_steps"] == [12] and int(rows[-1]["step"]) == 12
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    _no_tmp_files(a)

    fault.armed = False
    assert main(["solve", "--resume", str(a), "--quiet"]) == 0
    assert _summary(a)["status"] == "completed" and _summary(a)["steps"] == 20
    assert [int(r["step"]) for r in _history(a)] == list(range(1, 21))

    assert main(["solve", "heat", "--out", str(b), *common]) == 0
    diff = _max_weight_diff(_checkpoint(a)["model"], _checkpoint(b)["model"])
    assert diff <= ROUNDOFF, diff
    # the learning rates and losses of the resumed steps match too
    for ra, rb in zip(_history(a), _history(b), strict=True):
        assert math.isclose(float(ra["loss"]), float(rb["loss"]), rel_tol=ROUNDOFF)
        assert math.isclose(float(ra["lr"]), float(rb["lr"]), rel_tol=ROUNDOFF)


# ----- gradient accumulation -----

@pytest.mark.parametrize("policy", ["autograd", "exact"])
def test_chunked_gradient_equals_unchunked(policy):
    """sum_c frac_c * mean_c(r^2) = mean(r^2): chunking changes only the summation order."""
    problem = make_problem(resolve_problem("burgers"))
    sampling = SamplingConfig(collocation=200, boundary=20, initial=20)

    def grads(chunk_size):
        task = PINNTask(problem, ModelConfig(width=12, depth=2), sampling,
                        OptimConfig(steps=1, lbfgs_steps=0, chunk_size=chunk_size),
                        StorageConfig(policy=policy), seed=3, dtype=F64)
        terms = task.backward(task.sample(0))
        return terms, [p.grad.clone() for p in task.model.parameters()], task

    whole, g_whole, task = grads(0)
    assert task._chunks(task.sample(0)) == 1
    for size in (64, 7):
        chunked, g_chunked, task = grads(size)
        assert task._chunks(task.sample(0)) == math.ceil(200 / size)
        scale = max(float(g.abs().max()) for g in g_whole)
        assert scale > 0
        for gw, gc in zip(g_whole, g_chunked, strict=True):
            assert float((gw - gc).abs().max()) <= ROUNDOFF * scale
        for name in whole:
            assert math.isclose(chunked[name], whole[name], rel_tol=ROUNDOFF)


# ----- rank control, memory budget, monitoring (issue 4 integration) -----

def test_sketch_rank_auto_logs_ranks_and_switches_to_exact_for_lbfgs(tmp_path, capsys):
    out = tmp_path / "auto"
    argv = ["solve", "heat", "--width", "16", "--depth", "2", "--collocation", "200",
            "--boundary-points", "10", "--initial-points", "10", "--steps", "60",
            "--lbfgs-steps", "3", "--eval-every", "20", "--sketch-rank", "auto", "--out",
            str(out), "--quiet"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["storage"] == "sketch" and summary["sketch_rank"] == "auto"
    assert summary["final_ranks"] == [16, 16]  # initial rank 32 clamped to the width
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    adam = [r for r in rows if r["phase"] == "adam"]
    lbfgs = [float(r["held_bytes_per_point"]) for r in rows if r["phase"] == "lbfgs"]
    mean_adam = sum(float(r["held_bytes_per_point"]) for r in adam) / len(adam)
    assert math.isclose(summary["mean_held_bytes_per_point"], mean_adam, rel_tol=1e-12)
    assert lbfgs and math.isclose(summary["lbfgs_held_bytes_per_point"],
                                  sum(lbfgs) / len(lbfgs), rel_tol=1e-12)
    # exact storage in L-BFGS; a full-rank sketch also keeps each w x w basis in Adam
    assert summary["lbfgs_held_bytes_per_point"] != summary["mean_held_bytes_per_point"]
    assert all(r["rank_1"] == "16" and r["rank_2"] == "16" for r in adam)
    assert (out / "ranks.png").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["controller"]["initial_rank"] == 32


def test_memory_budget_reduces_the_batch(tmp_path, capsys):
    out = tmp_path / "budget"
    # exact storage of heat (J = 4 components: u, u_x, u_t, u_xx) on 2 x 8 holds
    # 4 * (2 * 4 * 8 + 2) = 264 bytes per point: 100 points need 26,400 bytes.
    argv = ["solve", "heat", "--width", "8", "--depth", "2", "--collocation", "1000",
            "--boundary-points", "10", "--initial-points", "10", "--steps", "3",
            "--lbfgs-steps", "0", "--storage", "exact", "--memory-budget", "26400B",
            "--out", str(out), "--quiet"]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["sampling"]["collocation"] == 100
    assert "exact storage, 100 collocation points" in config["memory_budget"]["plan"]


def test_monitor_columns(tmp_path):
    out = tmp_path / "monitor"
    argv = ["solve", "heat", "--width", "8", "--depth", "2", "--collocation", "100",
            "--boundary-points", "10", "--initial-points", "10", "--steps", "10",
            "--lbfgs-steps", "0", "--eval-every", "5", "--monitor", "--out", str(out),
            "--quiet"]
    assert main(argv) == 0
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["gnorm_est_1"]) > 0 for r in rows)
    exact_rows = [r for r in rows if r.get("gnorm_exact_1")]
    assert len(exact_rows) == 2  # steps 5 and 10
    assert (out / "monitor.png").exists()


def test_resumed_auto_run_continues_with_the_controllers_ranks(tmp_path):
    """A run under --sketch-rank auto, checkpointed at step 20 and resumed to 40, equals the
    uninterrupted run (float64): the controller's state (ranks, loss window, log) and the
    sketch seeds' call counter come back from the checkpoint."""
    from pinnsketch import ModelConfig, OptimConfig, RunConfig, SamplingConfig, load_problem, resume, solve
    from pinnsketch.control import RankController
    from pinnsketch.storage import StorageConfig

    # A controller that finds every layer lossy and the loss stalling, so it changes ranks
    # in the first 20 steps (the error is measured at step 0).
    ctrl = RankController(min_rank=2, initial_rank=2, window=4, cooldown=3, stall_slope=-1.0,
                          fall_slope=-2.0, error_high=1e-9, error_low=1e-12)

    def run(steps: int, out) -> object:
        return solve(load_problem("heat"), model=ModelConfig(width=16, depth=2),
                     sampling=SamplingConfig(collocation=200, boundary=10, initial=10),
                     optim=OptimConfig(steps=steps, lbfgs_steps=0, lr_decay=1.0),
                     storage=StorageConfig(policy="sketch", rank="auto"), controller=ctrl,
                     run=RunConfig(dtype="float64", quiet=True, eval_every=20, out=str(out)))

    whole = run(40, tmp_path / "whole")
    run(20, tmp_path / "part")
    resumed = resume(tmp_path / "part", steps=40, quiet=True)
    ranks = [(h["rank_1"], h["rank_2"]) for h in whole.history]
    assert ranks[0] != ranks[-1]  # the controller did change ranks before the checkpoint
    assert [(h["rank_1"], h["rank_2"]) for h in resumed.history] == ranks
    assert _max_weight_diff(whole.task.model.state_dict(),
                            resumed.task.model.state_dict()) <= ROUNDOFF


def test_a_problem_defined_outside_the_registry_is_not_recorded_under_a_builtin_name(tmp_path):
    """A notebook's own class named like a built-in must not be resumed as the built-in."""
    from dataclasses import dataclass

    from pinnsketch import ModelConfig, OptimConfig, RunConfig, SamplingConfig, load_problem, resume, solve

    @dataclass(frozen=True)
    class MyHeat(type(load_problem("heat"))):  # same name "heat", different class
        alpha: float = 0.2

    out = tmp_path / "mine"
    solve(MyHeat(), model=ModelConfig(width=8, depth=2),
          sampling=SamplingConfig(collocation=50, boundary=8, initial=8),
          optim=OptimConfig(steps=2, lbfgs_steps=0), run=RunConfig(quiet=True, out=str(out)))
    assert json.loads((out / "config.json").read_text())["problem"]["source"] is None
    with pytest.raises(ValueError, match=r"resume\(\.\.\., problem=\.\.\.\)"):
        resume(out, steps=4, quiet=True)
    assert resume(out, steps=4, quiet=True, problem=MyHeat()).summary["steps"] == 4

"""Inverse problems: unknown parameters trained with the network, and observation data.

Float64 where values are compared. Tolerances: a gradient or loss term recomputed by hand
from the same tensors agrees to round-off (~1e-15 relative; we allow 1e-12); the chain rule
through theta = exp(s) is exact, so d loss / ds = theta * d loss / d theta to round-off.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar

import h5py
import numpy as np
import pytest
import torch

from pinnsketch import (
    Dirichlet,
    ModelConfig,
    Observations,
    OptimConfig,
    Problem,
    RunConfig,
    SamplingConfig,
    StorageConfig,
    Unknown,
    interval,
    load_problem,
    resume,
    solve,
)
from pinnsketch.cli import main
from pinnsketch.pde.observations import load_observations
from pinnsketch.pde.registry import make_problem, parse_param_overrides, resolve_problem
from pinnsketch.pde.unknowns import UnknownValueError
from pinnsketch.tasks.pinn import PINNTask

F64 = torch.float64
MODEL = ModelConfig(width=8, depth=2)
SAMPLING = SamplingConfig(collocation=64, boundary=16, initial=16)


pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class Decay(Problem):
    """-u_xx = k^2 sin(k x) on [0, pi] with u = 0 at both ends (u = sin(k x), k = 1 by
    default); k is unknown, observed through u."""

    name: ClassVar[str] = "decay"
    k: float = Unknown(1.5, positive=True)
    k_true: float = 1.0

    @property
    def domain(self):
        return interval(x=(0.0, math.pi))

    def residual(self, d):
        return -d.u_xx - self.k**2 * torch.sin(self.k * d.x)

    def conditions(self):
        return (Dirichlet(0.0, name="ends"),)

    def reference(self, points):
        return torch.sin(self.k_true * points[:, 0])

    def true_values(self):
        return {"k": self.k_true}

    def observations(self, seed):
        x = torch.linspace(0.1, 3.0, 40, dtype=F64)[:, None]
        return Observations(x, {"u": torch.sin(self.k_true * x[:, 0])}, source="decay data")


def _task(problem, **kw):
    return PINNTask(problem, MODEL, SAMPLING, kw.pop("optim", OptimConfig(steps=1, lbfgs_steps=0)),
                    StorageConfig(policy="exact"), seed=1, dtype=F64, **kw)


# ----- Unknown -----

def test_unknown_text_form_round_trips():
    for u in (Unknown(0.05, positive=True), Unknown(-2.0), Unknown(3)):
        assert Unknown.parse(str(u)) == u
    assert Unknown.parse("0.05") is None
    with pytest.raises(ValueError, match="unknown:GUESS"):
        Unknown.parse("unknown:abc")
    with pytest.raises(ValueError, match="guess > 0"):
        Unknown(-1.0, positive=True)
    with pytest.raises(ValueError, match="finite"):
        Unknown(float("nan"))


def test_an_unknown_refuses_arithmetic_outside_the_residual():
    u = Unknown(0.5)
    for op in (lambda: u * 2, lambda: 2 * u, lambda: u > 0, lambda: float(u),
               lambda: torch.sin(u), lambda: torch.ones(2) * u, lambda: np.asarray(u) + 1):
        with pytest.raises(UnknownValueError, match=r"only inside residual\(d\)"):
            op()


def test_the_residual_reads_the_current_value_and_the_gradient_flows_to_log_k():
    task = _task(Decay())
    assert task.term_names == ("pde", "ends", "data:u")
    module = task.parameter_module
    assert set(dict(task.model.named_parameters())) >= {"unknowns.raw.k"}
    assert task.unknown_values() == pytest.approx({"k": 1.5}, rel=1e-15)
    batch = task.sample(0)
    terms = task.backward(batch)
    assert terms["param:k"] == pytest.approx(1.5, rel=1e-15)
    g_s = float(module.raw["k"].grad)
    # the same loss as a function of k itself, by autograd on the residual's formula
    k = torch.tensor(1.5, dtype=F64, requires_grad=True)
    pts = batch.sets["pde"][0].clone().requires_grad_(True)
    from pinnsketch.pde.derivatives import autograd_derivatives
    d = autograd_derivatives(task.domain, pts, task.model)
    pde = (-d.u_xx - k**2 * torch.sin(k * d.x)).pow(2).mean()
    (g_k,) = torch.autograd.grad(pde, k)
    assert g_s == pytest.approx(1.5 * float(g_k), rel=1e-12)  # d/ds = theta d/dtheta


def test_unknowns_are_trained_recorded_plotted_and_checkpointed(tmp_path):
    out = tmp_path / "run"
    result = solve(Decay(), model=MODEL, sampling=SAMPLING,
                   optim=OptimConfig(steps=30, lbfgs_steps=5), run=RunConfig(
                       quiet=True, dtype="float64", out=str(out), eval_every=10))
    ks = [row["param:k"] for row in result.history]
    assert len(set(ks)) > 10  # it moves, in both phases
    assert ks[-1] != ks[29]
    s = result.summary["unknowns"]["k"]
    assert s["initial"] == 1.5 and s["true"] == 1.0 and s["positive"] is True
    assert s["value"] == pytest.approx(result.task.unknown_values()["k"], rel=1e-15)
    assert s["relative_error"] == pytest.approx(abs(s["value"] - 1.0), rel=1e-12)
    assert "param:k" in (out / "history.csv").read_text().splitlines()[0].split(",")
    assert (out / "parameters.png").stat().st_size > 1000
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert math.log(ks[-1]) == pytest.approx(float(ckpt["model"]["unknowns.raw.k"]), rel=1e-12)
    config = json.loads((out / "config.json").read_text())
    assert config["problem"]["params"]["k"] == "unknown:1.5:positive"
    assert config["data"] == {"source": "problem", "seed": 0}
    with h5py.File(out / "result.h5") as f:
        assert "param:k" in f["history"]


def test_resume_continues_the_unknowns(tmp_path):
    """A run resumed from its checkpoint ends where an uninterrupted one does (float64;
    the same arithmetic, so to round-off)."""
    kw = dict(model=MODEL, sampling=SAMPLING)
    whole = solve(Decay(), **kw, optim=OptimConfig(steps=6, lbfgs_steps=4),
                  run=RunConfig(quiet=True, dtype="float64", out=str(tmp_path / "whole"),
                                eval_every=2))
    solve(Decay(), **kw, optim=OptimConfig(steps=6, lbfgs_steps=2),
          run=RunConfig(quiet=True, dtype="float64", out=str(tmp_path / "part"), eval_every=2))
    more = resume(tmp_path / "part", lbfgs_steps=4, quiet=True, problem=Decay())
    assert more.task.unknown_values()["k"] == pytest.approx(
        whole.task.unknown_values()["k"], rel=1e-9)


def test_param_fixes_an_unknown_and_unknown_text_declares_one():
    cls = resolve_problem("burgers_inverse")
    fixed = make_problem(cls, {"nu": "0.0031831"})
    assert fixed.nu == 0.0031831 and fixed.unknowns() == {}
    guess = make_problem(cls, {"nu": "unknown:0.02:positive"})
    assert guess.unknowns() == {"nu": Unknown(0.02, positive=True)}
    # a forward problem's parameter made unknown from the command line
    heat = make_problem(resolve_problem("heat"), {"alpha": "unknown:0.2:positive"})
    assert heat.unknowns() == {"alpha": Unknown(0.2, positive=True)}


def test_fixed_unknown_is_not_trained():
    task = _task(Decay(k=1.0))
    assert task.parameter_module is None and "unknowns" not in dict(task.model.named_modules())
    assert "param:k" not in task.backward(task.sample(0))


def test_an_unknown_declared_twice_is_refused(capsys):
    with pytest.raises(ValueError, match=r"--param nu declared unknown twice \(nu=unknown:0.1 "
                                         r"and nu=unknown:0.2\); give it once"):
        parse_param_overrides(["nu=unknown:0.1", "nu=unknown:0.2"])
    code = main(["solve", "burgers_inverse", "--param", "nu=unknown:0.1", "--param",
                 "nu=unknown:0.2", "--steps", "1", "--lbfgs-steps", "0", "--quiet"])
    assert code == 2 and "declared unknown twice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="cannot be unknown: only float parameters"):
        make_problem(resolve_problem("burgers_inverse"), {"n_obs": "unknown:3"})


def test_an_unknown_that_no_term_reads_is_refused():
    @dataclass(frozen=True)
    class Unused(Decay):
        extra: float = Unknown(2.0)

    with pytest.raises(ValueError, match=r"decay: unknown parameter\(s\) extra are read by no "
                                         r"residual term.*--param extra=VALUE"):
        _task(Unused())


def test_a_reference_that_reads_an_unknown_gives_no_l2_and_says_why():
    heat = load_problem("heat", alpha="unknown:0.2:positive")
    task = PINNTask(heat, MODEL, SAMPLING, OptimConfig(steps=1, lbfgs_steps=0),
                    StorageConfig(policy="exact"), dtype=F64)
    assert task.reference is None and task.evaluate() == {}
    assert any("no L2 error: reference(points) reads an unknown parameter (alpha)" in n
               for n in task.notes)


# ----- observations -----

def _write(tmp_path, kind: str, cols: dict[str, np.ndarray]):
    if kind == "csv":
        path = tmp_path / "obs.csv"
        names = list(cols)
        rows = [",".join(names)] + [",".join(repr(float(cols[n][i])) for n in names)
                                    for i in range(len(cols[names[0]]))]
        path.write_text("\n".join(rows) + "\n")
    elif kind == "npz":
        path = tmp_path / "obs.npz"
        np.savez(path, **cols)
    else:
        path = tmp_path / "obs.h5"
        with h5py.File(path, "w") as f:
            for k, v in cols.items():
                f[k] = v
    return path


COLS = {"x": np.array([0.1, 0.5, 0.9]), "t": np.array([0.2, 0.4, 0.6]),
        "u": np.array([0.3, -0.1, 0.25])}


@pytest.mark.parametrize("kind", ["csv", "npz", "h5"])
def test_data_files_load_alike(tmp_path, kind):
    dom = load_problem("burgers").domain
    obs = load_observations(_write(tmp_path, kind, COLS), dom, ("u",), noise={"u": 0.01})
    np.testing.assert_array_equal(obs.points.numpy(), np.stack([COLS["x"], COLS["t"]], 1))
    np.testing.assert_array_equal(obs.values["u"].numpy(), COLS["u"])
    assert obs.noise == {"u": 0.01}


@pytest.mark.parametrize("kind", ["csv", "npz", "h5"])
@pytest.mark.parametrize("change, match", [
    (lambda c: c.pop("t"), r"lacks the coordinate column\(s\) t; it needs one column per "
                           r"coordinate \('x', 't'\)"),
    (lambda c: c.update(w=c["u"]), r"column\(s\) w are neither coordinates .* nor fields \(u\)"),
    (lambda c: c.pop("u"), r"has no field column; add one per observed field"),
    (lambda c: c["u"].__setitem__(1, np.nan), r"1 of the 3 rows have NaN or infinite field 'u' "
                                               r"\(first: row 1\)"),
    (lambda c: c["x"].__setitem__(2, 1.5), r"1 of the 3 points lie outside the domain \(first: "
                                            r"row 2, \[1.5, 0.6\]\).*x in \[-1, 1\]"),
])
def test_bad_data_files_are_refused_naming_the_file_and_the_fix(tmp_path, kind, change, match):
    cols = {k: v.copy() for k, v in COLS.items()}
    change(cols)
    path = _write(tmp_path, kind, cols)
    with pytest.raises(ValueError, match=match) as info:
        load_observations(path, load_problem("burgers").domain, ("u",))
    assert str(path) in str(info.value)


def test_bad_csv_shapes(tmp_path):
    dom = load_problem("burgers").domain
    path = tmp_path / "bad.csv"
    path.write_text("x,t,u\n0.1,0.2\n")
    with pytest.raises(ValueError, match=r"line 2: 2 values for the 3 columns"):
        load_observations(path, dom, ("u",))
    path.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_observations(path, dom, ("u",))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_observations(tmp_path / "none.csv", dom, ("u",))
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match=r"unknown data format '.txt'"):
        load_observations(tmp_path / "x.txt", dom, ("u",))


def test_noise_levels_weight_fields_by_inverse_variance():
    obs = Observations(torch.zeros(3, 2), {"u": [1, 2, 3], "v": [0, 0, 0]},
                       noise={"u": 0.1, "v": 0.05})
    assert obs.weights() == {"u": 0.25, "v": 1.0}
    with pytest.raises(ValueError, match=r"noise level for 'w', which is not observed"):
        Observations(torch.zeros(3, 2), {"u": [1, 2, 3]}, noise={"w": 0.1})
    with pytest.raises(ValueError, match=r"field 'u' has 2 values for 3 points"):
        Observations(torch.zeros(3, 2), {"u": [1, 2]})


def test_the_data_term_is_the_mean_square_misfit(tmp_path):
    problem = load_problem("burgers")
    task = PINNTask(problem, MODEL, SAMPLING, OptimConfig(steps=1, lbfgs_steps=0),
                    StorageConfig(policy="exact"), dtype=F64,
                    observations=load_observations(_write(tmp_path, "csv", COLS),
                                                   problem.domain, ("u",)))
    assert task.term_names[-1] == "data:u"
    terms = task.backward(task.sample(0))
    pred = task.predict(torch.from_numpy(np.stack([COLS["x"], COLS["t"]], 1)))
    assert terms["data:u"] == pytest.approx(float(((pred - torch.from_numpy(COLS["u"])) ** 2)
                                                  .mean()), rel=1e-12)


def test_cli_data_file_replaces_the_problems_own_and_resume_refuses_a_changed_file(
        tmp_path, capsys):
    cols = {"x": np.linspace(0.2, 2.8, 7)}
    cols["u"] = np.sin(cols["x"])
    path = tmp_path / "decay.csv"
    path.write_text("x,u\n" + "\n".join(f"{a:.17g},{b:.17g}" for a, b in zip(cols["x"], cols["u"])))
    problem_file = tmp_path / "decay.py"
    problem_file.write_text(DECAY_FILE)
    out = tmp_path / "run"
    code = main(["solve", str(problem_file), "--data", str(path), "--data-noise", "u=0.02",
                 "--width", "6", "--depth", "2", "--collocation", "32", "--steps", "3",
                 "--lbfgs-steps", "0", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    line = capsys.readouterr().out
    assert "k = " in line and "% off" in line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["points"] == 7 and summary["data"]["noise"] == {"u": 0.02}
    assert summary["data"]["rms_misfit"]["u"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["file"] == str(path.resolve())
    assert main(["solve", "--resume", str(out), "--steps", "4", "--quiet"]) == 0
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["steps"] == 4 and resumed["data"]["points"] == 7
    bad = tmp_path / "bad.csv"
    bad.write_text("x,u\n4.0,0.1\n")
    assert main(["solve", str(problem_file), "--data", str(bad), "--quiet"]) == 2
    assert "decay: data file" in capsys.readouterr().err  # names the problem and the file
    path.write_text(path.read_text() + "\n3.0,0.1411\n")
    assert main(["solve", "--resume", str(out), "--steps", "5", "--quiet"]) == 2
    assert "changed since the run started" in capsys.readouterr().err


DECAY_FILE = '''
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from pinnsketch import Dirichlet, Problem, Unknown, interval


@dataclass(frozen=True)
class Decay(Problem):
    name: ClassVar[str] = "decay"
    k: float = Unknown(1.5, positive=True)

    @property
    def domain(self):
        return interval(x=(0.0, math.pi))

    def residual(self, d):
        return -d.u_xx - self.k**2 * torch.sin(self.k * d.x)

    def conditions(self):
        return (Dirichlet(0.0, name="ends"),)

    def true_values(self):
        return {"k": 1.0}
'''

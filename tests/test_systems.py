"""Systems of equations, errors per field, and problems on non-box domains end to end.

Float64 throughout where a value is compared, so the tolerances are round-off: a loss term
recomputed by hand from the same network and points agrees to ~1e-15 relative (the same
operations in another order), and we allow 1e-12.
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
    Disk,
    ModelConfig,
    OptimConfig,
    Problem,
    RunConfig,
    SamplingConfig,
    StorageConfig,
    rectangle,
    solve,
    uniform_grid,
)
from pinnsketch.cli import main
from pinnsketch.tasks.pinn import PINNTask

F64 = torch.float64
TINY = dict(model=ModelConfig(width=8, depth=2), sampling=SamplingConfig(collocation=64,
                                                                         boundary=16, initial=16))


pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class Pair(Problem):
    """u_xx + u_yy = v, v = 1 (two fields, two equations) on the unit square, with the exact
    solution's boundary values: u = (x^2 + y^2) / 4, v = 1."""

    name: ClassVar[str] = "pair"
    fields: ClassVar[tuple[str, ...]] = ("u", "v")
    style: str = "dict"

    @property
    def domain(self):
        return rectangle(x=(0.0, 1.0), y=(0.0, 1.0))

    def residual(self, d):
        a, b = d.laplacian_u - d.v, d.v - 1.0
        if self.style == "tuple":
            return (a, b)
        if self.style == "unknown-name":
            return {"poisson": a, "zero": b, "extra": b}
        return {"poisson": a, "zero": b}

    def conditions(self):
        return (Dirichlet(lambda d: (d.x**2 + d.y**2) / 4, field="u", name="bc_u"),
                Dirichlet(1.0, field="v", name="bc_v"))

    def reference(self, points):
        return torch.stack([(points[:, 0] ** 2 + points[:, 1] ** 2) / 4,
                            torch.ones_like(points[:, 0])], 1)

    def evaluation_grid(self):
        return uniform_grid(self.domain, 21)


def _task(problem, **kw) -> PINNTask:
    optim = kw.pop("optim", OptimConfig(steps=1, lbfgs_steps=0))
    return PINNTask(problem, TINY["model"], TINY["sampling"], optim,
                    StorageConfig(policy="exact"), seed=3, dtype=F64, **kw)


def test_a_system_is_one_loss_term_per_equation():
    task = _task(Pair())
    assert task.term_names == ("pde:poisson", "pde:zero", "bc_u", "bc_v")
    batch = task.sample(0)
    terms = task.backward(batch)
    # each equation's term is its own mean square, recomputed here from the network
    pts = batch.sets["pde"][0].clone().requires_grad_(True)
    from pinnsketch.pde.derivatives import autograd_derivatives
    d = autograd_derivatives(task.domain, pts, task.model, fields=task.fields)
    assert terms["pde:poisson"] == pytest.approx(float(((d.u_xx + d.u_yy - d.v) ** 2).mean().detach()),
                                                 rel=1e-12)
    assert terms["pde:zero"] == pytest.approx(float(((d.v - 1) ** 2).mean().detach()), rel=1e-12)
    assert terms["loss"] == pytest.approx(sum(terms[n] for n in task.term_names), rel=1e-12)
    assert task.pde_loss(terms) == pytest.approx(terms["pde:poisson"] + terms["pde:zero"])


def test_a_tuple_system_is_named_eq0_eq1():
    assert _task(Pair(style="tuple")).term_names[:2] == ("pde:eq0", "pde:eq1")


def test_weights_by_equation_and_by_prefix():
    task = _task(Pair(), optim=OptimConfig(steps=1, lbfgs_steps=0,
                                           weights=(("pde", 2.0), ("pde:zero", 5.0))))
    assert task.term_weights == {"pde:poisson": 2.0, "pde:zero": 5.0, "bc_u": 1.0, "bc_v": 1.0}
    with pytest.raises(ValueError, match=r"unknown terms \['pde:nope'\].*pde:poisson"):
        _task(Pair(), optim=OptimConfig(steps=1, lbfgs_steps=0, weights=(("pde:nope", 1.0),)))


@dataclass(frozen=True)
class Declared(Pair):
    equations: ClassVar[tuple[str, ...]] = ("poisson", "zero")


def test_declared_equations_refuse_unknown_and_missing_names():
    assert _task(Declared()).term_names[:2] == ("pde:poisson", "pde:zero")
    with pytest.raises(ValueError, match=r"pair: residual\(d\) returned unknown equation\(s\) "
                                         r"extra.*poisson, zero"):
        _task(Declared(style="unknown-name"))

    @dataclass(frozen=True)
    class Missing(Declared):
        equations: ClassVar[tuple[str, ...]] = ("poisson", "zero", "momentum")

    with pytest.raises(ValueError, match=r"missing equation\(s\) momentum"):
        _task(Missing())


@dataclass(frozen=True)
class Fickle(Pair):
    """Drops an equation once ``switch`` holds an item."""

    switch: list = None

    def residual(self, d):
        out = super().residual(d)
        return {"poisson": out["poisson"]} if self.switch else out


def test_a_residual_must_return_the_same_equations_every_call():
    problem = Fickle(switch=[])
    task = _task(problem)
    task.backward(task.sample(0))
    problem.switch.append(True)
    with pytest.raises(ValueError, match=r"missing equation\(s\) zero.*it returned before"):
        task.backward(task.sample(0))


def test_every_equation_is_checked_for_one_value_per_point():
    @dataclass(frozen=True)
    class Broadcast(Pair):
        def residual(self, d):
            return {"poisson": d.laplacian_u - d.v, "zero": d.v[:, None] - d.v}

    with pytest.raises(ValueError, match=r"pair: equation 'zero' of the residual returned shape "
                                         r"\(16, 16\)"):
        _task(Broadcast())


def test_a_condition_on_an_undeclared_field_is_refused():
    @dataclass(frozen=True)
    class Wrong(Pair):
        def conditions(self):
            return (Dirichlet(0.0, field="w", name="bc_w"),)

    with pytest.raises(ValueError, match=r"pair: condition 'bc_w': field 'w' is not a field of "
                                         r"the problem; its fields: u, v"):
        _task(Wrong())


def test_errors_per_field_and_combined(tmp_path):
    result = solve(Pair(), **TINY, optim=OptimConfig(steps=3, lbfgs_steps=0),
                   run=RunConfig(quiet=True, dtype="float64", out=str(tmp_path / "run")))
    s = result.summary
    task = result.task
    u = task.predict(task.eval_points)
    ref = task.reference
    for i, f in enumerate(("u", "v")):
        want = float((u[:, i] - ref[:, i]).norm() / ref[:, i].norm())
        assert s[f"l2_relative_error_{f}"] == pytest.approx(want, rel=1e-12)
    assert s["l2_relative_error"] == pytest.approx(float((u - ref).norm() / ref.norm()), rel=1e-12)
    last = [row for row in result.history if row.get("l2_relative_error") is not None][-1]
    assert "l2_relative_error_u" in last
    with h5py.File(tmp_path / "run" / "result.h5") as f:
        assert f["solution/u"].shape == f["grid/x"].shape + f["grid/y"].shape
        assert f.attrs["fields"] == "u,v"


# ----- non-box domains end to end -----

@dataclass(frozen=True)
class DiskPoisson(Problem):
    """-laplacian u = 4 on the unit disk, u = 0 on the circle: u = 1 - x^2 - y^2."""

    name: ClassVar[str] = "disk_poisson"

    @property
    def domain(self):
        return Disk((0.0, 0.0), 1.0)

    def residual(self, d):
        return -d.laplacian - 4.0

    def conditions(self):
        return (Dirichlet(0.0, name="circle"),)

    def reference(self, points):
        return 1.0 - points[:, 0] ** 2 - points[:, 1] ** 2


def test_a_disk_problem_is_evaluated_and_saved_on_its_own_points(tmp_path):
    result = solve(DiskPoisson(), **TINY, optim=OptimConfig(steps=3, lbfgs_steps=0),
                   run=RunConfig(quiet=True, dtype="float64", out=str(tmp_path / "run")))
    task = result.task
    ev = task.grid
    pts = ev.coordinates()
    # the evaluation points are the disk's (a grid kept inside, plus the circle), not a box grid
    assert bool(task.domain.inside(pts).all())
    assert bool(task.domain.on_boundary(pts).any())
    u = task.predict(pts)
    ref = 1 - pts[:, 0] ** 2 - pts[:, 1] ** 2
    want = float((u - ref).norm() / ref.norm())
    assert result.summary["l2_relative_error"] == pytest.approx(want, rel=1e-12)
    with h5py.File(tmp_path / "run" / "result.h5") as f:
        assert f.attrs["evaluation"] == "points"
        np.testing.assert_array_equal(f["points"][:], pts.numpy())
        np.testing.assert_array_equal(f["triangles"][:], ev.triangles.numpy())
        np.testing.assert_allclose(f["solution"][:], u.numpy(), rtol=0, atol=0)
        np.testing.assert_allclose(f["reference"][:], ref.numpy(), rtol=0, atol=1e-15)
        np.testing.assert_allclose(f["abs_error"][:], np.abs(u.numpy() - ref.numpy()), atol=1e-15)
    for name in ("solution.png", "reference.png", "error.png"):
        assert (tmp_path / "run" / name).stat().st_size > 1000


@pytest.mark.parametrize("hard", ["true", "false"])
def test_poisson_lshape_runs_from_the_cli(tmp_path, capsys, hard):
    out = tmp_path / "lshape"
    code = main(["solve", "poisson_lshape", "--width", "8", "--depth", "2", "--collocation",
                 "64", "--boundary-points", "32", "--steps", "2", "--lbfgs-steps", "0",
                 "--param", f"hard={hard}", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert math.isfinite(summary["l2_relative_error"])
    assert summary["conditions_in_loss"] == ([] if hard == "true" else ["boundary"])
    with h5py.File(out / "result.h5") as f:
        assert f["triangles"].shape[1] == 3 and f["points"].shape[1] == 2


def test_kovasznay_reports_each_field(tmp_path, capsys):
    out = tmp_path / "kov"
    code = main(["solve", "kovasznay", "--width", "8", "--depth", "2", "--collocation", "64",
                 "--boundary-points", "32", "--steps", "2", "--lbfgs-steps", "0", "--quiet",
                 "--out", str(out)])
    assert code == 0
    line = capsys.readouterr().out
    assert "(u " in line and ", v " in line and ", p " in line
    summary = json.loads((out / "summary.json").read_text())
    assert {"l2_relative_error_u", "l2_relative_error_v", "l2_relative_error_p"} <= set(summary)
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert {"pde:momentum_x", "pde:momentum_y", "pde:continuity", "boundary_u", "boundary_v",
            "outflow_p"} <= set(header)
    for f in ("u", "v", "p"):
        assert (out / f"error_{f}.png").is_file()


@pytest.mark.parametrize("vertices, match", [
    (((0, 0), (1, 0)), r"bad_polygon: a Polygon needs at least 3 vertices, got 2: list the "
                       r"corners"),
    (((0, 0), (1, 1), (1, 0), (0, 1)), r"bad_polygon: Polygon is not simple: edge .* list the "
                                       r"corners in order around the region"),
])
def test_a_bad_polygon_is_refused_naming_the_problem(vertices, match):
    from pinnsketch import Polygon

    @dataclass(frozen=True)
    class BadPolygon(DiskPoisson):
        name: ClassVar[str] = "bad_polygon"

        @property
        def domain(self):
            return Polygon(vertices)

    with pytest.raises(ValueError, match=match):
        solve(BadPolygon(), **TINY, optim=OptimConfig(steps=1, lbfgs_steps=0),
              run=RunConfig(quiet=True))

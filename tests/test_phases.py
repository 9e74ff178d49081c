"""Training as a list of phases (issue 13, items 1-3 and 6): the optimizer seam, checkpoints
of every phase's state, failed line searches, the dense-memory fallback, RAD refinement,
every phase under every storage policy, and bad input.

Exactness claims (resumed == uninterrupted) are made in float64 to 1e-12 relative: the same
operations in the same order, so the only differences could come from a state lost or
changed by the checkpoint (which would show at O(1)).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from pinnsketch import load_problem, resume, solve
from pinnsketch.cli import main
from pinnsketch.config import ModelConfig, OptimConfig, PhaseConfig, RunConfig, SamplingConfig
from pinnsketch.optim import StrongWolfe, bfgs
from pinnsketch.storage import StorageConfig

ROUNDOFF = 1e-12
TINY = dict(model=ModelConfig(width=6, depth=2),
            sampling=SamplingConfig(collocation=64, boundary=8, initial=8))


pytestmark = pytest.mark.usefixtures("one_thread")


def _solve(out, phases, sampling=None, storage=None, **optim):
    return solve(load_problem("heat"), model=TINY["model"],
                 sampling=sampling or TINY["sampling"],
                 optim=OptimConfig(phases=phases, **optim), storage=storage or StorageConfig(),
                 run=RunConfig(dtype="float64", eval_every=3, quiet=True,
                               out=str(out) if out else None))


def _same(a: dict, b: dict) -> None:
    for name in a:
        scale = float(b[name].abs().max()) or 1.0
        assert float((a[name] - b[name]).abs().max()) <= ROUNDOFF * scale, name


@pytest.mark.parametrize("method", ["lbfgs", "bfgs", "ssbfgs", "ssbroyden", "lm"])
def test_a_resumed_second_order_phase_equals_the_uninterrupted_one(tmp_path, method):
    """The phase's whole state (the dense inverse Hessian, L-BFGS pairs, the RAD points)
    goes through the checkpoint as plain data and comes back unchanged (Levenberg-Marquardt:
    its damping)."""
    rad = SamplingConfig(collocation=64, boundary=8, initial=8, rad_every=3, rad_pool=300)
    full = _solve(tmp_path / "full", (PhaseConfig("adam", 4), PhaseConfig(method, 10)), rad)
    _solve(tmp_path / "part", (PhaseConfig("adam", 4), PhaseConfig(method, 5)), rad)
    ckpt = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert ckpt["train_state"]["phase_state"]["refined"] == 1
    resumed = resume(tmp_path / "part", lbfgs_steps=10, quiet=True)
    assert resumed.summary["lbfgs_steps"] == full.summary["lbfgs_steps"] == 10
    _same(resumed.task.model.state_dict(), full.task.model.state_dict())
    losses = [r["loss"] for r in full.history]
    assert [r["loss"] for r in resumed.history] == pytest.approx(losses, rel=ROUNDOFF)


def test_a_refinement_draws_the_points_where_the_residual_is_large():
    """RAD with c = 0 keeps only points whose residual is above the pool's smallest."""
    result = _solve(None, (PhaseConfig("adam", 2), PhaseConfig("bfgs", 2)),
                    SamplingConfig(collocation=64, boundary=8, initial=8, rad_every=1,
                                   rad_pool=640, rad_c=0.0, rad_k=2.0))
    task = result.task
    batch, points = task.refine(7)
    from pinnsketch.pde.sampling import sample_interior
    from pinnsketch.seeds import derive_seed
    pool = sample_interior(task.domain, 640, "uniform", derive_seed(task.seed, 7, -2))
    r = task._residual_magnitude(pool)
    chosen = task._residual_magnitude(points)
    # p ~ r^2: the chosen points' mean squared residual exceeds the pool's (a weighted mean
    # of r^2 with weights r^2 is >= the plain mean, by Cauchy-Schwarz)
    assert float((chosen**2).mean()) > float((r**2).mean())
    assert torch.equal(batch.sets["pde"][0], points)


def test_the_rad_residual_by_jets_equals_nested_autograd():
    """RAD scores its pool by forward jets under no_grad (nothing recorded); |r| equals the
    nested-autograd residual to float64 round-off, for a modified MLP with Fourier features
    and the hard-constraint output transform, and leaves no graph behind."""
    from pinnsketch.pde.sampling import sample_interior
    from pinnsketch.storage import make_engine
    model = ModelConfig(width=6, depth=2, arch="modified", fourier_features=8)
    task = solve(load_problem("heat"), model=model, sampling=TINY["sampling"],
                 optim=OptimConfig(phases=(PhaseConfig("adam", 2),)),
                 run=RunConfig(dtype="float64", quiet=True)).task
    pool = sample_interior(task.domain, 300, "uniform", 5)
    by_jets = task._residual_magnitude(pool, chunk=128)
    engine = make_engine(task.model, task.domain, task.pde_keys,
                         StorageConfig(policy="autograd"))
    points = pool.to(torch.float64).requires_grad_(True)
    (r,) = task._terms("pde", points, torch.zeros_like(points), engine).values()
    nested = r.detach().abs()
    assert not by_jets.requires_grad
    assert float((by_jets - nested).abs().max()) <= ROUNDOFF * float(nested.abs().max())


ADAM_9 = (PhaseConfig("adam", 9),)


def _adam_rad_run(out, rad_adam_every, phases=ADAM_9):
    return solve(load_problem("heat"), model=TINY["model"],
                 sampling=SamplingConfig(collocation=64, boundary=8, initial=8, resample_every=1,
                                         rad_adam_every=rad_adam_every, rad_pool=300,
                                         rad_k=2.0, rad_c=0.0),
                 optim=OptimConfig(phases=phases),
                 run=RunConfig(dtype="float64", eval_every=3, quiet=True,
                               out=str(out) if out else None))


def test_adam_draws_from_the_rad_density_from_step_k_on():
    """With rad_adam_every = 3 the first 3 Adam steps see the sampler's points (the same
    losses as a run without it, bit for bit) and later steps points drawn from the density;
    a draw takes only pool points of positive probability."""
    plain, adapted = _adam_rad_run(None, 0), _adam_rad_run(None, 3)
    losses = [[r["loss"] for r in res.history] for res in (plain, adapted)]
    assert losses[0][:3] == losses[1][:3]
    assert losses[0][3] != losses[1][3]
    assert any(line.startswith("Adam draws its 64 interior points by RAD from step 3 on")
               for line in adapted.summary["log"])
    task = adapted.task
    density = task.adaptive_density(7)
    pool = task._adam_pool(7)
    r = task._residual_magnitude(pool)
    # k = 2, c = 0: p = r^2 / sum r^2
    assert float((density["probabilities"] - r**2 / (r**2).sum()).abs().max()) <= ROUNDOFF
    allowed = torch.zeros(300, dtype=torch.float64)
    allowed[:100] = 1 / 100  # only the pool's first 100 points may be drawn
    batch = task.sample(5, density={"index": 7, "probabilities": allowed})
    drawn = batch.sets["pde"][0]
    assert drawn.shape == (64, 2)
    matches = (drawn[:, None, :] == pool[None, :, :]).all(-1)  # (64, 300)
    assert bool((matches.sum(1) == 1).all()) and int(matches[:, 100:].sum()) == 0
    assert len({tuple(p.tolist()) for p in drawn}) == 64  # without replacement


def test_an_interrupted_adam_rad_run_resumes_exactly(tmp_path, interrupted_run):
    """Ctrl-C inside Adam step 6 keeps steps 1-5 and the density estimated at step 3 in the
    checkpoint (plain data); the resumed run draws the same points and equals the
    uninterrupted one."""
    phases = (PhaseConfig("adam", 9), PhaseConfig("bfgs", 3))
    full = _adam_rad_run(tmp_path / "full", 3, phases)
    interrupted_run(lambda: _adam_rad_run(tmp_path / "part", 3, phases), 6)
    ckpt = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert ckpt["train_state"]["phase_state"]["density"]["index"] == 1
    resumed = resume(tmp_path / "part", quiet=True)
    assert [r["step"] for r in resumed.history] == [r["step"] for r in full.history]
    losses = [r["loss"] for r in full.history]
    assert [r["loss"] for r in resumed.history] == pytest.approx(losses, rel=ROUNDOFF)
    _same(resumed.task.model.state_dict(), full.task.model.state_dict())


def test_a_failed_line_search_resets_and_says_so(tmp_path, monkeypatch, capsys):
    """A line search allowed one evaluation and a strict curvature condition fails often: each
    failure resets the curvature to a scaled identity, is noted in the log and marked in
    history.csv, and the run goes on."""
    import pinnsketch.train as train

    original = train.make_optimizer
    monkeypatch.setattr(train, "make_optimizer", lambda name, **kw: (
        bfgs(search=StrongWolfe(c1=1e-5, c2=1e-4, max_evaluations=1), **kw) if name == "bfgs"
        else original(name, **kw)))
    out = tmp_path / "run"
    assert main(["solve", "heat", "--optimizer", "adam:3,bfgs:12", "--out", str(out),
                 "--width", "6", "--depth", "2", "--collocation", "64", "--boundary-points",
                 "8", "--initial-points", "8", "--quiet"]) == 0
    rows = _csv(out / "history.csv")
    marks = [r["line_search"] for r in rows if r["phase"] == "bfgs"]
    summary = json.loads((out / "summary.json").read_text())
    resets = [line for line in summary["log"] if "line search failed" in line]
    assert "reset" in marks and len(resets) == marks.count("reset")
    assert all("curvature reset to" in line for line in resets)
    assert summary["status"] == "completed" and summary["lbfgs_steps"] == 12


def _csv(path):
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("method", ["ssbroyden", "lm"])
def test_a_dense_phase_over_the_memory_limit_runs_lbfgs_and_says_so(method):
    result = _solve(None, (PhaseConfig("adam", 2), PhaseConfig(method, 3)),
                    dense_limit_bytes=1000)
    assert result.summary["lbfgs_steps"] == 3
    notes = [line for line in result.summary["log"] if "using L-BFGS" in line]
    assert len(notes) == 1 and notes[0].startswith(f"{method} on P=")


@pytest.mark.parametrize("policy", [StorageConfig("autograd"), StorageConfig("exact"),
                                    StorageConfig("checkpoint"), StorageConfig("quant8"),
                                    StorageConfig("sketch", rank=3)])
@pytest.mark.parametrize("method", ["lbfgs", "ssbroyden", "lm"])
def test_every_second_order_phase_runs_under_every_storage_policy(policy, method):
    result = _solve(None, (PhaseConfig("adam", 2), PhaseConfig(method, 3)), storage=policy)
    assert result.summary["status"] == "completed"
    assert math.isfinite(result.summary["final_loss"])


def test_an_exact_policy_gives_the_autograd_iterates():
    """exact and checkpoint storage give the same gradients as nested autograd, so a
    quasi-Newton phase takes the same steps (to round-off)."""
    runs = [_solve(None, (PhaseConfig("adam", 2), PhaseConfig("bfgs", 4)),
                   storage=StorageConfig(p)) for p in ("autograd", "exact", "checkpoint")]
    for other in runs[1:]:
        for a, b in zip(runs[0].task.model.state_dict().values(),
                        other.task.model.state_dict().values(), strict=True):
            assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)


def test_a_line_search_under_rank_control_sees_exact_storage_losses_and_gradients():
    """Under ``--sketch-rank auto`` a line-search phase switches to exact storage: from the
    same weights, its loss and gradient are an exact-storage run's bit for bit (float64,
    modified MLP with Fourier features and RWF), so an auto run's L-BFGS phase differs from an
    exact run's only by where its Adam phase left the weights."""
    from pinnsketch.control import RankController
    from pinnsketch.tasks.pinn import PINNTask

    model = ModelConfig(width=16, depth=3, arch="modified", fourier_features=8, rwf=(1.0, 0.1))
    sampling = SamplingConfig(collocation=64)

    def loss_and_gradient(task, batch):
        task.model.zero_grad(set_to_none=True)
        loss = task.backward(batch)["loss"]
        return loss, torch.cat([p.grad.reshape(-1) for p in task.model.parameters()])

    tasks = []
    for storage, controller in ((StorageConfig("exact"), None),
                                (StorageConfig("sketch", rank=4), RankController())):
        task = PINNTask(load_problem("poisson"), model, sampling, OptimConfig(), storage,
                        controller=controller)
        task.backward(task.sample(0))  # a float32 Adam-phase step's storage first
        task.set_dtype(torch.float64)
        task.enter_phase("lbfgs")
        tasks.append(task)
    exact, auto = tasks
    auto.model.load_state_dict(exact.model.state_dict())
    batch = exact.sample(-1)
    loss_e, grad_e = loss_and_gradient(exact, batch)
    loss_a, grad_a = loss_and_gradient(auto, batch)
    assert loss_a == loss_e
    assert torch.equal(grad_a, grad_e)


@pytest.mark.parametrize("argv, message", [
    (["--optimizer", "adam:10,newton:5"], "unknown optimizer 'newton'; valid: adam, lbfgs"),
    (["--optimizer", "adam:0"], "optimizer adam: steps must be an integer >= 1, got 0"),
    (["--optimizer", "adam"], "each phase is NAME:STEPS"),
    (["--optimizer", "adam:10,,bfgs:3"], "each phase is NAME:STEPS"),
    (["--optimizer", "adam:10", "--steps", "5"], "not both"),
    (["--weight", "pde=-1"], "loss weight pde=-1.0 must be a finite number >= 0"),
    (["--weight", "pde=nan"], "loss weight pde=nan must be a finite number >= 0"),
    (["--rad-every", "5", "--rad-pool", "10"], "--rad-pool 10 is below"),
    (["--rad-every", "0", "--rad-adam-every", "5", "--rad-pool", "10"], "--rad-pool 10 is below"),
    (["--rad-adam-every", "-1"], "--rad-adam-every must be"),
])
def test_bad_schedules_are_refused_before_any_work(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(["solve", "heat", "--out", str(out), "--quiet", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_levenberg_marquardt_is_refused_under_data_parallelism():
    """Its Jacobian rows are not summed over processes: refused before any work."""
    from pinnsketch.api import _build_task
    from pinnsketch.distributed import Cluster

    optim = OptimConfig(phases=(PhaseConfig("adam", 2), PhaseConfig("lm", 2)))
    with pytest.raises(ValueError, match="'lm' .* runs in one process"):
        _build_task(load_problem("heat"), {}, TINY["model"], TINY["sampling"], optim,
                    StorageConfig(), RunConfig(), cluster=Cluster(rank=0, world_size=2))

"""Collocation samplers: pure, reproducible, in the domain, covering it; faces and slices.

Coverage bounds (n = 1024 points, a 4 x 4 grid of cells, n/16 = 64 expected per cell):

- sobol: the first 2^m points of a (scrambled) 2-D Sobol' sequence form a (0, m, 2)-net in
  base 2, and linear-matrix scrambling with a digital shift keeps the net property; a cell
  [i/4, (i+1)/4) x [j/4, (j+1)/4) is an elementary interval of volume 2^-4, so it holds
  exactly 64 points.
- lhs: each coordinate is stratified into n strata, so each 1/4 strip holds exactly n/4.
- halton: the base-2 coordinate of the first 1024 points is stratified exactly like Sobol';
  all cells obey the discrepancy bound, well inside [n/32, 3n/32].
- lhs and halton 2-D cells, uniform: [1/2, 3/2] x 64 for the quasi-random ones; for i.i.d.
  uniform the count is Binomial(1024, 1/16), sd = 7.75, and we allow 6 sd.
"""

from __future__ import annotations

import math

import pytest
import torch

from pinnsketch import Dirichlet, Initial, Neumann, Periodic, rectangle, space_time
from pinnsketch.config import ModelConfig, OptimConfig, SamplingConfig
from pinnsketch.pde.registry import make_problem, resolve_problem
from pinnsketch.pde.sampling import (
    SAMPLERS,
    sample_faces,
    sample_initial,
    sample_interior,
    unit_cube,
)
from pinnsketch.storage import StorageConfig
from pinnsketch.tasks.pinn import PINNTask

F64 = torch.float64
N = 1024
BOX = rectangle(x=(-1.0, 3.0), y=(0.5, 1.5))
CYL = space_time(rectangle(x=(-1.0, 3.0), y=(0.5, 1.5)), t=(0.25, 2.0))


def test_sampler_names():
    assert set(SAMPLERS) == {"uniform", "sobol", "lhs", "halton"}


@pytest.mark.parametrize("method", SAMPLERS)
def test_reproducible(method):
    a = sample_interior(BOX, 256, method, seed=7)
    b = sample_interior(BOX, 256, method, seed=7)
    c = sample_interior(BOX, 256, method, seed=8)
    assert a.shape == (256, 2) and a.dtype == F64
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a - c).abs().max() > 1e-3


@pytest.mark.parametrize("method", SAMPLERS)
def test_no_global_rng(method):
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    sample_interior(BOX, 64, method, seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("method", SAMPLERS)
def test_in_domain_and_covers_it(method):
    pts = sample_interior(BOX, N, method, seed=3)
    assert bool(BOX.contains(pts).all())
    unit = (pts - torch.tensor(BOX.lo, dtype=F64)) / torch.tensor(
        [h - l for l, h in zip(BOX.lo, BOX.hi, strict=True)], dtype=F64)
    cell = torch.clamp((unit * 4).floor().long(), 0, 3)
    counts = torch.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16)
    expected = N / 16
    if method == "uniform":
        sd = math.sqrt(N * (1 / 16) * (15 / 16))
        low, high = expected - 6 * sd, expected + 6 * sd
    else:
        low, high = expected / 2, 3 * expected / 2
    assert int(counts.min()) >= low and int(counts.max()) <= high, counts.tolist()
    if method == "sobol":
        assert torch.all(counts == N // 16), counts.tolist()  # (0, m, 2)-net
    if method == "lhs":
        for j in range(2):  # Latin hypercube: every 1-D strip exact
            assert torch.all(torch.bincount(cell[:, j], minlength=4) == N // 4)


@pytest.mark.parametrize("method", SAMPLERS)
def test_unit_cube_range(method):
    u = unit_cube(method, 300, 3, seed=5)
    assert u.shape == (300, 3)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert unit_cube(method, 0, 3, seed=5).shape == (0, 3)


def test_unknown_sampler_lists_valid():
    with pytest.raises(ValueError, match=r"unknown sampler 'foo'.*uniform, sobol, lhs, halton"):
        sample_interior(BOX, 8, "foo", seed=0)
    with pytest.raises(ValueError, match=r"unknown sampler 'foo'.*uniform, sobol, lhs, halton"):
        SamplingConfig(method="foo")


@pytest.mark.parametrize("method", SAMPLERS)
@pytest.mark.parametrize("cls", [Dirichlet, Neumann])
def test_face_points_and_normals(cls, method):
    cond = cls(0.0)
    cp = cond.sample(CYL, 200, method, 11, F64)
    pts, nrm = cp.points, cp.normals
    assert pts.shape == nrm.shape == (200, 3)
    assert bool(CYL.contains(pts).all())
    seen = set()
    for i in range(pts.shape[0]):
        on = [(c, s) for c in ("x", "y") for s, v in ((-1, CYL.bounds(c)[0]), (1, CYL.bounds(c)[1]))
              if pts[i, CYL.index(c)] == v]
        assert len(on) >= 1, pts[i]  # exactly on a face
        c, s = on[0]
        expect = torch.zeros(3, dtype=F64)
        expect[CYL.index(c)] = s
        assert torch.equal(nrm[i], expect)  # outward unit normal, zero time component
        seen.add((c, s))
    assert seen == {("x", -1), ("x", 1), ("y", -1), ("y", 1)}
    # Split by face measure (x-faces 1 * 1.75, y-faces 4 * 1.75: shares 20, 20, 80, 80), after
    # reserving one point per face, so each count is within len(faces) of its share.
    faces = CYL.faces()
    _, idx = sample_faces(CYL, faces, 200, method, 11)
    counts = torch.bincount(idx, minlength=4)
    shares = torch.tensor([20.0, 20.0, 80.0, 80.0])
    assert int(counts.sum()) == 200 and int(counts.min()) >= 1
    assert float((counts - shares).abs().max()) < len(faces), counts.tolist()


def test_face_selection_on():
    cp = Dirichlet(0.0, on=("y",)).sample(CYL, 50, "sobol", 0, F64)
    assert torch.all((cp.points[:, 1] == 0.5) | (cp.points[:, 1] == 1.5))
    assert torch.all(cp.normals[:, 0] == 0) and torch.all(cp.normals[:, 2] == 0)
    with pytest.raises(ValueError, match="unknown face"):
        Dirichlet(0.0, on=("t",)).sample(CYL, 50, "sobol", 0, F64)


@pytest.mark.parametrize("method", SAMPLERS)
def test_sample_faces_index(method):
    faces = BOX.faces()
    pts, idx = sample_faces(BOX, faces, 100, method, seed=2)
    for i, face in enumerate(faces):
        lo, hi = BOX.bounds(face.coord)
        col = pts[idx == i, BOX.index(face.coord)]
        assert col.numel() >= 1
        assert torch.all(col == (lo if face.side < 0 else hi))


@pytest.mark.parametrize("method", SAMPLERS)
def test_initial_slice(method):
    pts = sample_initial(CYL, 128, method, seed=4)
    assert torch.all(pts[:, 2] == 0.25)
    assert bool(CYL.contains(pts).all())
    assert float(pts[:, :2].std(0).min()) > 0.1  # spread over space
    cp = Initial(0.0).sample(CYL, 128, method, 4, F64)
    assert torch.equal(cp.points, pts) and torch.all(cp.normals == 0)
    with pytest.raises(ValueError, match="no time coordinate"):
        sample_initial(BOX, 8, method, seed=0)


def test_periodic_pairs():
    cp = Periodic(coord="x").sample(CYL, 40, "sobol", 1, F64)
    lo, hi = cp.points[:20], cp.points[20:]
    assert torch.all(lo[:, 0] == -1.0) and torch.all(hi[:, 0] == 3.0)
    assert torch.equal(lo[:, 1:], hi[:, 1:])


def _task(seed: int, method: str = "sobol") -> PINNTask:
    return PINNTask(make_problem(resolve_problem("heat"), {"hard": False}), ModelConfig(width=8, depth=2),
                    SamplingConfig(collocation=64, boundary=16, initial=16, method=method),
                    OptimConfig(steps=1, lbfgs_steps=0), StorageConfig(), seed=seed)


def _same(a, b) -> bool:
    return a.sets.keys() == b.sets.keys() and all(
        torch.equal(a.sets[k][0], b.sets[k][0]) and torch.equal(a.sets[k][1], b.sets[k][1])
        for k in a.sets)


def test_task_sample_deterministic_in_seed_and_index():
    t0, t0b, t1 = _task(0), _task(0), _task(1)
    for i in (0, 1, 5):
        assert _same(t0.sample(i), t0b.sample(i))
        assert _same(t0.sample(i), t0.sample(i))
    assert not _same(t0.sample(0), t0.sample(1))
    assert not _same(t0.sample(0), t1.sample(0))
    batch = t0.sample(0)
    assert set(batch.sets) == {"pde", "boundary", "initial"}
    assert batch.sets["pde"][0].shape == (64, 2)
    assert batch.num_points == 64 + 16 + 16


@pytest.mark.parametrize("method", [
    "uniform", "sobol",
    "lhs",
    "halton",
])
def test_task_lbfgs_sample_every_sampler(method):
    """The fixed L-BFGS point set (index -1) must exist for every sampler and seed."""
    task = _task(0, method)
    batch = task.sample(-1)
    assert _same(batch, task.sample(-1))
    assert not _same(batch, task.sample(0))

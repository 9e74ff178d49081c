"""The domain protocol: disks, polygons, set combinations, space x time, and the box.

Tolerances (float64, eps = 2.2e-16):

- Boundary points are computed by one affine step (a + s (b - a) on an edge, c + r (cos, sin)
  on a circle) from O(1) numbers, so they lie on the exact boundary to a few ulps of the
  coordinates' size: we allow 8 eps times the domain's extent. Normals are a vector divided by
  its norm: unit length to 4 eps.
- Outward normals: a step of 1e-7 (far above the 1e-10 relative membership tolerance, far below
  every feature size here) along n must leave the set and against n must enter it.
- Counts along the boundary: column 0 of a scrambled Sobol' sequence is a (0, m, 1)-net for its
  first 2^m points, so every dyadic interval of length 2^-m holds exactly one point and an
  interval of length l holds l n +- 2 of n points (one partial dyadic interval at each end).
  Uniform: Binomial(n, l) within 5 standard deviations.
- Monte Carlo areas: m i.i.d. uniform candidates of the bounding box, of which a fraction p is
  inside: Binomial, sd = sqrt(p (1 - p) / m); we allow 5 sd (false alarm 6e-7; the seed is
  fixed anyway).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from pinnsketch import (
    Dirichlet,
    Initial,
    InitialVelocity,
    Neumann,
    Periodic,
    PointData,
    Robin,
    interval,
    rectangle,
    space_time,
)
from pinnsketch.pde.derivatives import autograd_derivatives
from pinnsketch.pde.geometry import (
    Difference,
    Disk,
    Domain,
    EvaluationPoints,
    GeometryXTime,
    Intersection,
    Polygon,
    Union,
)
from pinnsketch.pde.problem import uniform_grid
from pinnsketch.pde.sampling import SAMPLERS, sample_initial, sample_interior, unit_cube

F64 = torch.float64
EPS = torch.finfo(F64).eps
STEP = 1e-7

LSHAPE = ((0.0, 0.0), (1.0, 0.0), (1.0, -1.0), (-1.0, -1.0), (-1.0, 1.0), (0.0, 1.0))
L = Polygon(LSHAPE)
L_CW = Polygon(tuple(reversed(LSHAPE)))
DISK = Disk((0.5, -0.25), 0.75)
SQUARE = rectangle(x=(0.25, 0.75), y=(-0.5, 0.0))  # inside DISK: its corners are 0.35 from the center
HOLED = Disk((0.5, -0.25), 0.75) - SQUARE
BAR = Union(Disk((0.0, 0.0), 1.0), rectangle(x=(0.5, 2.0), y=(-0.25, 0.25)))
LENS = Intersection(Disk((0.0, 0.0), 1.0), Disk((1.0, 0.0), 1.0))
GEOMETRIES = {"lshape": L, "lshape_cw": L_CW, "disk": DISK, "holed": HOLED, "bar": BAR,
              "lens": LENS}


# ----- analytic membership -----

def _in_lshape(p):
    x, y = p[:, 0], p[:, 1]
    box = (x.abs() <= 1) & (y.abs() <= 1)
    return box & ~((x > 0) & (y > 0))


def _in_holed(p):
    r = (p - torch.tensor([0.5, -0.25], dtype=F64)).norm(dim=1)
    in_sq = (p[:, 0] > 0.25) & (p[:, 0] < 0.75) & (p[:, 1] > -0.5) & (p[:, 1] < 0.0)
    return (r <= 0.75) & ~in_sq


def _in_bar(p):
    return (p.norm(dim=1) <= 1) | ((p[:, 0] >= 0.5) & (p[:, 0] <= 2) & (p[:, 1].abs() <= 0.25))


def _in_lens(p):
    return (p.norm(dim=1) <= 1) & ((p - torch.tensor([1.0, 0.0], dtype=F64)).norm(dim=1) <= 1)


ANALYTIC = {"lshape": _in_lshape, "lshape_cw": _in_lshape, "holed": _in_holed, "bar": _in_bar,
            "lens": _in_lens,
            "disk": lambda p: (p - torch.tensor([0.5, -0.25], dtype=F64)).norm(dim=1) <= 0.75}


def _box_points(g, n, seed):
    gen = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(g.lo, dtype=F64), torch.tensor(g.hi, dtype=F64)
    return lo - 0.1 + torch.rand(n, g.dim, generator=gen, dtype=F64) * (hi - lo + 0.2)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_membership_matches_the_analytic_set(name):
    g = GEOMETRIES[name]
    assert isinstance(g, Domain)
    p = _box_points(g, 4000, seed=1)
    assert torch.equal(g.inside(p), ANALYTIC[name](p))


def test_lshape_membership_on_edges_and_vertices():
    on = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [-1.0, 0.3], [1.0, -1.0], [0.0, 1.0]], dtype=F64)
    off = torch.tensor([[0.5, 0.5], [1.0 + 1e-6, -0.5], [0.1, 1e-6], [-1.5, 0.0]], dtype=F64)
    inner = torch.tensor([[-0.5, 0.5], [0.5, -0.5], [-1e-6, 1e-6]], dtype=F64)
    for g in (L, L_CW):
        assert g.inside(on).all() and g.on_boundary(on).all()
        assert not g.inside(off).any() and not g.on_boundary(off).any()
        assert g.inside(inner).all() and not g.on_boundary(inner).any()


def test_areas_and_perimeters():
    assert isinstance(HOLED, Difference) and isinstance(DISK | SQUARE, Union)
    assert isinstance(DISK & SQUARE, Intersection)
    assert L.volume == 3.0 and L_CW.volume == 3.0 and L.boundary_map_measure == 8.0
    assert DISK.volume == pytest.approx(math.pi * 0.75**2, rel=1e-15)
    assert DISK.boundary_map_measure == pytest.approx(2 * math.pi * 0.75, rel=1e-15)
    assert L.lo == (-1.0, -1.0) and L.hi == (1.0, 1.0)
    assert BAR.lo == (-1.0, -1.0) and BAR.hi == (2.0, 1.0)
    assert LENS.lo == (0.0, -1.0) and LENS.hi == (1.0, 1.0)


# ----- interior sampling -----

@pytest.mark.parametrize("method", SAMPLERS)
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_interior_points_are_inside_and_reproducible(name, method):
    g = GEOMETRIES[name]
    pts = g.sample_interior(500, method, seed=4)
    assert pts.shape == (500, 2) and pts.dtype == F64
    assert bool(ANALYTIC[name](pts).all())
    assert torch.equal(pts, g.sample_interior(500, method, seed=4))
    assert not torch.equal(pts, g.sample_interior(500, method, seed=5))
    assert g.sample_interior(7, method, 4, dtype=torch.float32).dtype == torch.float32
    assert g.sample_interior(0, method, 4).shape == (0, 2)


@pytest.mark.parametrize("method", SAMPLERS)
def test_interior_rows_partition_the_set(method):
    """Data-parallel shards: the union over processes is the single-process set."""
    full = sample_interior(HOLED, 301, method, seed=9)  # through the sampling module's dispatch
    parts = [sample_interior(HOLED, 301, method, seed=9, rows=slice(a, b))
             for a, b in ((0, 100), (100, 200), (200, 301))]
    assert torch.equal(torch.cat(parts), full)
    with pytest.raises(ValueError, match="contiguous"):
        HOLED.sample_interior(10, method, 0, rows=slice(0, 10, 2))


@pytest.mark.parametrize("name, area", [("lshape", 3.0), ("disk", math.pi * 0.75**2),
                                        ("holed", math.pi * 0.75**2 - 0.25),
                                        ("lens", 2 * math.pi / 3 - math.sqrt(3) / 2)])
def test_monte_carlo_area_from_acceptance(name, area):
    """The interior sampler's candidates (uniform points of the bounding box) are accepted at
    the rate area / box area, within the binomial bound (module docstring)."""
    g = GEOMETRIES[name]
    m = 200_000
    lo, hi = torch.tensor(g.lo, dtype=F64), torch.tensor(g.hi, dtype=F64)
    cand = lo + unit_cube("uniform", m, 2, seed=12) * (hi - lo)
    rate = float(g.inside(cand).double().mean())
    p = area / float((hi - lo).prod())
    assert abs(rate - p) <= 5 * math.sqrt(p * (1 - p) / m), (rate, p)


# ----- boundary sampling -----

def _distance_to_boundary(name, p):
    """Exact distance of points to the analytic boundary (0 on it)."""
    def seg(p, a, b):
        a, b = torch.tensor(a, dtype=F64), torch.tensor(b, dtype=F64)
        s = (((p - a) @ (b - a)) / ((b - a) @ (b - a))).clamp(0, 1)
        return (p - a - s[:, None] * (b - a)).norm(dim=1)

    def poly(p, verts):
        return torch.stack([seg(p, verts[i], verts[(i + 1) % len(verts)])
                            for i in range(len(verts))]).min(0).values

    def circle(p, c, r):
        return ((p - torch.tensor(c, dtype=F64)).norm(dim=1) - r).abs()

    sq = ((0.25, -0.5), (0.75, -0.5), (0.75, 0.0), (0.25, 0.0))
    rect = ((0.5, -0.25), (2.0, -0.25), (2.0, 0.25), (0.5, 0.25))
    return {
        "lshape": lambda: poly(p, LSHAPE), "lshape_cw": lambda: poly(p, LSHAPE),
        "disk": lambda: circle(p, (0.5, -0.25), 0.75),
        "holed": lambda: torch.minimum(circle(p, (0.5, -0.25), 0.75), poly(p, sq)),
        "bar": lambda: torch.minimum(circle(p, (0, 0), 1.0), poly(p, rect)),
        "lens": lambda: torch.minimum(circle(p, (0, 0), 1.0), circle(p, (1, 0), 1.0)),
    }[name]()


@pytest.mark.parametrize("method", SAMPLERS)
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_boundary_points_normals_and_orientation(name, method):
    g = GEOMETRIES[name]
    pts, nrm = g.sample_boundary(600, method, seed=2)
    assert pts.shape == nrm.shape == (600, 2)
    extent = max(b - a for a, b in zip(g.lo, g.hi))
    assert float(_distance_to_boundary(name, pts).max()) <= 8 * EPS * extent
    assert bool(g.on_boundary(pts).all())
    assert float((nrm.norm(dim=1) - 1).abs().max()) <= 4 * EPS
    inside = ANALYTIC[name]
    assert not inside(pts + STEP * nrm).any()  # outward: a small step along n leaves the set
    assert inside(pts - STEP * nrm).all()      # and against n enters it
    # boundary_normal at the sampled points agrees (away from corners: the sampler knows the
    # edge, boundary_normal averages at corners, and sampled points hit none)
    assert float((g.boundary_normal(pts) - nrm).abs().max()) <= 1e-12
    assert torch.equal(pts, g.sample_boundary(600, method, seed=2)[0])


def test_boundary_counts_follow_perimeter():
    n = 1024
    pts, _ = L.sample_boundary(n, "sobol", seed=3)
    for i in range(len(LSHAPE)):
        a, b = (torch.tensor(v, dtype=F64) for v in (LSHAPE[i], LSHAPE[(i + 1) % len(LSHAPE)]))
        share = float((b - a).norm()) / 8.0
        d = (pts - a)[:, 0] * (b - a)[1] - (pts - a)[:, 1] * (b - a)[0]
        on_edge = (d.abs() <= 1e-12) & (((pts - a) @ (b - a)) >= 0) & (((pts - b) @ (a - b)) >= 0)
        assert abs(int(on_edge.sum()) - share * n) <= 2, (i, int(on_edge.sum()), share * n)
    # a combination: the square's share of the holed disk's boundary is 2 / (2 + 1.5 pi)
    for method, bound in (("sobol", 2.0), ("uniform", None)):
        pts, _ = HOLED.sample_boundary(n, method, seed=4)
        share = 2.0 / (2.0 + 1.5 * math.pi)
        count = int(SQUARE.on_boundary(pts).sum())
        bound = bound or 5 * math.sqrt(n * share * (1 - share))
        assert abs(count - share * n) <= bound, (method, count, share * n)


def test_union_and_difference_drop_the_inner_parts():
    pts, nrm = BAR.sample_boundary(2000, "sobol", 1)
    circle = (pts.norm(dim=1) - 1).abs() <= 1e-12
    assert not (circle & (pts[:, 0] > 0.5) & (pts[:, 1].abs() < 0.25)).any()  # inside the bar
    assert not ((pts[:, 0] - 0.5).abs() <= 1e-12).any()  # the bar's left end lies in the disk
    pts, nrm = HOLED.sample_boundary(2000, "sobol", 1)
    on_square = SQUARE.on_boundary(pts)
    centre = torch.tensor([0.5, -0.25], dtype=F64)
    assert ((nrm[on_square] * (centre - pts[on_square])).sum(1) > 0).all()  # normals point into the hole


def test_predicate_selects_part_of_the_boundary():
    pts, nrm = DISK.sample_boundary(100, "sobol", 0, on=lambda p: p[:, 0] > 0.5)
    assert pts.shape == (100, 2) and (pts[:, 0] > 0.5).all()
    box_pts, box_nrm = SQUARE.sample_boundary(50, "halton", 0, on=lambda p: p[:, 1] == 0.0)
    assert (box_pts[:, 1] == 0).all() and (box_nrm == torch.tensor([0.0, 1.0], dtype=F64)).all()
    with pytest.raises(ValueError, match="predicate"):
        DISK.sample_boundary(10, "sobol", 0, on=("x-",))
    with pytest.raises(ValueError, match="bool"):
        DISK.sample_boundary(10, "sobol", 0, on=lambda p: p[:, 0])


# ----- the box as a protocol domain -----

def test_box_verbs():
    box = rectangle(x=(0.0, 2.0), y=(-1.0, 1.0))
    assert isinstance(box, Domain)
    p = torch.tensor([[0.0, 0.0], [2.0, 1.0], [1.0, 0.0], [3.0, 0.0]], dtype=F64)
    assert box.inside(p).tolist() == [True, True, True, False]
    assert box.on_boundary(p).tolist() == [True, True, False, False]
    n = box.boundary_normal(p)
    assert torch.allclose(n, torch.tensor([[-1.0, 0.0], [2**-0.5, 2**-0.5], [0, 0], [0, 0]], dtype=F64),
                          rtol=0, atol=4 * EPS)
    pts, nrm = box.sample_boundary(64, "sobol", 3)  # exact face counts: 16 + 16 + 16 + 16 (measure 2 each)
    assert torch.equal(box.boundary_normal(pts), nrm)
    # boundary_map: measure-preserving onto the faces, faces weighted by measure
    tall = rectangle(x=(0.0, 3.0), y=(0.0, 1.0))
    mp, mn, keep = tall.boundary_map(unit_cube("sobol", 1024, 1, seed=1))
    assert keep.all() and tall.on_boundary(mp).all() and torch.equal(tall.boundary_normal(mp), mn)
    on_bottom = int((mp[:, 1] == 0).sum())
    assert abs(on_bottom - 1024 * 3 / 8) <= 2
    # a box time interval is no boundary
    cyl = space_time(interval(x=(0.0, 1.0)), t=(0.0, 1.0))
    assert not cyl.on_boundary(torch.tensor([[0.5, 0.0]], dtype=F64)).any()


def test_box_evaluation_points_are_the_uniform_grid():
    box = rectangle(x=(0.0, 2.0), y=(-1.0, 1.0))
    ev = box.evaluation_points(11)
    assert torch.equal(ev.points, uniform_grid(box, 11).points())
    assert ev.triangles.shape == (2 * 10 * 10, 3)
    assert _triangle_area(ev) == pytest.approx(4.0, rel=1e-14)


def test_box_operand_in_combinations():
    frame = rectangle(x=(-1.0, 1.0), y=(-1.0, 1.0)) - Disk((0.0, 0.0), 0.5)
    p = torch.tensor([[0.0, 0.0], [0.9, 0.9], [0.5, 0.0], [1.2, 0.0]], dtype=F64)
    assert frame.inside(p).tolist() == [False, True, True, False]
    pts, nrm = frame.sample_boundary(500, "sobol", 0)
    hole = (pts.norm(dim=1) - 0.5).abs() <= 1e-12
    assert torch.allclose(nrm[hole], -pts[hole] / 0.5, atol=4 * EPS)
    assert abs(int(hole.sum()) - 500 * math.pi / (8 + math.pi)) <= 2


# ----- evaluation points -----

def _triangle_area(ev: EvaluationPoints) -> float:
    c = ev.points[: ev.block][ev.triangles]
    d1, d2 = c[:, 1] - c[:, 0], c[:, 2] - c[:, 0]
    return float((d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]).abs().sum() / 2)


def test_evaluation_points_triangulate_the_set():
    ev = L.evaluation_points(41)
    assert L.inside(ev.points).all() and ev.plane == ("x", "y")
    # grid-aligned edges and the vertices included: the triangles tile the L exactly
    assert _triangle_area(ev) == pytest.approx(3.0, rel=1e-13)
    # a disk: the inscribed polygon of m boundary points misses (2 pi^3 / 3 m^2) r^2 at most
    ev = DISK.evaluation_points(41)
    m = math.ceil(DISK.boundary_map_measure / (1.5 / 40))
    gap = 2 * math.pi**3 / (3 * m**2) * 0.75**2
    assert DISK.volume - gap * 1.01 <= _triangle_area(ev) <= DISK.volume
    ev = HOLED.evaluation_points(61)  # the hole's corners are kept, so only the circle's gap
    assert not (SQUARE.inside(ev.points) & ~SQUARE.on_boundary(ev.points)).any()
    m = math.ceil(DISK.boundary_map_measure / (1.5 / 60))
    gap = 2 * math.pi**3 / (3 * m**2) * 0.75**2
    area = DISK.volume - 0.25
    assert area - gap * 1.01 <= _triangle_area(ev) <= area * (1 + 1e-14)


def test_space_time_geometry():
    cyl = space_time(HOLED, t=(0.5, 2.0))
    assert isinstance(cyl, GeometryXTime) and isinstance(cyl, Domain)
    assert cyl.names == ("x", "y", "t") and cyl.time == "t" and cyl.spatial == ("x", "y")
    inner = sample_interior(cyl, 400, "sobol", 1)
    assert _in_holed(inner[:, :2]).all() and ((inner[:, 2] >= 0.5) & (inner[:, 2] <= 2.0)).all()
    pts, nrm = cyl.sample_boundary(400, "sobol", 2)
    assert HOLED.on_boundary(pts[:, :2]).all() and (nrm[:, 2] == 0).all()
    assert float((nrm.norm(dim=1) - 1).abs().max()) <= 4 * EPS
    assert not _in_holed(pts[:, :2] + STEP * nrm[:, :2]).any()
    first = sample_initial(cyl, 100, "halton", 3)
    assert (first[:, 2] == 0.5).all() and _in_holed(first[:, :2]).all()
    # the lateral boundary's time coordinate is spread over [t0, t1] (Sobol' net in column 1)
    late = int((pts[:, 2] > 1.25).sum())
    assert abs(late - 200) <= 40
    ev = cyl.evaluation_points(21)
    assert ev.points.shape[0] == 21 * ev.block and ev.times.shape == (21,)
    assert torch.equal(ev.points[ev.block: 2 * ev.block, :2], ev.points[: ev.block, :2])


# ----- refusals -----

@pytest.mark.parametrize("make, match", [
    (lambda: Polygon(((0, 0), (1, 0))), "at least 3 vertices"),
    (lambda: Polygon(((0, 0), (1, 1), (1, 0), (0, 1))), "not simple"),  # a bow tie
    (lambda: Polygon(((0, 0), (2, 0), (1, 0), (1, 1))), "not simple"),  # folds back
    (lambda: Polygon(((0, 0), (2, 0), (2, 2), (1, 0.0), (0, 2))), "not simple"),  # a vertex on an edge
    (lambda: Polygon(((0, 0), (1, 0), (1, 0), (0, 1))), "coincide"),
    (lambda: Polygon(((0, 0), (1, 1), (2, 2), (3, 3))), "not simple|zero area"),
    (lambda: Polygon(((0, 0), (1, float("nan")), (0, 1))), "finite"),
    (lambda: Polygon(((0, 0, 0), (1, 0, 0), (0, 1, 0))), "pairs"),
    (lambda: Disk((0.0, 0.0), 0.0), "radius"),
    (lambda: Disk((0.0, 0.0), -1.0), "radius"),
    (lambda: Disk((0.0,), 1.0), "center"),
    (lambda: Disk((0.0, 0.0), 1.0, names=("x", "u")), "'u'"),
    (lambda: Disk((0, 0), 1.0) | Disk((0, 0), 1.0, names=("x", "z")), "different coordinates"),
    (lambda: rectangle(x=(0, 1), y=(0, 1), z=(0, 1)) - Disk((0, 0), 1.0), "different coordinates"),
    (lambda: space_time(rectangle(x=(0, 1), y=(0, 1)), t=(0, 1)) - Disk((0, 0), 1.0), "space_time"),
    (lambda: Disk((0, 0), 1.0) & Disk((5, 0), 1.0), "empty"),
    (lambda: GeometryXTime(Disk((0, 0), 1.0), 1.0, 0.0), "t0 < t1"),
    (lambda: GeometryXTime(Disk((0, 0), 1.0, names=("x", "t")), 0.0, 1.0), "distinct"),
])
def test_refusals(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_empty_set_is_reported():
    thin = Disk((0, 0), 1.0) - Disk((0, 0), 1.0)  # nothing left but the circle itself
    with pytest.raises(RuntimeError, match="empty"):
        thin.sample_interior(10, "sobol", 0)


# ----- conditions on protocol domains -----

def _derivatives(domain, points, fn):
    pts = points.clone().requires_grad_(True)
    return autograd_derivatives(domain, pts, fn)


def test_neumann_and_robin_on_a_curved_boundary():
    """u = x^2 + y^2 - x y on the holed disk (a circle and a square hole): the residuals are
    grad u . n and a u + b grad u . n with the sampled normals, to round-off."""
    def u(p):
        x, y = p[:, 0], p[:, 1]
        return x**2 + y**2 - x * y

    for cond in (Neumann(0.0), Robin(a=2.0, b=0.5, value=0.0)):
        cp = cond.sample(HOLED, 300, "sobol", 5, F64)
        x, y = cp.points[:, 0], cp.points[:, 1]
        grad_n = (2 * x - y) * cp.normals[:, 0] + (2 * y - x) * cp.normals[:, 1]
        expected = grad_n if isinstance(cond, Neumann) else 2.0 * u(cp.points) + 0.5 * grad_n
        r = cond.residual(_derivatives(HOLED, cp.points, u), cp.normals).detach()
        assert float((r - expected).abs().max()) <= 1e-14
        assert (SQUARE.on_boundary(cp.points)).any() and (~SQUARE.on_boundary(cp.points)).any()
    with pytest.raises(ValueError, match="not both zero"):
        Robin(a=0.0, b=0.0)


def test_dirichlet_on_part_of_a_polygon():
    cond = Dirichlet(1.0, on=lambda p: p[:, 0] == -1.0)
    cp = cond.sample(L, 40, "sobol", 0, F64)
    assert cp.points.shape == (40, 2) and (cp.points[:, 0] == -1).all()
    assert (cp.normals == torch.tensor([-1.0, 0.0], dtype=F64)).all()
    with pytest.raises(ValueError, match="predicate"):
        Dirichlet(0.0, on=("x-",)).sample(L, 10, "sobol", 0, F64)
    with pytest.raises(ValueError, match="box"):
        Periodic(coord="x").sample(L, 10, "sobol", 0, F64)


def test_initial_velocity_on_space_time_geometry():
    cyl = space_time(DISK, t=(0.0, 1.0))
    cond = InitialVelocity(lambda d: torch.sin(d.x) * d.y)
    assert not cond.uses_boundary_budget()
    cp = cond.sample(cyl, 50, "sobol", 1, F64)
    assert (cp.points[:, 2] == 0).all() and DISK.inside(cp.points[:, :2]).all()

    def u(p):  # u_t(x, y, 0) = sin(x) y
        return torch.sin(p[:, 0]) * p[:, 1] * torch.sin(p[:, 2]) + p[:, 0] ** 2

    d = _derivatives(cyl, cp.points, u)
    assert float(cond.residual(d, cp.normals).detach().abs().max()) <= 4 * EPS
    init = Initial(lambda d: d.x**2)
    d = _derivatives(cyl, cp.points, u)
    assert float(init.residual(d, cp.normals).detach().abs().max()) == 0.0
    with pytest.raises(ValueError, match="no time"):
        Initial(0.0).sample(DISK, 5, "sobol", 0, F64)


def test_point_data_looks_values_up_by_coordinates():
    gen = torch.Generator().manual_seed(0)
    pts = L.sample_interior(30, "uniform", 3)
    vals = torch.randn(30, generator=gen, dtype=F64)
    cond = PointData(points=pts, values=vals, name="data")
    cp = cond.sample(L, 5, "sobol", 0, F64)  # n ignored: every data point
    assert torch.equal(cp.points, pts)
    perm = torch.randperm(30, generator=gen)[:11]  # a chunk, in another order

    def u(p):
        return p[:, 0] * 0.0 + 1.0

    d = _derivatives(L, pts[perm], u)
    assert torch.equal(cond.residual(d, cp.normals[perm]).detach(), 1.0 - vals[perm])
    assert torch.equal(cond.data_values(pts[perm].float()), vals[perm].float())  # float32 training
    with pytest.raises(ValueError, match="not one of its data points"):
        cond.data_values(torch.tensor([[0.3, -0.3]], dtype=F64) + 0.123)


@pytest.mark.parametrize("kwargs, match", [
    ({"points": np.zeros((3, 2)), "values": np.zeros(4)}, "shapes"),
    ({"points": np.zeros((0, 2)), "values": np.zeros(0)}, "N >= 1"),
    ({"points": [[0.0, float("nan")]], "values": [1.0]}, "NaN"),
    ({"points": [[0.0, 0.0]], "values": [float("inf")]}, "NaN or infinite"),
    ({"points": None, "values": [1.0]}, "needs points"),
])
def test_point_data_refusals(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PointData(**kwargs)


def test_point_data_outside_the_domain_is_refused():
    cond = PointData(points=[[0.5, 0.5], [-0.5, -0.5]], values=[1.0, 2.0])  # (0.5, 0.5): the notch
    with pytest.raises(ValueError, match="1 of the 2 data points lie outside"):
        cond.sample(L, 1, "sobol", 0, F64)
    with pytest.raises(ValueError, match="coordinates"):
        cond.sample(space_time(L, t=(0, 1)), 1, "sobol", 0, F64)


# ----- parity with deepxde.geometry (skipped without the compare extra) -----

@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 on deepxde's 2-D cross products
def test_parity_with_deepxde_geometry():
    os.environ.setdefault("DDE_BACKEND", "pytorch")  # before deepxde's import: no config file
    dde = pytest.importorskip("deepxde")
    dl = dde.geometry.Polygon([list(v) for v in LSHAPE])
    dd = dde.geometry.Disk([0.5, -0.25], 0.75)
    assert dl.area == pytest.approx(L.volume, rel=1e-6)  # deepxde holds vertices in float32
    assert dl.perimeter == pytest.approx(L.boundary_map_measure, rel=1e-6)
    for ours, theirs in ((L, dl), (DISK, dd)):
        p = _box_points(ours, 3000, seed=7)
        far = ~ours.on_boundary(p, tol=1e-5)
        assert np.array_equal(theirs.inside(p.numpy())[far.numpy()], ours.inside(p)[far].numpy())
        b, n = ours.sample_boundary(200, "sobol", 1)
        assert theirs.on_boundary(b.numpy()).all()
        np.testing.assert_allclose(theirs.boundary_normal(b.numpy()), n.numpy(), atol=1e-6)
    dh = dde.geometry.CSGDifference(dd, dde.geometry.Rectangle([0.25, -0.5], [0.75, 0.0]))
    p = _box_points(HOLED, 3000, seed=8)
    far = ~HOLED.on_boundary(p, tol=1e-5) & ~SQUARE.on_boundary(p, tol=1e-5)
    assert np.array_equal(dh.inside(p.numpy())[far.numpy()], HOLED.inside(p)[far].numpy())


# ----- a problem on a protocol domain goes through the training task -----

def test_disk_problem_samples_and_trains(tmp_path):
    """-laplacian u = -4 on the unit disk, u = x^2 + y^2 = 1 on the circle, a Neumann half
    (du/dn = 2 on x > 0): the task samples inside the disk and on the circle, with normals."""
    from dataclasses import dataclass
    from typing import ClassVar

    from pinnsketch import (
        ModelConfig,
        OptimConfig,
        Problem,
        RunConfig,
        SamplingConfig,
        StorageConfig,
        solve,
    )
    from pinnsketch.tasks.pinn import PINNTask

    @dataclass(frozen=True)
    class DiskPoisson(Problem):
        name: ClassVar[str] = "disk_poisson"

        @property
        def domain(self):
            return Disk((0.0, 0.0), 1.0)

        def residual(self, d):
            return -d.laplacian + 4.0

        def conditions(self):
            return (Dirichlet(1.0, on=lambda p: p[:, 0] <= 0, name="left"),
                    Neumann(2.0, on=lambda p: p[:, 0] > 0, name="right"))

        def reference(self, points):
            return (points**2).sum(1)

    problem = DiskPoisson()
    task = PINNTask(problem, ModelConfig(width=8, depth=2),
                    SamplingConfig(collocation=200, boundary=40, initial=8), OptimConfig(),
                    StorageConfig(policy="exact"), seed=0,
                    dtype=torch.float64)
    batch = task.sample(0)
    inner, _ = batch.sets["pde"]
    assert inner.shape == (200, 2) and (inner.norm(dim=1) <= 1).all()
    right, normals = batch.sets["right"]
    assert torch.allclose(normals, right, atol=1e-15) and (right[:, 0] > 0).all()
    for name in ("left", "right"):  # the exact solution zeroes every residual
        pts, nrm = batch.sets[name]
        d = _derivatives(problem.domain, pts, problem.reference)
        cond = {c.label: c for c in problem.conditions()}[name]
        assert float(cond.residual(d, nrm).detach().abs().max()) <= 1e-14
    result = solve(problem, model=ModelConfig(width=8, depth=2),
                   sampling=SamplingConfig(collocation=64, boundary=16, initial=8),
                   optim=OptimConfig(steps=3, lbfgs_steps=0),
                   run=RunConfig(quiet=True, out=str(tmp_path / "run")))
    assert result.summary["steps"] == 3 and set(result.task.term_names) == {"pde", "left", "right"}

"""Fields on non-grid point sets are drawn on a triangulation and saved as PNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from pinnsketch import Disk, Polygon, rectangle, space_time
from pinnsketch.plots import plot_triangulated

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("geometry", [
    Polygon(((0, 0), (1, 0), (1, -1), (-1, -1), (-1, 1), (0, 1))),
    Disk((0.0, 0.0), 1.0) - rectangle(x=(-0.3, 0.3), y=(-0.3, 0.3)),
])
def test_triangulated_field_is_written_as_png(tmp_path, geometry):
    ev = geometry.evaluation_points(31)
    x, y = ev.points[:, 0], ev.points[:, 1]
    values = (torch.sin(3 * x) * torch.cos(2 * y)).numpy()
    path = tmp_path / "field.png"
    plot_triangulated(path, ev.points.numpy(), ev.triangles.numpy(), values, "u")
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.05  # something was drawn
    err = tmp_path / "error.png"
    plot_triangulated(err, ev.points.numpy(), None, np.abs(values), "|error|", cmap="magma")
    assert err.read_bytes()[:8] == PNG_MAGIC


def test_space_time_slice_and_refusal(tmp_path):
    ev = space_time(Disk((0.0, 0.0), 1.0), t=(0.0, 1.0)).evaluation_points(11)
    block = ev.points[ev.block * 5: ev.block * 6]  # the time slice t = 0.5
    assert torch.all(block[:, 2] == 0.5)
    plot_triangulated(tmp_path / "slice.png", block[:, :2].numpy(), ev.triangles.numpy(),
                      block[:, 0].numpy(), "u(x, y, 0.5)")
    assert (tmp_path / "slice.png").is_file()
    with pytest.raises(ValueError, match="points"):
        plot_triangulated(tmp_path / "bad.png", np.zeros((4, 3)), None, np.zeros(4), "bad")


def test_evaluation_sets_store_and_plot_alike(tmp_path):
    """The one protocol the task, result.h5 and the plots use: a grid arranges values
    grid-shaped beside its axes; a point set keeps them flat beside its triangles (and
    times); plot_on draws either, a space-time set on its middle time slice."""
    from pinnsketch import EvaluationPoints, interval, uniform_grid
    from pinnsketch.pde.evaluation import EvaluationSet
    from pinnsketch.plots import plot_on

    grid = uniform_grid(rectangle(x=(0, 1), t=(0, 2)), 5)
    cyl = space_time(Disk((0.0, 0.0), 1.0), t=(0.0, 1.0)).evaluation_points(11)
    line = interval(x=(0, 1)).evaluation_points(7)
    for ev in (grid, cyl, line):
        assert isinstance(ev, EvaluationSet)
    values = grid.coordinates()[:, 0].numpy()
    assert grid.arrange(values).shape == (5, 5)
    datasets, attrs = grid.layout()
    assert set(datasets) == {"grid/x", "grid/t"} and attrs == {"evaluation": "grid"}
    datasets, attrs = cyl.layout()
    assert set(datasets) == {"triangles", "times"} and attrs["triangle_block"] == cyl.block
    assert cyl.arrange(cyl.coordinates()[:, 0].numpy()).shape == (cyl.coordinates().shape[0],)
    for name, ev in (("grid", grid), ("cyl", cyl), ("line", line)):
        path = tmp_path / f"{name}.png"
        assert plot_on(path, ev, ev.coordinates()[:, 0].numpy(), name)
        assert path.read_bytes()[:8] == PNG_MAGIC
    ball = EvaluationPoints(("x", "y", "z"), torch.rand(10, 3, dtype=torch.float64))
    assert not plot_on(tmp_path / "ball.png", ball, np.zeros(10), "3-D")  # no plane to draw
    assert not (tmp_path / "ball.png").exists()

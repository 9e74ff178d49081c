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

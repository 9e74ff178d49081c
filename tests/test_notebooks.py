"""The notebooks run headless in smoke mode (PINNSKETCH_SMOKE=1), stored without outputs."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {"burgers_study.ipynb", "user_pde.ipynb", "mnist_monitoring.ipynb"}
PUBLIC_MODULES = {"pinnsketch", "pinnsketch.data"}
SMOKE_SECONDS = 120  # a guard: a smoke run takes about 10 s on a quiet machine


def _read(path):
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(path, as_version=4)


def test_every_notebook_is_collected():
    assert EXPECTED <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean(path):
    """No outputs, no execution counts, and imports of pinnsketch only from the public API."""
    nb = _read(path)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not cell.get("outputs"), f"{path.name}: stored with outputs; clear them"
        assert cell.get("execution_count") is None, f"{path.name}: stored with execution counts"
        for node in ast.walk(ast.parse(cell.source)):
            modules = ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                       else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for module in modules:
                if module.split(".")[0] == "pinnsketch":
                    assert module in PUBLIC_MODULES, \
                        f"{path.name} imports {module}; notebooks use the public API only"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_smoke_mode(path, monkeypatch, tmp_path):
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PINNSKETCH_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = _read(path)
    start = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    elapsed = time.perf_counter() - start
    assert elapsed < SMOKE_SECONDS, f"{path.name}: smoke run took {elapsed:.0f} s; keep it small"

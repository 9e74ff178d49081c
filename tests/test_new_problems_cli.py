"""The new built-in problems run end to end from the command line and write their run
directory (the smoke run of `pinnsketch solve NAME --steps 50 --lbfgs-steps 0`, shortened)."""

from __future__ import annotations

import json
import math

import pytest

from pinnsketch.cli import main

RUN_FILES = {"config.json", "history.csv", "result.h5", "solution.png", "reference.png",
             "error.png", "history.png", "checkpoint.pt", "summary.json"}


@pytest.mark.parametrize("name, terms", [
    ("allen_cahn", {"pde", "periodic", "initial"}),
    ("wave", {"pde", "boundary", "initial", "velocity"}),
    ("helmholtz", {"pde", "boundary"}),
])
def test_new_problem_runs_from_the_cli(tmp_path, tiny_args, name, terms):
    out = tmp_path / name
    assert main(["solve", name, "--steps", "2", "--out", str(out), "--threads", "1", *tiny_args]) == 0
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert math.isfinite(summary["l2_relative_error"])
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert terms <= set(header)

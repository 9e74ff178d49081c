"""The problem registry: one mechanism, loading a problem file by path.

Built-in problems are the files of the data package ``pinnsketch.builtin_problems``
(``problems/`` in the source tree), loaded exactly like a user's ``my_problem.py``. A problem
file defines exactly one :class:`~pinnsketch.pde.problem.Problem` subclass (or names one in
a module variable ``PROBLEM``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import importlib.util
import inspect
import sys
import traceback
import typing
from pathlib import Path

from pinnsketch.pde.problem import Problem
from pinnsketch.pde.unknowns import Unknown

__all__ = ["builtin_problems", "load_problem_file", "resolve_problem", "make_problem",
           "parse_param_overrides", "problem_source", "load_problem_source", "file_digest"]

_MODULE_PREFIX = "pinnsketch_problem_"


def builtin_problems() -> dict[str, Path]:
    """Registry name -> file of every built-in problem, sorted by name."""
    root = importlib.resources.files("pinnsketch.builtin_problems")
    files = {}
    for entry in root.iterdir():
        name = entry.name
        if name.endswith(".py") and not name.startswith("_"):
            files[name[:-3]] = Path(str(entry))
    return dict(sorted(files.items()))


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex), recorded with a problem file so resume can tell
    whether the code changed."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _where(exc: BaseException, path: Path) -> str:
    """", line N" of the innermost traceback frame inside ``path`` (or "")."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f", line {exc.lineno}"
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    return f", line {line}" if line else ""


def load_problem_file(path: str | Path) -> type[Problem]:
    """The Problem subclass defined in a Python file.

    A problem file is Python code: loading it runs it. Errors while running it (a syntax
    error, a failed import, an exception) come back as one ValueError naming the file, the
    line and the cause.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file fails to run, defines no Problem subclass, or several without
            ``PROBLEM``.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"problem file {str(path)!r} does not exist")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"{_MODULE_PREFIX}{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load {str(path)!r} as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        what = "has a syntax error" if isinstance(exc, SyntaxError) else "failed to load"
        detail = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise ValueError(f"problem file {str(path)!r}{_where(exc, path)} {what}: "
                         f"{type(exc).__name__}: {detail}") from None
    chosen = getattr(module, "PROBLEM", None)
    if chosen is not None:
        if not (isinstance(chosen, type) and issubclass(chosen, Problem)):
            raise ValueError(f"{path.name}: PROBLEM must be a Problem subclass, got {chosen!r}")
        return chosen
    found = [obj for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, Problem) and obj is not Problem
             and obj.__module__ == module_name]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise ValueError(f"{path.name} must define exactly one Problem subclass (found: {names}); "
                         "set PROBLEM = YourClass to choose one")
    return found[0]


def resolve_problem(name_or_path: str) -> type[Problem]:
    """A built-in name (``"burgers"``) or a path to a ``.py`` file -> the Problem class."""
    if name_or_path.endswith(".py") or "/" in name_or_path or "\\" in name_or_path:
        return load_problem_file(name_or_path)
    builtins = builtin_problems()
    if name_or_path not in builtins:
        raise ValueError(f"unknown problem {name_or_path!r}; valid problems: "
                         f"{', '.join(builtins)} (or a path to a problem .py file)")
    return load_problem_file(builtins[name_or_path])


def parse_param_overrides(items: list[str], flag: str = "--param") -> dict[str, str]:
    """["nu=0.005", "L=2"] -> {"nu": "0.005", "L": "2"}; ``flag`` names the option in errors.

    Raises:
        ValueError: an item that is not KEY=VALUE, or a key given twice (which value was
            meant is not known; with ``unknown:`` values: a parameter declared unknown twice).
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        key, value = key.strip(), value.strip()
        if key in out:
            both = (out[key], value)
            what = ("declared unknown twice" if all(Unknown.parse(v) for v in both)
                    else "given twice")
            raise ValueError(f"{flag} {key} {what} ({key}={both[0]} and {key}={both[1]}); give "
                             "it once")
        out[key] = value
    return out


def make_problem(cls: type[Problem], overrides: dict[str, object] | None = None) -> Problem:
    """Instantiate ``cls`` with overrides; string values are converted to the field's type."""
    overrides = dict(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, raw in overrides.items():
        if key not in fields:
            valid = ", ".join(fields) or "none"
            raise ValueError(f"{cls.name} has no parameter {key!r}; its parameters: {valid}")
        kwargs[key] = _convert(raw, hints.get(key, str), key)
        if isinstance(kwargs[key], Unknown) and float not in _types(hints.get(key, str)):
            raise ValueError(f"{cls.name}: parameter {key!r} cannot be unknown: only float "
                             "parameters are learnt")
    return cls(**kwargs)


def _types(typ: object) -> tuple:
    """The types a hint allows (``float | Unknown`` -> (float, Unknown))."""
    args = typing.get_args(typ)
    return args if args else (typ,)


def _convert(raw: object, typ: object, key: str) -> object:
    if not isinstance(raw, str):
        return raw
    unknown = Unknown.parse(raw)
    if unknown is not None:
        return unknown
    typ = float if float in _types(typ) else typ
    try:
        if typ is bool:
            if raw.lower() in ("1", "true", "yes"):
                return True
            if raw.lower() in ("0", "false", "no"):
                return False
            raise ValueError(raw)
        if typ in (int, float):
            return typ(raw)
    except ValueError:
        raise ValueError(f"parameter {key}={raw!r} is not a valid {typ.__name__}") from None
    return raw


def problem_source(problem: Problem) -> dict[str, str] | None:
    """How ``resume`` can load ``problem``'s class again, recorded in config.json.

    ``{"builtin": name}`` for a built-in problem; ``{"file": absolute path, "sha256": hex}``
    for a class loaded from a problem file by :func:`load_problem_file`; None for a class
    defined anywhere else (a notebook cell, a script), whatever its name.
    """
    cls = type(problem)
    try:
        source = Path(inspect.getsourcefile(cls) or "").resolve()
    except (TypeError, OSError):  # defined in __main__ or a notebook cell
        return None
    builtin = builtin_problems().get(problem.name)
    if builtin is not None and source == builtin.resolve():
        return {"builtin": problem.name}
    if cls.__module__.startswith(_MODULE_PREFIX) and source.is_file():
        return {"file": str(source), "sha256": file_digest(source)}
    return None


def load_problem_source(record: dict[str, str], allow_changed: bool = False) -> type[Problem]:
    """The Problem class named by a :func:`problem_source` record.

    A problem file is code: it runs again here. It must be the file the run was started
    with: a file whose bytes changed since (SHA-256) is refused unless ``allow_changed``.

    Raises:
        FileNotFoundError: the problem file is gone.
        ValueError: the file changed, the record is malformed, or loading fails.
    """
    if not isinstance(record, dict):
        raise ValueError(f"malformed problem source {record!r} in config.json")
    if "builtin" in record:
        return resolve_problem(str(record["builtin"]))
    path = Path(str(record.get("file", "")))
    if not path.is_absolute() or "sha256" not in record:
        raise ValueError(f"malformed problem source {record!r} in config.json")
    if not path.is_file():
        raise FileNotFoundError(f"the run's problem file {str(path)!r} no longer exists; "
                                "restore it, or resume from Python with resume(..., problem=...)")
    if not allow_changed and file_digest(path) != record["sha256"]:
        raise ValueError(f"problem file {str(path)!r} changed since the run started (its "
                         "SHA-256 differs); resuming would train another problem. Restore "
                         "the file, or pass --allow-changed-problem if the change is harmless")
    return load_problem_file(path)

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
import sys
import typing
from pathlib import Path

from pinnsketch.pde.problem import Problem

__all__ = ["builtin_problems", "load_problem_file", "resolve_problem", "make_problem",
           "parse_param_overrides"]


def builtin_problems() -> dict[str, Path]:
    """Registry name -> file of every built-in problem, sorted by name."""
    root = importlib.resources.files("pinnsketch.builtin_problems")
    files = {}
    for entry in root.iterdir():
        name = entry.name
        if name.endswith(".py") and not name.startswith("_"):
            files[name[:-3]] = Path(str(entry))
    return dict(sorted(files.items()))


def load_problem_file(path: str | Path) -> type[Problem]:
    """The Problem subclass defined in a Python file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file defines no Problem subclass, or several without ``PROBLEM``.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"problem file {str(path)!r} does not exist")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"pinnsketch_problem_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load {str(path)!r} as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[module_name]
        raise
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
    """["nu=0.005", "L=2"] -> {"nu": "0.005", "L": "2"}; ``flag`` names the option in errors."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
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
    return cls(**kwargs)


def _convert(raw: object, typ: object, key: str) -> object:
    if not isinstance(raw, str):
        return raw
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

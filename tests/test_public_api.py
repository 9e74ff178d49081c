"""The curated public API, and imports that point down (STYLE.md items 9 and 15)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import pinnsketch

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pinnsketch"
PROBLEMS = ROOT / "problems"
THIRD_PARTY_FOR_PROBLEMS = {"numpy", "torch"}
HIGH_LEVEL = ("pinnsketch.api", "pinnsketch.cli", "pinnsketch.train", "pinnsketch.tasks",
              "pinnsketch.storage")


def test_all_names_import():
    assert isinstance(pinnsketch.__version__, str) and pinnsketch.__version__
    assert len(set(pinnsketch.__all__)) == len(pinnsketch.__all__)
    for name in pinnsketch.__all__:
        assert hasattr(pinnsketch, name), name
    namespace: dict = {}
    exec(f"from pinnsketch import {', '.join(pinnsketch.__all__)}", namespace)
    assert all(name in namespace for name in pinnsketch.__all__)


def test_star_import_is_all():
    namespace: dict = {}
    exec("from pinnsketch import *", namespace)
    assert {k for k in namespace if not k.startswith("__")} | {"__version__"} == set(
        pinnsketch.__all__)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in the file (lazy imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            found.add(target)
            # "from pinnsketch import cli" imports the submodule pinnsketch.cli
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_import_parser_sees_imports():
    found = _imports(PACKAGE / "pde" / "conditions.py")
    assert "pinnsketch.pde.derivatives" in found and "torch" in found
    assert _within("pinnsketch.api", "pinnsketch.api")


@pytest.mark.parametrize("sub", ["pde", "sketch", "network"])
def test_low_layers_do_not_import_high_layers(sub):
    files = _files(PACKAGE / sub)
    assert files
    for path in files:
        bad = {n for n in _imports(path) for high in HIGH_LEVEL if _within(n, high)}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_sketch_and_pde_are_independent():
    for path in _files(PACKAGE / "sketch"):
        bad = {n for n in _imports(path) if _within(n, "pinnsketch.pde")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
    for path in _files(PACKAGE / "pde"):
        bad = {n for n in _imports(path) if _within(n, "pinnsketch.sketch")
               or _within(n, "pinnsketch.network")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_only_entry_points_import_cli():
    allowed = {PACKAGE / "cli.py", PACKAGE / "__main__.py"}
    for path in _files(PACKAGE) + _files(PROBLEMS):
        if path in allowed:
            continue
        bad = {n for n in _imports(path) if _within(n, "pinnsketch.cli")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_problem_files_use_only_the_public_api():
    files = _files(PROBLEMS)
    assert len(files) >= 3
    for path in files:
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "pinnsketch":
                # the top level and the names it exports, nothing deeper
                ok = name == "pinnsketch" or name.split(".", 1)[1] in pinnsketch.__all__
                assert ok, f"{path.relative_to(ROOT)} imports {name}"
            else:
                ok = top in sys.stdlib_module_names or top in THIRD_PARTY_FOR_PROBLEMS \
                    or top == "__future__"
                assert ok, f"{path.relative_to(ROOT)} imports {name}"



def test_every_subpackage_is_packaged():
    """A non-editable install ships only the packages listed in pyproject.toml."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(root).parts)
             for p in (root / "pinnsketch").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert "pinnsketch.builtin_problems" in listed

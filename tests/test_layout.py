"""The package layout keeps its rules: imports point one way, and the top level stays small.

* The library (everything but ``vbayes.studies`` and ``vbayes.cli``) never imports from
  ``studies`` or ``cli``; ``studies`` never imports from ``cli``; the scripts in ``benchmarks/``
  never import from ``cli`` (``vbayes/__main__.py``, the ``python -m vbayes`` entry point, is the
  one module of the library allowed to start the CLI).
* At most 10 modules stand loose in ``src/vbayes/``.
* Every old import path listed in ``vbayes._moved`` still imports, as the very same module.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "vbayes"


def _imports(path: Path) -> set[str]:
    """Absolute ``vbayes...`` module names imported anywhere in ``path`` (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n == "vbayes" or n.startswith("vbayes.")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ("studies", "cli") else "library"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


ALLOWED = {"library": {"library"}, "studies": {"library", "studies"}, "cli": {"library", "studies", "cli"}}


def test_imports_point_one_way() -> None:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        if name == "vbayes.__main__":
            continue
        for imported in _imports(path):
            if _layer(imported) not in ALLOWED[_layer(name)]:
                bad.append(f"{name} imports {imported}")
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        bad += [f"benchmarks/{path.name} imports {m}" for m in _imports(path) if _layer(m) == "cli"]
    assert not bad, "\n".join(bad)


def test_the_rule_would_catch_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from vbayes.cli.runs import StagedRun\n    import vbayes.studies.uq\n")
    assert {_layer(m) for m in _imports(module)} == {"cli", "studies"}


def test_few_loose_modules() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= 10, loose


@pytest.mark.parametrize("old", sorted(importlib.import_module("vbayes._moved").MOVED))
def test_old_import_paths_still_work(old: str) -> None:
    from vbayes._moved import MOVED

    assert importlib.import_module(old) is importlib.import_module(MOVED[old])


def test_old_package_paths_still_work() -> None:
    import vbayes.studies.uq.pipeline as new

    assert importlib.import_module("vbayes.uq.pipeline") is new
    assert importlib.import_module("vbayes.commands.uq") is importlib.import_module("vbayes.cli.commands.uq")

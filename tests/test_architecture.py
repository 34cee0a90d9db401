"""The layering of docs/architecture.md holds: no module imports from a later stage."""

from __future__ import annotations

import ast

import pytest

from culteval.config import ROOT

PACKAGE = ROOT / "src" / "culteval"
# Stage order (docs/architecture.md). Shared helpers first; a module may import its own layer or earlier.
LAYERS = [
    {"io", "stats", "gguf", "inputs"},
    {"config", "provenance", "tasks"},
    {"acquire", "preflight"},
    {"translate"},
    {"prompts"},
    {"engine"},
    {"metrics"},
    {"report"},
    {"lineage", "pipeline", "cli", "dvcgraph", "verify", "runrecord", "costmodel", "resources", "cluster"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(module: str) -> str:
    """``culteval.metrics.summary`` -> ``metrics`` (a package or top-level module is one unit)."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def _imports(path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("culteval."):
            out.add(_unit(node.module))
        elif isinstance(node, ast.ImportFrom) and node.module == "culteval":
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; use absolute culteval imports")
        elif isinstance(node, ast.Import):
            out.update(_unit(a.name) for a in node.names if a.name.startswith("culteval."))
    return out


def _sources():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_later_stage(path):
    rel = path.relative_to(PACKAGE)
    unit = rel.parts[0].removesuffix(".py")
    assert unit in RANK, f"{rel}: place the new module in a layer of docs/architecture.md and LAYERS here"
    later = sorted(u for u in _imports(path) if RANK.get(u, -1) > RANK[unit])
    assert not later, f"{rel} ({unit}) imports from later stages: {later}"

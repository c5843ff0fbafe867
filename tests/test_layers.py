"""Imports run downward only: domain <- data <- services <- http <- the functions (read from each module's AST)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
# Each package (or module) and its layer: a module may import its own layer's and lower layers' modules.
LAYERS = {
    "core.domain": 0,  # models, the field table, errors and pure rules
    "core.config": 1,  # settings: read from the environment at cold start
    "core.data": 1,  # the one place that talks to DynamoDB and S3
    "core.cursor_keys": 1,
    "core.services": 2,  # use cases, given repositories
    "core.http": 3,  # the HTTP edge both HTTP functions share
    "core.wiring": 4,  # the one place that puts services together
    "core.startup": 4,
    "tasks": 5,
    "streaming": 5,
    "uploads": 5,
    "cleanup": 5,
    "rotation": 5,
    "publisher": 5,
}


def layer(module: str) -> int | None:
    """The layer of a module of ours (None for anything else: the standard library, dependencies)."""
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module a file imports, at its top, inside functions or only for type checking."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from core.domain import x`
    return names


SOURCES = sorted(path for path in SRC.rglob("*.py") if layer(module_name(path)) is not None)


def test_every_module_of_ours_has_a_layer() -> None:
    packages = {module_name(path) for path in SRC.rglob("*.py")} - {"core"}  # core/__init__.py: empty

    assert all(layer(name) is not None for name in packages), sorted(n for n in packages if layer(n) is None)


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_imports_run_downward_only(path: Path) -> None:
    own = layer(module_name(path))
    assert own is not None

    upward = sorted(name for name in imported(path) if (rank := layer(name)) is not None and rank > own)

    assert not upward, f"{module_name(path)} (layer {own}) imports from above: {upward}"


def test_the_rule_finds_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "model.py"
    module.write_text("def f():\n    from core.data.tasks import TaskRepository\n")

    assert {"core.data.tasks", "core.data.tasks.TaskRepository"} <= imported(module)
    assert layer("core.data.tasks") > layer("core.domain.models")

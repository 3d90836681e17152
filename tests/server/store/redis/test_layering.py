"""The Redis store's modules import one another only downward: no circle,
counting imports under ``if TYPE_CHECKING:`` and inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import server.store.redis as package

PACKAGE_DIR = Path(package.__file__).parent


def _imports() -> dict[str, set[str]]:
    """Module name -> the package's modules it imports (relative or absolute)."""
    names = {path.stem for path in PACKAGE_DIR.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE_DIR.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    module = node.module or ""
                elif node.module and node.module.startswith("server.store.redis."):
                    module = node.module.removeprefix("server.store.redis.")
                else:
                    continue
                found |= {module} if module else {alias.name for alias in node.names}
            elif isinstance(node, ast.Import):
                prefix = "server.store.redis."
                found |= {
                    a.name.removeprefix(prefix) for a in node.names if a.name.startswith(prefix)
                }
        graph[path.stem] = {name.split(".")[0] for name in found} & names - {path.stem}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            if (found := visit(imported, [*path, module])) is not None:
                return found
        done.add(module)
        return None

    for module in sorted(graph):
        if (found := visit(module, [])) is not None:
            return found
    return None


def test_no_module_imports_another_in_a_circle() -> None:
    graph = _imports()
    graph["__init__"] = set()  # the package's face imports its parts; nothing imports it
    assert _cycle(graph) is None


def test_parts_depend_on_protocols_not_on_the_store() -> None:
    graph = _imports()
    importers = sorted(module for module, imported in graph.items() if "store" in imported)
    assert importers == ["__init__"]

"""Imports flow one way (ARCHITECTURE.md): entry layers (cli, api, dags) -> services (delivery -> pipeline ->
registry) -> building blocks (connectors, quality, schemas) -> core. Inside the registry no import circle, and a
capability package (registry/audit/, registry/catalog/, ...) is used from outside only through its public
modules and names (those not beginning with `_`). Checked on the source, imports inside functions included, so
a shortcut cannot slip in."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRY = {"cli", "api", "dags"}
SERVICES = {"pipeline", "delivery", "registry"}
BLOCKS = {"connectors", "quality", "schemas"}
# The middle layer has an order of its own: delivery may use pipeline and registry, pipeline only registry.
MIDDLE_ABOVE = {"delivery": set(), "pipeline": {"delivery"}, "registry": {"pipeline", "delivery"}}
FORBIDDEN = {
    **{package: ENTRY | MIDDLE_ABOVE[package] for package in SERVICES},
    **{package: ENTRY | SERVICES for package in BLOCKS},
    "core": ENTRY | SERVICES | BLOCKS,
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package: str) -> None:
    offenders = {str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[package])
                 for path in (ROOT / package).rglob("*.py") if _imports(path) & FORBIDDEN[package]}
    assert offenders == {}, f"{package}/ imports a layer above it: {offenders}"


def test_nothing_imports_the_entry_layers_from_another_entry_layer() -> None:
    offenders = {str(path.relative_to(ROOT)): sorted(_imports(path) & (ENTRY - {package}))
                 for package in ENTRY for path in (ROOT / package).rglob("*.py")
                 if _imports(path) & (ENTRY - {package})}
    assert offenders == {}, f"an entry layer imports another: {offenders}"


# --------------------------------------------------------------------------------------------- inside registry
REGISTRY = ROOT / "registry"
# Shared infrastructure at registry/'s top level (seals.py: the row seals, which name tables, never import them);
# models.py (what Alembic imports) and the migrations import every capability's tables, nothing else at the top
# level may import a capability package.
INFRASTRUCTURE = {"registry", "registry.db", "registry.orm", "registry.migrate", "registry.seals"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _registry_modules() -> dict[str, Path]:
    return {_module_name(path): path for path in REGISTRY.rglob("*.py")}


def _imported_modules(path: Path, known: set[str]) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) for each import of a known module; `from package import module` names the module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names if alias.name in known]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in known:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names
                          if f"{node.module}.{alias.name}" in known]
            found += [(node.lineno, module, []) for module in submodules]
            names = [alias.name for alias in node.names if f"{node.module}.{alias.name}" not in known]
            if names:
                found.append((node.lineno, node.module, names))
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle in the graph, or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return []

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return []


def registry_import_graph() -> dict[str, set[str]]:
    modules = _registry_modules()
    return {module: {target for _, target, _ in _imported_modules(path, set(modules)) if target != module}
            for module, path in modules.items()}


def test_no_import_circle_inside_the_registry() -> None:
    circle = _cycle(registry_import_graph())
    assert circle == [], "registry/ modules import each other in a circle: " + " -> ".join(circle)


def test_the_registry_infrastructure_imports_no_capability() -> None:
    graph = registry_import_graph()
    offenders = {module: sorted(target for target in graph[module] if target not in INFRASTRUCTURE)
                 for module in INFRASTRUCTURE if module in graph}
    offenders = {module: targets for module, targets in offenders.items() if targets}
    assert offenders == {}, f"the registry's shared infrastructure (db, orm, migrate) imports a capability: {offenders}"


def capability_packages() -> set[str]:
    return {path.parent.name for path in REGISTRY.glob("*/__init__.py") if path.parent.name != "migrations"}


def _owner(module: str, capabilities: set[str]) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "registry" and parts[1] in capabilities else None


def test_capability_packages_are_used_through_their_public_names() -> None:
    """Outside its package (another capability, or pipeline, delivery, the entry layers, tests), a capability is
    used only through modules and names that do not begin with `_`."""
    capabilities = capability_packages()
    known = set(_registry_modules())
    offenders = []
    sources = [path for top in ROOT.iterdir() if top.is_dir() and not top.name.startswith(".")
               for path in top.rglob("*.py")]
    for path in sources:
        if "migrations" in path.parts:
            continue
        here = _owner(_module_name(path), capabilities)
        for line, module, names in _imported_modules(path, known):
            owner = _owner(module, capabilities)
            if owner is None or owner == here:
                continue
            private = [part for part in module.split(".")[2:] if part.startswith("_")]
            private += [name for name in names if name.startswith("_")]
            if private:
                offenders.append(f"{path.relative_to(ROOT)}:{line} {module} {private}")
    assert offenders == [], f"private modules or names of another capability package: {offenders}"


def test_every_registry_module_belongs_to_a_capability_or_the_infrastructure() -> None:
    capabilities = capability_packages()
    loose = sorted(module for module in _registry_modules()
                   if _owner(module, capabilities) is None and module not in INFRASTRUCTURE | {"registry.models"}
                   and not module.startswith("registry.migrations"))
    assert loose == [], f"registry modules outside a capability package: {loose}"

"""Imports flow one way (ARCHITECTURE.md): entry layers (cli, api, dags) -> services (pipeline, delivery,
registry) -> building blocks (connectors, quality, schemas) -> core. Checked on the source, imports inside
functions included, so a shortcut cannot slip in."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRY = {"cli", "api", "dags"}
SERVICES = {"pipeline", "delivery", "registry"}
BLOCKS = {"connectors", "quality", "schemas"}
FORBIDDEN = {
    **{package: ENTRY for package in SERVICES},
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

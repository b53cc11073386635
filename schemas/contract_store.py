"""Where contracts are found (契约库): GOVSHARE_HOME/contracts (an operator's own) first, then the contracts
shipped in schemas/contracts/. A resource uses the contract named by ``contract:`` in its stream config, else
the contract whose ``resources:`` list holds its code, else none (only the built-in key checks run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import ConfigError, NotFound
from quality.contracts import Contract, load_contract

SHIPPED = Path(__file__).with_name("contracts")
_CACHE: dict[tuple[str, float], Contract] = {}


def contract_dirs() -> list[Path]:
    from core.settings import get_settings

    return [get_settings().home / "contracts", SHIPPED]


def _load_cached(path: Path) -> Contract:
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _CACHE:
        _CACHE[key] = load_contract(path)
    return _CACHE[key]


def contract_files() -> list[Path]:
    seen: dict[str, Path] = {}
    for folder in contract_dirs():
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            seen.setdefault(path.stem, path)
    return list(seen.values())


def find_contract(name: str) -> Contract:
    """The contract ``name`` (file ``<name>.yaml``), validated; NotFound lists where it looked."""
    for folder in contract_dirs():
        path = folder / f"{name}.yaml"
        if path.is_file():
            contract = _load_cached(path)
            if contract.name != name:
                raise ConfigError(f"contract file {path} declares name {contract.name!r}; rename one to match")
            return contract
    raise NotFound(f"no contract {name!r} in {', '.join(str(d) for d in contract_dirs())}")


def contract_for(*, resource_code: str, stream: dict[str, Any] | None) -> Contract | None:
    """The resource's contract, or None when it has none."""
    name = (stream or {}).get("contract")
    if name:
        return find_contract(str(name))
    for path in contract_files():
        # A contract can only list the code if its file holds the text: skip parsing (and validating)
        # every other contract on each run.
        if resource_code not in path.read_text(encoding="utf-8"):
            continue
        contract = _load_cached(path)
        if resource_code in contract.resources:
            return contract
    return None

"""Looks connectors up by their ``kind`` through the ``govshare.connectors`` entry points."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points

from connectors.base import Connector
from core.errors import ConfigError


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group="govshare.connectors")}


def available_kinds() -> list[str]:
    return sorted(_entry_points())


def connector_class(kind: str) -> type[Connector]:
    ep = _entry_points().get(kind)
    if ep is None:
        known = ", ".join(available_kinds()) or "none (is govshare installed? run `pip install -e .`)"
        raise ConfigError(f"unknown source kind {kind!r}; known kinds: {known}")
    cls = ep.load()  # type: ignore[attr-defined]
    if not (isinstance(cls, type) and issubclass(cls, Connector)) or cls.kind != kind:
        raise ConfigError(f"entry point {kind!r} does not name a Connector whose kind is {kind!r}")
    return cls

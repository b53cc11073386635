"""Source connectors by their ``kind``: the ``govshare.connectors`` entry points, through core.plugins."""

from __future__ import annotations

from connectors.base import Connector
from core.errors import ConfigError
from core.plugins import kinds, lookup

ENTRY_POINT_GROUP = "govshare.connectors"


def available_kinds() -> list[str]:
    return kinds(ENTRY_POINT_GROUP)


def connector_class(kind: str) -> type[Connector]:
    """The connector registered as ``kind``; an unknown kind is a ConfigError listing the known ones."""
    cls = lookup(ENTRY_POINT_GROUP, kind, base=Connector)
    if cls.kind != kind:
        raise ConfigError(f"插件 {kind} 声明的类型是 {cls.kind!r} / entry point {kind!r} names a connector whose "
                          f"kind is {cls.kind!r}")
    return cls

"""One lookup for every plugin (插件): a class registered as an entry point in a group of setup.cfg, by its kind.

Groups: ``govshare.connectors`` (source connectors by `kind`, connectors/kinds.py) and ``govshare.checks``
(quality rule types by a contract rule's `type`, quality/checks/__init__.py). An unknown kind is a ConfigError
that lists the known ones.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar

from core.errors import ConfigError

T = TypeVar("T")
# what a kind is called in each group: Chinese, English, English plural
GROUPS = {"govshare.connectors": ("数据源类型", "source kind", "kinds"),
          "govshare.checks": ("规则类型", "rule type", "types")}


@cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def kinds(group: str) -> list[str]:
    """The kinds registered in ``group``, sorted."""
    return sorted(_entry_points(group))


def lookup(group: str, kind: str, *, base: type[T]) -> type[T]:
    """The class registered as ``kind`` in ``group``; it must be a subclass of ``base``."""
    zh, en, plural = GROUPS.get(group, ("插件类型", "plugin kind", "kinds"))
    entry = _entry_points(group).get(kind)
    if entry is None:
        known = ", ".join(kinds(group)) or "none (is govshare installed? run `pip install -e .`)"
        raise ConfigError(f"未知的{zh} {kind!r}，可选：{known} / unknown {en} {kind!r}; known {plural}: {known}")
    cls = entry.load()
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"插件 {kind} = {entry.value} 不是 {base.__name__} 的子类 / entry point {kind} = "
                          f"{entry.value} in {group} is not a {base.__module__}.{base.__name__} subclass")
    return cls

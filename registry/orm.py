"""The ORM base every registry table derives from (one metadata for Alembic: registry/models.py imports every
capability's models)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator):
    """An instant, always written in UTC (时间一律按协调世界时存储).

    PostgreSQL keeps an instant whatever its offset, but SQLite keeps the wall-clock digits and drops the offset,
    and the registry reads a naive value back as UTC (core.clock.as_utc): an instant built in Beijing time (a grant
    that expires at the end of a Beijing day, a period's first instant) came back 8 hours late. Converting every
    aware value to UTC before it is written makes both backends store the same instant, whoever built it; a naive
    value is already UTC by the registry's rule and passes as it is. Comparisons in queries go through here too."""

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UtcDateTime()}


# Every table is declared on this Base, so whatever writes a row has imported this module: the row seals' hooks are
# installed here and every sealed row the hub writes is sealed without a service having to remember it.
import registry.seals  # noqa: E402,F401

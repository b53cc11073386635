"""MySQL / MariaDB values in the forms the hub publishes, where the driver's own would differ.

TIMESTAMP columns are read with the session time zone set to UTC and arrive as UTC instants; DATETIME has no
zone, so it stays a wall-clock timestamp unless the source config names the zone its values are written in
(``datetime_timezone``, e.g. ``Asia/Shanghai``), in which case they become instants in that zone, and a saved
cursor is compared in that zone. Spatial columns (GEOMETRY, POINT, ...) are read as their WKT text
(``ST_AsText``: 'POINT(1 2)'), not the driver's internal bytes. BIT(n) values are text of n binary digits, as
PostgreSQL's bit(n) are published ('1', '10101010'), not bytes (b'\x01').

Apart from the connector (connectors/mysql.py), which connects, streams and classifies errors, because these
rules look at a column's declared type and a row's values only, as connectors/postgres_forms.py does for
change capture.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from connectors.base import ColumnInfo

SPATIAL = ("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
           "geometrycollection", "geomcollection")


def selected(column: ColumnInfo) -> str:
    """A table column in the read's select list: spatial values as WKT text (the catalogue declares text)."""
    name = "`" + column.name.replace("`", "``") + "`"
    return f"ST_AsText({name}) AS {name}" if column.source_type.lower() in SPATIAL else name


def bit_width(source_type: str) -> int:
    """n of a BIT(n) column's type (BIT alone is BIT(1)); 0 for any other type."""
    kind = source_type.lower().replace(" ", "")
    if kind == "bit":
        return 1
    return int(kind[4:-1]) if kind.startswith("bit(") and kind.endswith(")") and kind[4:-1].isdigit() else 0


def bit_strings(rows: list[tuple], bits: dict[int, int]) -> list[tuple]:
    """BIT values (the driver's big-endian bytes) as text of their binary digits, n of them."""
    result = []
    for row in rows:
        values = list(row)
        for i, width in bits.items():
            if isinstance(values[i], bytes):
                values[i] = format(int.from_bytes(values[i], "big"), f"0{width}b")
        result.append(tuple(values))
    return result


def cursor_param(value: str, column: ColumnInfo) -> Any:
    """The saved cursor text as the column's own kind of value, in the zone the server compares in."""
    if not pa.types.is_timestamp(column.arrow_type):
        return value
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        return moment
    # DATETIME in a declared zone compares as wall-clock time there; TIMESTAMP in the UTC session.
    return moment.astimezone(ZoneInfo(column.arrow_type.tz)).replace(tzinfo=None)


def localized(rows: list[tuple], zoned: list[int], types: list[pa.DataType]) -> list[tuple]:
    """Naive driver datetimes get their zone; Arrow would otherwise take them as UTC."""
    zones = {i: timezone.utc if types[i].tz == "UTC" else ZoneInfo(types[i].tz) for i in zoned}
    result = []
    for row in rows:
        values = list(row)
        for i, zone in zones.items():
            if isinstance(values[i], datetime):
                values[i] = values[i].replace(tzinfo=zone)
        result.append(tuple(values))
    return result

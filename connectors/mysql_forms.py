"""MySQL / MariaDB values in the forms the hub publishes, where the driver's own would differ.

TIMESTAMP columns are read with the session time zone set to UTC and arrive as UTC instants; DATETIME has no
zone, so it stays a wall-clock timestamp unless the source config names the zone its values are written in
(``datetime_timezone``, e.g. ``Asia/Shanghai``), in which case they become instants in that zone, and a saved
cursor is compared in that zone. A wall-clock time the zone skipped (Shanghai's summer time of 1986-1991:
1990-04-15 02:30) names no instant: its row is quarantined (connectors.arrowconv), never moved an hour on; a
time the zone repeats (the autumn hour) is taken as its first occurrence. Spatial columns (GEOMETRY, POINT, ...) are read as their WKT text
(``ST_AsText``: 'POINT(1 2)'), not the driver's internal bytes. BIT(n) values are text of n binary digits, as
PostgreSQL's bit(n) are published ('1', '10101010'), not bytes (b'\x01'). FLOAT values are read as doubles
(``f * 1e0``, exact: every single-precision value is a double): the server prints a FLOAT with six significant
digits, so 123456789, stored as 123456792, came as 123457000 and was published so.

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


def selected(column: ColumnInfo, *, source: str = "") -> str:
    """A column in the read's select list (``source``: the alias of a query's result, ``q.``): spatial values
    as WKT text (the catalogue declares text); FLOAT as a double, whose text the server prints exactly (a FLOAT's
    own text has six significant digits, and the value published from it was not the stored one)."""
    name = "`" + column.name.replace("`", "``") + "`"
    if column.source_type.lower() in SPATIAL:
        return f"ST_AsText({source}{name}) AS {name}"
    if column.arrow_type == pa.float32():
        return f"{source}{name} * 1e0 AS {name}"
    return source + name


def needs_form(column: ColumnInfo) -> bool:
    """Whether the column is selected as an expression rather than as itself."""
    return selected(column) != "`" + column.name.replace("`", "``") + "`"


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

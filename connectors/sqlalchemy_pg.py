"""A PostgreSQL database read through a SQLAlchemy URL publishes what the PostgreSQL connector publishes.

The generic path takes the driver's values, and psycopg2's were not the source's: an array became a Python list,
published as JSON text ('["a", null]', char(n) padded) where the PostgreSQL connector publishes a list (or
PostgreSQL's own text for a 2-D or numeric array, and quarantines a 2-D value in a column declared 1-D), and a time
of '24:00:00' (an office's closing time) became 00:00, the start of the day, where the PostgreSQL connector
quarantines it with what to store instead. So those columns are read as PostgreSQL's text and given their forms
by the code the PostgreSQL connector's capture uses (connectors.postgres_forms.published_batch), whatever driver
the URL names. The catalogue describes the arrays in those forms too (discovery, ``contract attach``).

Dates and timestamps: psycopg2 gives infinity as 9999-12-31 (-infinity as 0001-01-01), published as true dates,
and fails the whole read on a year BC or after 9999. Such a value is read as NULL with its text beside it, and
its row flagged as the PostgreSQL connector flags it (connectors.time_range), with the source's text 'infinity'.

Every column the PostgreSQL connector publishes as text is read as its type's output (a timetz had lost its
offset, '10:00+08' published as 10:00; an interval and a range were Python's '1 day, 2:00:00', '[1, 5)'),
char(n) without its padding, money as numeric (it was locale text, '$12.34'), as that connector publishes them;
the key scan reads its keys the same way (a time key of 24:00 was 00:00). ARCHITECTURE.md says what an existing
resource's next run makes of the new forms.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa

from connectors.base import ColumnInfo
from connectors.pgarrays import ArrayColumn
from connectors.postgres_catalog import table_columns
from connectors.postgres_forms import TIME_OF_DAY, ScalarForms, published_batch
from connectors.postgres_types import TIME_BOUNDS
from connectors.time_range import flag_dates_as_text


def _dated(kind: pa.DataType) -> str | None:
    """The PostgreSQL type of a date or timestamp column by its published type (TIME_BOUNDS' key)."""
    if pa.types.is_date32(kind):
        return "date"
    if pa.types.is_timestamp(kind):
        return "timestamptz" if kind.tz else "timestamp"
    return None


def _inside(column: sa.ColumnElement, kind: str) -> sa.ColumnElement:
    low, high = TIME_BOUNDS[kind]
    return sa.and_(sa.func.isfinite(column), column >= sa.literal_column(low), column < sa.literal_column(high))


def _output(column: sa.ColumnElement) -> sa.ColumnElement:
    """The type's output, as psql shows it (not a cast: inet's adds the netmask; format makes NULL '')."""
    return sa.case((column.is_not(None), sa.func.format("%s", column)))


def _dated_text(column: sa.ColumnElement, kind: str) -> sa.ColumnElement:
    """A date's or timestamp's text as the PostgreSQL connector writes it; a timestamptz in UTC, whatever the
    session's TimeZone (a database set to Asia/Shanghai wrote '10000-01-01 16:00:00+08' where that connector,
    counting the instant, writes '10000-01-01 08:00:00+00'): '+00' goes before a year's ' BC', as PostgreSQL
    puts it. infinity has no zone."""
    if kind != "timestamptz":
        return _output(column)
    utc = sa.func.regexp_replace(sa.func.format("%s", sa.func.timezone("UTC", column)), "( BC)?$", "+00\\1")
    return sa.case((sa.func.isfinite(column), utc), else_=_output(column))


@dataclass(frozen=True)
class TextColumns:
    """How a PostgreSQL table's columns are read: arrays and times of day as their text, other columns the
    PostgreSQL connector publishes as text as their type's output, dates within the years 1 to 9999."""

    arrays: dict[str, ArrayColumn]
    forms: ScalarForms
    outputs: dict[str, bool]  # read as their type's output; True: char(n), its padding dropped as a cast drops it
    dated: dict[str, str]  # date and timestamp columns: their PostgreSQL type
    amounts: dict[str, pa.DataType]  # money (a domain over it too): read as numeric, this decimal

    def __contains__(self, name: str) -> bool:
        return any(name in found for found in (self.arrays, self.forms.times, self.outputs, self.dated, self.amounts))

    def described(self, column: ColumnInfo) -> ColumnInfo:
        """The column as the PostgreSQL connector's catalogue describes it (an array: its published form)."""
        array = self.arrays.get(column.name)
        kind = array.arrow_type if array else pa.string() if column.name in self.outputs else \
            self.amounts.get(column.name)
        return column if kind is None else ColumnInfo(name=column.name, source_type=column.source_type,
                                                      nullable=column.nullable, arrow_type=kind)

    def selected(self, column: sa.Column) -> sa.ColumnElement:
        """What a read selects of the column (a cast of an array or a time to text is its type's output; a date
        outside the years 1 to 9999 is NULL, told by :meth:`beside`)."""
        if column.name in self.dated:
            value = sa.case((_inside(column, self.dated[column.name]), column))
            return sa.type_coerce(value, sa.types.NullType())
        if column.name in self.amounts:  # as the PostgreSQL connector reads it: money's text is the locale's
            return sa.type_coerce(sa.cast(column, sa.Numeric), sa.types.NullType())
        if self.outputs.get(column.name) is False:
            return _output(column)
        return sa.cast(column, sa.Text)

    def beside(self, table: sa.Table, names: list[str]) -> list[sa.ColumnElement]:
        """Selected after the columns ``names``: each dated one's text where its value is outside the years."""
        return [sa.case((sa.not_(_inside(table.c[name], self.dated[name])), _dated_text(table.c[name],
                                                                                        self.dated[name])))
                for name in names if name in self.dated]

    def batch(self, names: list[str], types: list[pa.DataType], rows: list[tuple]) -> pa.RecordBatch:
        """Rows as selected (the columns, then :meth:`beside`) in the forms the PostgreSQL connector publishes."""
        width, dated = len(names), [name for name in names if name in self.dated]
        batch = published_batch(names, types, [row[:width] for row in rows], forms=self.forms, arrays=self.arrays)
        outside = {}
        for index, row in enumerate(rows):
            found = {name: text for name, text in zip(dated, row[width:]) if text is not None}
            if found:
                outside[index] = found
        return flag_dates_as_text(batch, outside)


def text_columns(connection: sa.Connection, table: sa.Table) -> TextColumns | None:
    """How the table's columns are read, when the URL is PostgreSQL's (None: another database's)."""
    if connection.dialect.name != "postgresql":
        return None
    cursor = connection.connection.cursor()  # the catalogue's queries take a DB-API cursor
    try:
        found = table_columns(cursor, table.schema or connection.dialect.default_schema_name, table.name)
    finally:
        cursor.close()
    arrays = {column.name: array for column, array in found if array}
    plain = [column for column, array in found if not array]
    times = frozenset(column.name for column in plain if column.arrow_type == TIME_OF_DAY)
    outputs = {column.name: column.source_type.split("(")[0] == "character" for column in plain
               if column.arrow_type == pa.string() and not isinstance(table.c[column.name].type, sa.JSON)}
    dated = {column.name: kind for column in plain if (kind := _dated(column.arrow_type))}
    amounts = {column.name: column.arrow_type for column in plain if pa.types.is_decimal(column.arrow_type)
               and not isinstance(table.c[column.name].type, sa.Numeric)}
    return TextColumns(arrays=arrays, forms=ScalarForms(times=times), outputs=outputs, dated=dated, amounts=amounts)

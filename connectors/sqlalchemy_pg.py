"""A PostgreSQL database read through a SQLAlchemy URL publishes what the PostgreSQL connector publishes.

The generic path takes the driver's values, and psycopg2's were not the source's: an array became a Python list,
published as JSON text ('["a", null]', char(n) padded) where the PostgreSQL connector publishes a list (or
PostgreSQL's own text for a 2-D or numeric array, and quarantines a 2-D value in a column declared 1-D), and a time
of '24:00:00' (an office's closing time) became 00:00, the start of the day, where the PostgreSQL connector
quarantines it with what to store instead. So those columns are read as PostgreSQL's text and given their forms
by the code the PostgreSQL connector's capture uses (connectors.postgres_forms.published_batch), whatever driver
the URL names. The catalogue describes the arrays in those forms too (discovery, ``contract attach``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa

from connectors.base import ColumnInfo
from connectors.pgarrays import ArrayColumn
from connectors.postgres_catalog import table_columns
from connectors.postgres_forms import TIME_OF_DAY, ScalarForms, published_batch


@dataclass(frozen=True)
class TextColumns:
    """A PostgreSQL table's columns read as their text: its arrays and its times of day."""

    arrays: dict[str, ArrayColumn]
    forms: ScalarForms

    def __contains__(self, name: str) -> bool:
        return name in self.arrays or name in self.forms.times

    def described(self, column: ColumnInfo) -> ColumnInfo:
        """The column as the PostgreSQL connector's catalogue describes it (an array: its published form)."""
        array = self.arrays.get(column.name)
        return column if array is None else ColumnInfo(name=column.name, source_type=column.source_type,
                                                       nullable=column.nullable, arrow_type=array.arrow_type)

    def batch(self, names: list[str], types: list[pa.DataType], rows: list[tuple]) -> pa.RecordBatch:
        return published_batch(names, types, rows, forms=self.forms, arrays=self.arrays)


def text_columns(connection: sa.Connection, table: sa.Table) -> TextColumns | None:
    """The table's columns that are read as their text, when the URL is PostgreSQL's and it has any."""
    if connection.dialect.name != "postgresql":
        return None
    cursor = connection.connection.cursor()  # the catalogue's queries take a DB-API cursor
    try:
        found = table_columns(cursor, table.schema or connection.dialect.default_schema_name, table.name)
    finally:
        cursor.close()
    arrays = {column.name: array for column, array in found if array}
    times = frozenset(column.name for column, array in found if not array and column.arrow_type == TIME_OF_DAY)
    return TextColumns(arrays=arrays, forms=ScalarForms(times=times)) if arrays or times else None


def as_text(column: sa.Column) -> sa.ColumnElement:
    """The column as its type's output (a cast of an array or a time to text is that output; NULL stays NULL)."""
    return sa.cast(column, sa.Text)

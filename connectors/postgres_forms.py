"""Change capture's (变更捕获) scalar values in the forms a full read of the same table publishes.

The full and incremental reads (connectors/postgres.py) are the reference: consumers hold what they published.
The capture reads its snapshot with psycopg2 and its changes as pgoutput text, which gave other forms:

- char(n) kept its blank padding ('ab  ' where the reads give 'ab'): a row flipped form between a snapshot and a
  captured change, and a char(n) key touched by a change did not match its published key;
- interval followed the capture session's IntervalStyle (iso_8601: 'P1D', 'PT-3H'); the reads give the
  server's own style ('1 day', '-03:00:00'), so the capture session now keeps the server's default too;
- money came as locale text ('$1,234.56'), which does not parse as the decimal the reads publish (money::numeric):
  every row with a value was quarantined. The session reads it in the C locale, parsed here;
- time of day was text ('08:00:01.5') where the reads' driver gives Arrow time64[us].

The columns are told by their base type (a domain's too), never by their values. FORMS numbers this set of
rules: a resource's cdc cursor state names the forms its versions hold, and one naming other forms takes a
snapshot on its next run (pipeline/cdc.py), so no version mixes two forms of a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from connectors.base import ColumnInfo

FORMS = 2  # 1: the forms before (unnumbered): padding kept, intervals in ISO 8601, money quarantined, time as text

# Settings of the capture's sessions (snapshot and stream). TimeZone and DateStyle only fix the text the
# capture parses into typed values; IntervalStyle is left to the server, as the full read leaves it.
SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c lc_monetary=C -c extra_float_digits=3"
TIME_OF_DAY = pa.time64("us")


@dataclass(frozen=True)
class ScalarForms:
    padded: frozenset[str] = field(default_factory=frozenset)  # char(n): padding dropped
    money: frozenset[str] = field(default_factory=frozenset)  # C-locale money text to a decimal
    times: frozenset[str] = field(default_factory=frozenset)  # time without time zone: a time of day

    def columns(self, columns: list[ColumnInfo]) -> list[ColumnInfo]:
        """The catalogue's columns with the types the full read publishes (it says text for a time of day)."""
        return [replace(c, arrow_type=TIME_OF_DAY) if c.name in self.times else c for c in columns]

    def values(self, names: list[str], rows: list[tuple]) -> list[tuple]:
        """Rows as psycopg2 or pgoutput give them, money made a decimal (before Arrow, which cannot read '$')."""
        positions = [i for i, name in enumerate(names) if name in self.money]
        if not positions:
            return rows
        return [tuple(money(v) if i in positions else v for i, v in enumerate(row)) for row in rows]

    def batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """A batch (rows or keys) with char(n)'s padding dropped, as the full read drops it."""
        trimmed = [n for n in batch.schema.names if n in self.padded]
        for name in trimmed:
            index = batch.schema.get_field_index(name)
            batch = batch.set_column(index, batch.schema.field(index),
                                     pc.utf8_rtrim(batch.column(index), characters=" "))
        return batch


def scalar_forms(cursor, schema: str, table: str) -> ScalarForms:  # noqa: ANN001 - psycopg2 cursor
    """The table's columns needing a form of their own, by their base type (a domain's base type too)."""
    cursor.execute(
        """SELECT a.attname, b.typname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
           JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped""", (schema, table))
    found = cursor.fetchall()
    return ScalarForms(padded=frozenset(n for n, t in found if t == "bpchar"),
                       money=frozenset(n for n, t in found if t == "money"),
                       times=frozenset(n for n, t in found if t == "time"))


def money(value: object) -> object:
    """'$1,234.56' or '-$1.50' (lc_monetary C) as a Decimal; anything else is left to be flagged."""
    if not isinstance(value, str):
        return value
    text = value.replace("$", "").replace(",", "")
    try:
        return Decimal(text)
    except ArithmeticError:
        return value


def from_text(value: str | None, target: pa.DataType) -> object:
    """pgoutput text to what arrowconv converts faithfully (other types parse from text there)."""
    if value is None:
        return None
    if pa.types.is_boolean(target):
        return {"t": True, "f": False}.get(value, value)
    if pa.types.is_binary(target) and value.startswith("\\x"):
        return bytes.fromhex(value[2:])
    return value

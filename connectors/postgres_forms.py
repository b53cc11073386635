"""Change capture's (变更捕获) scalar values in the forms a full read of the same table publishes.

The full and incremental reads (connectors/postgres.py) are the reference: consumers hold what they published.
The capture reads its snapshot with psycopg2 and its changes as pgoutput text, which gave other forms:

- char(n) kept its blank padding ('ab  ' where the reads give 'ab'): a row flipped form between a snapshot and a
  captured change, and a char(n) key touched by a change did not match its published key;
- interval followed the capture session's IntervalStyle (iso_8601: 'P1D', 'PT-3H'); the reads give the
  server's own style ('1 day', '-03:00:00'), so the capture session now keeps the server's default too;
- money came as locale text ('$1,234.56'), which does not parse as the decimal the reads publish (money::numeric):
  every row with a value was quarantined. The session reads it in the C locale, parsed here;
- time of day was text ('08:00:01.5') where the reads' driver gives Arrow time64[us]; then '24:00:00' became
  00:00 in a snapshot (psycopg2) and was quarantined in a change, where the driver publishes 86,400,000,000
  microseconds: both now read the text and count its microseconds;
- tstzrange's text was written in the capture's UTC session, the reads' in the source's own TimeZone: the
  capture's sessions now take that zone (asked of a session opened as the reads open theirs);
- money was read with two fraction digits whatever the source's lc_monetary says (a ja_JP count of yen
  would have been a hundredth of itself): the count is shifted to the digits the reads' session uses;
- inet and cidr had their netmask in a snapshot ('10.0.0.1/32' for '10.0.0.1': a cast to text, not the type's
  output); the snapshot reads each text column through its type's output, as the stream carries it;
- a date or timestamp outside the years 1 to 9999: psycopg2 gave infinity as 9999-12-31 (published as a true
  date) and failed the snapshot on a year BC or after 9999, and the stream's text was quarantined with a reason
  of its own; both now read the text and count it as the full read's driver does (days, microseconds), so
  connectors.time_range quarantines the row with the full read's reason and value.

The columns are told by their base type (a domain's too), never by their values. FORMS numbers this set of
rules: a resource's cdc cursor state names the forms its versions hold, and one naming other forms takes a
snapshot on its next run (pipeline/cdc.py), so no version mixes two forms of a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.arrowconv import rows_to_batch
from connectors.base import ColumnInfo
from connectors.pgarrays import ArrayColumn
from connectors.pgarrays import apply as apply_arrays
from connectors.time_range import flag_out_of_range

# 1: the forms before (unnumbered): padding kept, intervals in ISO 8601, money quarantined, time as text;
# 2: those aligned, but tstzrange written in UTC, a time of 24:00:00 as 00:00 (or quarantined), inet and cidr
# in a snapshot with their netmask ('10.0.0.1/32'), money in two fraction digits whatever lc_monetary said;
# 3: a snapshot's date or timestamp of infinity published as 9999-12-31 (-infinity as 0001-01-01)
FORMS = 4

# Settings of the capture's sessions (snapshot and stream). DateStyle only fixes the text the capture parses
# into typed values; IntervalStyle is left to the server, as the full read leaves it. TimeZone is the one the
# full read's sessions have (ScalarForms.zone): a timestamptz parses to the same instant in any zone, but a
# tstzrange is published as its text, whose bounds PostgreSQL writes in the session's zone.
SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c lc_monetary=C -c extra_float_digits=3"
TIME_OF_DAY = pa.time64("us")
# Dates and timestamps (by base type) as the full read publishes them, counted from their text (dated_count)
DATED = {"date": pa.date32(), "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC")}


@dataclass(frozen=True)
class ScalarForms:
    padded: frozenset[str] = field(default_factory=frozenset)  # char(n): padding dropped
    money: frozenset[str] = field(default_factory=frozenset)  # C-locale money text to a decimal
    times: frozenset[str] = field(default_factory=frozenset)  # time without time zone: a time of day
    dated: dict[str, pa.DataType] = field(default_factory=dict)  # date and timestamp columns: their Arrow type
    zone: str = "UTC"  # the TimeZone a full read's session has (the source's default for the user)
    money_digits: int = 2  # the fraction digits a full read's session reads money with (its lc_monetary)

    @property
    def options(self) -> str:
        """The capture's session options, in the full read's TimeZone (libpq's options escape a blank with \\)."""
        zone = self.zone.replace("\\", "\\\\").replace(" ", "\\ ")
        return SESSION_OPTIONS.replace("TimeZone=UTC", f"TimeZone={zone}")

    def columns(self, columns: list[ColumnInfo]) -> list[ColumnInfo]:
        """The catalogue's columns with the types the full read publishes (it says text for a time of day)."""
        return [replace(c, arrow_type=TIME_OF_DAY) if c.name in self.times else c for c in columns]

    def values(self, names: list[str], rows: list[tuple]) -> list[tuple]:
        """Rows as psycopg2 or pgoutput give them (a time of day, date or timestamp as its text), money made a
        decimal (before Arrow, which cannot read '$'), a time of day, date or timestamp its count of microseconds
        or days (:meth:`build_types`)."""
        convert = {i: found for i, name in enumerate(names) if (found := self._converter(name))}
        if not convert:
            return rows
        return [tuple(convert[i](v) if i in convert else v for i, v in enumerate(row)) for row in rows]

    def _converter(self, name: str) -> Callable[[object], object] | None:
        if name in self.money:
            return lambda value: money(value, self.money_digits)
        if name in self.times:
            return time_micros
        if name in self.dated:
            return partial(dated_count, kind=self.dated[name])
        return None

    def build_types(self, names: list[str], types: list[pa.DataType]) -> list[pa.DataType]:
        """The types a batch is built in before :meth:`batch`: a time of day as int64 microseconds, because
        PostgreSQL's '24:00:00' has no Python time (psycopg2 made it 00:00, the stream's text was refused)
        while the full read's driver publishes it as 86,400,000,000 microseconds; a date or timestamp as its
        count, because infinity and years BC or after 9999 have no Python date either."""
        return [pa.int64() if name in self.times else _count_type(self.dated[name]) if name in self.dated else kind
                for name, kind in zip(names, types)]

    def batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """A batch (rows or keys) with char(n)'s padding dropped, as the full read drops it, and a time of day,
        date or timestamp (built as its count) typed as the full read types it."""
        for name in batch.schema.names:
            index = batch.schema.get_field_index(name)
            if name in self.padded:
                batch = batch.set_column(index, batch.schema.field(index),
                                         pc.utf8_rtrim(batch.column(index), characters=" "))
            elif name in self.times and pa.types.is_integer(batch.schema.field(index).type):
                batch = batch.set_column(index, pa.field(name, TIME_OF_DAY), batch.column(index).cast(TIME_OF_DAY))
            elif name in self.dated and pa.types.is_integer(batch.schema.field(index).type):
                kind = self.dated[name]
                batch = batch.set_column(index, pa.field(name, kind), batch.column(index).cast(kind))
        return batch


def published_batch(names: list[str], types: list[pa.DataType], rows: list[tuple], *, forms: ScalarForms,
                    arrays: dict[str, ArrayColumn]) -> pa.RecordBatch:
    """Rows of Python values, each array and time of day as PostgreSQL's text of it, as a batch of the forms the
    full read publishes (``types``: the catalogue's): a time of 24:00:00 flagged as the full read flags it,
    arrays in connectors.pgarrays' forms. The change capture's rows and a read through a SQLAlchemy URL."""
    types = [pa.string() if name in arrays else kind for name, kind in zip(names, types)]
    batch = rows_to_batch(names, forms.build_types(names, types), forms.values(names, rows))
    return apply_arrays(flag_out_of_range(forms.batch(batch)), arrays)


def scalar_forms(cursor, schema: str, table: str) -> ScalarForms:  # noqa: ANN001 - psycopg2 cursor
    """The table's columns needing a form of their own, by their base type (a domain's base type too)."""
    cursor.execute(
        """SELECT a.attname, b.typname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
           JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped""", (schema, table))
    found = cursor.fetchall()
    # Asked on a session as the full read opens one: its zone and its money's fraction digits. Its dates are in
    # ISO, as the capture's (connectors.postgres.PostgresConnector._uri pins DateStyle for every read).
    cursor.execute("SELECT current_setting('TimeZone'), scale(0::money::numeric)")
    zone, digits = cursor.fetchone()
    return ScalarForms(padded=frozenset(n for n, t in found if t == "bpchar"),
                       money=frozenset(n for n, t in found if t == "money"),
                       times=frozenset(n for n, t in found if t == "time"),
                       dated={n: DATED[t] for n, t in found if t in DATED}, zone=zone, money_digits=int(digits))


def money(value: object, digits: int = 2) -> object:
    """'$1,234.56' or '-$1.50' (lc_monetary C) as a Decimal; anything else is left to be flagged.

    money is stored as a count of the currency's smallest unit, and lc_monetary says how many fraction digits
    that unit has: the C locale writes the count with two, the full read's session (another lc_monetary, say
    ja_JP with none) reads it with its own. The count is shifted to the full read's digits, exactly."""
    if not isinstance(value, str):
        return value
    text = value.replace("$", "").replace(",", "")
    try:
        return Decimal(text).scaleb(2 - digits)
    except ArithmeticError:
        return value


def time_micros(value: object) -> object:
    """A time of day's text ('08:00:01.5', '24:00:00') as microseconds since midnight; anything else is left
    to be flagged (a text that is no time, refused by the int64 it is built in)."""
    if not isinstance(value, str):
        return value
    hours, _, rest = value.partition(":")
    minutes, _, seconds = rest.partition(":")
    try:
        whole, _, fraction = seconds.partition(".")
        micros = ((int(hours) * 60 + int(minutes)) * 60 + int(whole)) * 1_000_000 + int((fraction + "000000")[:6])
    except ValueError:
        return value
    # 24:00:00 is counted (86,400,000,000): the batch's time check quarantines it as the full read does
    return micros if 0 <= micros <= 86_400_000_000 and len(fraction) <= 6 else value


def _count_type(kind: pa.DataType) -> pa.DataType:
    return pa.int32() if pa.types.is_date32(kind) else pa.int64()


# PostgreSQL's ISO text of a date, timestamp or timestamptz (its offset to the second: a zone's local mean time)
DATED_TEXT = re.compile(r"(\d{4,})-(\d\d)-(\d\d)(?: (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?"
                        r"(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?)?( BC)?")


def _days(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date, any year (0 is 1 BC): H. Hinnant's days_from_civil."""
    year -= month <= 2
    era = year // 400
    of_era = year - era * 400
    of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    return era * 146_097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719_468


def dated_count(value: object, *, kind: pa.DataType) -> object:
    """A date's or timestamp's ISO text ('2026-03-01', '0044-03-15 12:00:00+00 BC', 'infinity') as the count
    the full read's driver delivers (days, or microseconds since 1970 in UTC; infinity the count's largest value,
    -infinity its smallest), which connectors.time_range flags outside the years 1 to 9999 with the same text;
    anything else is left to be flagged."""
    if not isinstance(value, str):
        return value
    top = np.iinfo(np.int32 if pa.types.is_date32(kind) else np.int64)
    if value in ("infinity", "-infinity"):
        return int(top.max) if value == "infinity" else int(top.min)
    found = DATED_TEXT.fullmatch(value)
    if found is None:
        return value
    year, month, day, hours, minutes, seconds, fraction, sign, zone_h, zone_m, zone_s, bc = found.groups()
    days = _days(1 - int(year) if bc else int(year), int(month), int(day))
    if pa.types.is_date32(kind):
        return days
    offset = (int(zone_h) * 3600 + int(zone_m or 0) * 60 + int(zone_s or 0)) * (-1 if sign == "-" else 1) \
        if sign else 0
    seconds = days * 86_400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0) - offset
    return seconds * 1_000_000 + int(((fraction or "") + "000000")[:6])


def from_text(value: str | None, target: pa.DataType) -> object:
    """pgoutput text to what arrowconv converts faithfully (other types parse from text there)."""
    if value is None:
        return None
    if pa.types.is_boolean(target):
        return {"t": True, "f": False}.get(value, value)
    if pa.types.is_binary(target) and value.startswith("\\x"):
        return bytes.fromhex(value[2:])
    return value

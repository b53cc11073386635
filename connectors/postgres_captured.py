"""What change capture (变更捕获) hands the pipeline: the captured table, the changes read from its slot collapsed
by key, and both as Arrow batches in the forms the full read publishes.

Apart from the capture itself (connectors/postgres_cdc.py: the publication, the slot, the snapshot and the
change stream over the replication protocol) because none of this talks to the server: the capture fills a
Collected with collapse, and the pipeline (pipeline/cdc.py) turns it into a version's upserts, deletes and
touched keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from connectors.arrowconv import rows_to_batch
from connectors.base import ColumnInfo
from connectors.pgarrays import ArrayColumn
from connectors.pgoutput import UNCHANGED, Change, Tuple
from connectors.postgres_forms import ScalarForms, from_text, published_batch

# Column added to upsert batches: the comma-separated columns an update left unchanged (TOASTed values the
# server did not resend); the pipeline fills them from the previous version.
UNCHANGED_COLUMN = "__govshare_unchanged"
TEXT_TYPES = ("text", "character", "character varying")  # read by psycopg2 as they are


@dataclass
class CapturedTable:
    """The captured table: its columns (with Arrow types) and primary key, checked to be capturable."""

    schema: str
    name: str
    columns: list[ColumnInfo]
    primary_key: tuple[str, ...]
    arrays: dict[str, ArrayColumn] = field(default_factory=dict)  # the array columns: read from their text
    forms: ScalarForms = field(default_factory=ScalarForms)  # scalar columns read otherwise than the full read
    identity: dict = field(default_factory=dict)  # postgres_catalog.table_identity: kept with the cursor state

    def to_batch(self, rows: list[tuple]) -> pa.RecordBatch:
        """Rows of Python values (arrays as their PostgreSQL text) as a batch of the published forms."""
        return published_batch([c.name for c in self.columns], [c.arrow_type for c in self.columns], rows,
                               forms=self.forms, arrays=self.arrays)

    @property
    def snapshot_columns(self) -> str:
        """The snapshot's select list: each column as the change stream gives it, or psycopg2 does faithfully.

        Types psycopg2 would hand back as Python objects with no faithful Arrow form (json, ranges, intervals,
        ...) are read as their PostgreSQL text, the text the stream carries; so is a time of day (psycopg2 made
        '24:00:00' 00:00), a date or timestamp (it made infinity 9999-12-31 and failed on a year BC) and every
        array (psycopg2 made a text[] a Python list, published as JSON). That text is the type's output function,
        as in the stream and the full read: a cast to text is not always that (inet's adds the netmask,
        '10.0.0.1/32'), and format('%s', NULL) would be ''. Character types are read as they are (char(n)'s
        padding is dropped with the stream's: ``forms``)."""
        def text(column: ColumnInfo) -> bool:
            return any(column.name in found for found in (self.arrays, self.forms.times, self.forms.dated)) or (
                pa.types.is_string(column.arrow_type) and not column.source_type.startswith(TEXT_TYPES))
        return ", ".join(f'CASE WHEN "{c.name}" IS NULL THEN NULL ELSE format(\'%s\', "{c.name}") END' if text(c)
                         else f'"{c.name}"' for c in self.columns)

    @property
    def quoted(self) -> str:
        return f'"{self.schema}"."{self.name}"'

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self.columns])


@dataclass
class Collected:
    """Changes read from the slot, collapsed by key: the row after the last change, or None once deleted."""

    rows: dict[tuple, Tuple | None] = field(default_factory=dict)
    truncated: bool = False  # a TRUNCATE was read: nothing of the previous version carries over
    position: int | None = None  # every transaction committed before this LSN is in `rows`
    changes: int = 0
    transactions: int = 0
    skipped: int = 0  # transactions re-delivered although already published (crash before confirmation)


def collapse(collected: Collected, change: Change, key_positions: list[int]) -> None:
    """One change applied to the collected rows: a key's row after its last change, None once deleted."""
    rows = collected.rows
    if change.op == "delete":
        rows[tuple(change.old[i] for i in key_positions)] = None
        return
    new = change.new
    key = tuple(new[i] for i in key_positions)
    if change.old is not None:
        old_key = tuple(change.old[i] for i in key_positions)
        if old_key != key:  # the primary key itself changed: the old key is gone
            rows[old_key] = None
    if UNCHANGED in new and (earlier := rows.get(key)) is not None:
        new = [earlier[i] if value is UNCHANGED else value for i, value in enumerate(new)]
    rows[key] = new


# --- from collected changes to Arrow ---------------------------------------------------------------------------

def upsert_batches(table: CapturedTable, collected: Collected, *, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows inserted or updated (their last state), as record batches of the table's Arrow schema, with
    UNCHANGED_COLUMN naming the columns to take from the previous version."""
    names = [c.name for c in table.columns]
    types = [pa.string() if c.name in table.arrays else c.arrow_type for c in table.columns]
    rows = [row for row in collected.rows.values() if row is not None]
    for start in range(0, len(rows), batch_rows):
        chunk = rows[start:start + batch_rows]
        unchanged = [",".join(n for n, v in zip(names, row) if v is UNCHANGED) or None for row in chunk]
        converted = [tuple(None if v is UNCHANGED else from_text(v, t) for v, t in zip(row, types)) for row in chunk]
        batch = table.to_batch(converted)
        if any(unchanged):
            batch = batch.append_column(UNCHANGED_COLUMN, pa.array(unchanged, pa.string()))
        yield batch


def changed_keys(table: CapturedTable, collected: Collected) -> pa.RecordBatch:
    """Every key the changes touched (upserted or deleted), typed like the table's key columns."""
    types = {c.name: c.arrow_type for c in table.columns}
    key_types = [types[k] for k in table.primary_key]
    keys = [tuple(from_text(v, t) for v, t in zip(key, key_types)) for key in collected.rows]
    names = list(table.primary_key)
    keys = table.forms.values(names, keys)
    return table.forms.batch(rows_to_batch(names, table.forms.build_types(names, key_types), keys)).select(names)


def deleted_count(collected: Collected) -> int:
    return sum(1 for row in collected.rows.values() if row is None)

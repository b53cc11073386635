"""Inline, vectorised blocking checks: rows that fail are split off for quarantine with their reason."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from connectors.base import ROW_PROBLEM_COLUMN

RULE_COLUMN = "_rule"
REASON_COLUMN = "_reason"


@dataclass
class Split:
    good: pa.RecordBatch
    bad: pa.RecordBatch | None  # the failing rows, with _rule and _reason columns added


def key_array(batch: pa.RecordBatch | pa.Table, key: tuple[str, ...]) -> pa.Array:
    """One comparable array for a possibly composite key."""
    if len(key) == 1:
        column = batch.column(key[0])
        return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    parts = [pc.cast(batch.column(name), pa.string()) for name in key]
    return pc.binary_join_element_wise(*parts, "\x1f")


def _with_reason(rows: pa.RecordBatch, rule: str, reasons: pa.Array) -> pa.RecordBatch:
    rows = rows.append_column(RULE_COLUMN, pa.array([rule] * rows.num_rows, pa.string()))
    return rows.append_column(REASON_COLUMN, reasons)


def split_batch(batch: pa.RecordBatch, *, key: tuple[str, ...]) -> Split:
    """Separate rows a connector could not convert, and rows whose key is null."""
    bad_parts: list[pa.RecordBatch] = []
    if ROW_PROBLEM_COLUMN in batch.schema.names:
        flags = batch.column(ROW_PROBLEM_COLUMN)
        failing = pc.is_valid(flags)
        payload = batch.drop_columns([ROW_PROBLEM_COLUMN])
        if pc.any(failing).as_py():
            bad_parts.append(_with_reason(payload.filter(failing), "type_conversion", flags.filter(failing)))
        batch = payload.filter(pc.invert(failing))
    if key:
        null_key = pc.is_null(key_array(batch, key))
        for name in key[1:]:
            null_key = pc.or_(null_key, pc.is_null(batch.column(name)))
        if pc.any(null_key).as_py():
            rows = batch.filter(null_key)
            reason = pa.array([f"主键为空 / key column(s) {', '.join(key)} empty"] * rows.num_rows, pa.string())
            bad_parts.append(_with_reason(rows, "key_not_null", reason))
            batch = batch.filter(pc.invert(null_key))
    bad = None
    if bad_parts:
        bad = pa.Table.from_batches(bad_parts[:1]) if len(bad_parts) == 1 else pa.concat_tables(
            [pa.Table.from_batches([p]) for p in bad_parts], promote_options="permissive")
        bad = bad.combine_chunks().to_batches()[0] if bad.num_rows else None
    return Split(good=batch, bad=bad)


def duplicated_keys(keys: list[pa.Array]) -> pa.Array:
    """Keys that occur more than once across the whole run (only the key column is held in memory)."""
    if not keys:
        return pa.array([])
    counts = pc.value_counts(pa.chunked_array(keys))
    return counts.field("values").filter(pc.greater(counts.field("counts"), 1))

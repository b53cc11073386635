"""Inline, vectorised blocking checks: rows that fail are split off for quarantine with their reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.base import ROW_PROBLEM_COLUMN
from core import clock

if TYPE_CHECKING:
    from quality.contracts import Contract

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


def split_batch(batch: pa.RecordBatch, *, key: tuple[str, ...], contract: Contract | None = None) -> Split:
    """Separate rows a connector could not convert, rows whose key is null, and (with a contract) rows that
    break one of its blocking row rules; each bad row carries the first rule it broke, in contract order."""
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
    if contract is not None:
        contract.check_schema(batch.schema)
        for rule in contract.rules_of("row", blocking=True):
            if not batch.num_rows:
                break
            for issue in rule.check_batch(batch):
                reasons = issue.reasons if isinstance(issue.reasons, pa.Array) else \
                    pa.array([issue.reasons] * batch.num_rows, pa.string())
                bad_parts.append(_with_reason(batch.filter(issue.failing), issue.rule, reasons.filter(issue.failing)))
                batch = batch.filter(pc.invert(issue.failing))
    bad = None
    if bad_parts:
        bad = pa.Table.from_batches(bad_parts[:1]) if len(bad_parts) == 1 else pa.concat_tables(
            [pa.Table.from_batches([p]) for p in bad_parts], promote_options="permissive")
        bad = bad.combine_chunks().to_batches()[0] if bad.num_rows else None
    return Split(good=batch, bad=bad)


def duplicated_keys_in_files(files: list, key: tuple[str, ...], *, scratch) -> pa.Array:  # noqa: ANN001 - paths
    """Keys that occur more than once across the staged parts, in key_array's form. DuckDB groups them with a
    bounded memory budget and spills to `scratch`, so the run's memory does not grow with the table (a hash of
    5 M keys in Arrow alone costs about 1 GB)."""
    import duckdb

    if not files:
        return pa.array([])
    scratch.mkdir(parents=True, exist_ok=True)
    columns = ", ".join('"' + name.replace('"', '""') + '"' for name in key)
    connection = duckdb.connect(config={"threads": "1", "memory_limit": "160MB", "temp_directory": str(scratch),
                                        "preserve_insertion_order": "false"})
    try:
        found = connection.execute(
            f"SELECT {columns} FROM read_parquet(?) GROUP BY ALL HAVING count(*) > 1",
            [[str(f) for f in files]]).fetch_arrow_table()
    finally:
        connection.close()
    schema = pq.ParquetFile(files[0]).schema_arrow
    found = found.cast(pa.schema([schema.field(name) for name in key]))
    return key_array(found, key)


def duplicated_keys(keys: list[pa.Array]) -> pa.Array:
    """Keys that occur more than once across the whole run (only the key column is held in memory)."""
    if not keys:
        return pa.array([])
    counts = pc.value_counts(pa.chunked_array(keys))
    return counts.field("values").filter(pc.greater(counts.field("counts"), 1))


def finish_checks(staged, contract: Contract | None, *, previous_rows: int | None,  # noqa: ANN001 - StagedRun
                  batches=None) -> list:  # noqa: ANN001 - quality.checks.BatchReader | None
    """End of staging: dataset rules (freshness, row-count change) and the thresholds. A blocking failure or a
    threshold exceeded raises FatalError naming the rule and the counts, so nothing is published; findings
    of non-blocking rules are returned (and written to the run's quality.json). ``batches``: the rows the
    version will hold, when they are more than the staged files (a layer on the previous version)."""
    import json
    from pathlib import Path

    from core.errors import FatalError
    from quality.checks import DatasetContext, file_batches

    if contract is None:
        return []
    folder = Path(staged.folder)
    failures: list[str] = []
    total = staged.rows_read
    for rule_id, count in sorted(staged.quarantine_rules.items()):
        rule = contract.rule(rule_id)
        why = rule.threshold.exceeded(count, total) if rule is not None and rule.threshold else None
        if why:
            failures.append(f"规则 {rule_id} 隔离 {count} 行, 超过阈值 / rule {rule_id} quarantined {count} of {total} rows: {why}")
    if contract.threshold and (why := contract.threshold.exceeded(staged.rows_quarantined, total)):
        by_rule = ", ".join(f"{k}={v}" for k, v in sorted(staged.quarantine_rules.items()))
        failures.append(f"隔离总数超过阈值 / {staged.rows_quarantined} of {total} rows quarantined ({by_rule}): {why}")
    # A staged run's files are plain: each holds only rows of the run, whole.
    context = DatasetContext(batches=batches or file_batches([folder / f for f in staged.files]),
                             rows=staged.rows_staged,
                             run_time=clock.now(), previous_rows=previous_rows)
    findings = [issue for rule in contract.rules_of("dataset") for issue in rule.check_dataset(context)]
    failures.extend(f"规则 {i.rule}: {i.message}" for i in findings if i.blocking)
    report = {"contract": contract.name, "rows_read": total, "rows_staged": staged.rows_staged,
              "quarantine_rules": staged.quarantine_rules, "threshold_failures": failures,
              "dataset_findings": [{"rule": i.rule, "blocking": i.blocking, "message": i.message} for i in findings]}
    (folder / "quality.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    if failures:
        raise FatalError(f"资源 {staged.resource_code} 本次运行未发布 / run {staged.run_id} of {staged.resource_code} "
                         "publishes nothing; the previous version stays served:\n  - " + "\n  - ".join(failures))
    return [i for i in findings if not i.blocking]

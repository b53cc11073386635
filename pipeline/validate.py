"""Inline, vectorised blocking checks: rows that fail are split off for quarantine with their reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.base import ROW_PROBLEM_COLUMN, ROW_RAW_COLUMN
from core import clock
from pipeline.duckdb_parts import readable_parts
from pipeline.layers import Part

if TYPE_CHECKING:
    from quality.contracts import Contract

RULE_COLUMN = "_rule"
REASON_COLUMN = "_reason"


RULE_SEPARATOR = ";"  # a quarantined row lists every rule it broke in _rule ...
REASON_SEPARATOR = "\n"  # ... and their reasons, in the same order, in _reason


@dataclass
class Split:
    good: pa.RecordBatch
    bad: pa.RecordBatch | None  # the failing rows as read, with _rule and _reason columns added
    keep: pa.Array | None = None  # which rows of the batch are good (None: all), to filter what goes with them
    bad_keys: pa.Array | None = None  # the failing rows' keys as converted (none where a key is empty or unread)

    def kept(self, values: pa.Array) -> pa.Array:
        """Values aligned with the batch (e.g. its cursor column as read), for the good rows."""
        return values if self.keep is None else values.filter(self.keep)


def key_array(batch: pa.RecordBatch | pa.Table, key: tuple[str, ...]) -> pa.Array:
    """One comparable array for a possibly composite key."""
    if len(key) == 1:
        column = batch.column(key[0])
        return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    parts = [pc.cast(batch.column(name), pa.string()) for name in key]
    joined = pc.binary_join_element_wise(*parts, "\x1f")
    # a table's columns give a chunked array: one array, as for a single key (callers concatenate arrays)
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


class _Breaks:
    """Rules broken per row of one batch: every rule a row breaks is kept, in the order they were checked."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.by_row: dict[int, tuple[list[str], list[str]]] = {}

    def add(self, rule: str, rows: np.ndarray, reasons: list[str]) -> None:
        for row, reason in zip(rows.tolist(), reasons):
            rules, why = self.by_row.setdefault(row, ([], []))
            rules.append(rule)
            why.append(reason or rule)

    def mask(self) -> np.ndarray:
        failing = np.zeros(self.rows, dtype=bool)
        failing[list(self.by_row)] = True
        return failing

    def columns(self, rows: np.ndarray) -> tuple[pa.Array, pa.Array]:
        return (pa.array([RULE_SEPARATOR.join(self.by_row[r][0]) for r in rows.tolist()], pa.string()),
                pa.array([REASON_SEPARATOR.join(self.by_row[r][1]) for r in rows.tolist()], pa.string()))


def _reasons_of(issue, rows: int) -> pa.Array:  # noqa: ANN001 - quality.checks.RowIssue
    if isinstance(issue.reasons, pa.Array):
        return issue.reasons
    return pa.array([issue.reasons] * rows, pa.string())


def split_batch(batch: pa.RecordBatch, *, key: tuple[str, ...], contract: Contract | None = None,
                decided: Mapping[str, pa.DataType] | None = None) -> Split:
    """Separate the rows that may be published from those that may not, recording every rule each bad row
    breaks: values the connector (or the contract's declared type) could not read faithfully, a NULL key,
    and (with a contract) its blocking row rules. A row whose value could not be read is checked no further.
    ``decided``: the types the run's values chose for converted columns (Contract.convert)."""
    breaks = _Breaks(batch.num_rows)
    raw = batch.column(ROW_RAW_COLUMN) if ROW_RAW_COLUMN in batch.schema.names else None
    if raw is not None:
        batch = batch.drop_columns([ROW_RAW_COLUMN])
    payload = batch
    if ROW_PROBLEM_COLUMN in batch.schema.names:
        flags = batch.column(ROW_PROBLEM_COLUMN)
        payload = batch.drop_columns([ROW_PROBLEM_COLUMN])
        rows = pc.indices_nonzero(pc.is_valid(flags)).to_numpy()
        breaks.add("type_conversion", rows, flags.take(pa.array(rows)).to_pylist())
    original = payload  # quarantined rows keep the values as they were read
    if contract is not None:
        payload, problems = contract.convert(payload, decided)
        rows = np.array(sorted(set(problems) - set(breaks.by_row)), dtype=np.int64)
        breaks.add("type_conversion", rows, [problems[r] for r in rows.tolist()])
        contract.check_schema(payload.schema)
    unreadable = breaks.mask()
    checked_rows = np.flatnonzero(~unreadable)
    checked = payload.filter(pa.array(~unreadable)) if unreadable.any() else payload
    if key:
        null_key = pc.is_null(key_array(checked, key))
        for name in key[1:]:
            null_key = pc.or_(null_key, pc.is_null(checked.column(name)))
        found = pc.indices_nonzero(null_key).to_numpy()
        breaks.add("key_not_null", checked_rows[found],
                   [f"主键为空 / key column(s) {', '.join(key)} empty"] * len(found))
    if contract is not None and checked.num_rows:
        for rule in contract.rules_of("row", blocking=True):
            if rule.type == "not_null" and set(rule.columns_used()) <= set(key):
                continue  # key_not_null above says it already
            for issue in rule.check_batch(checked):
                found = pc.indices_nonzero(issue.failing).to_numpy()
                breaks.add(issue.rule, checked_rows[found],
                           _reasons_of(issue, checked.num_rows).take(pa.array(found)).to_pylist())
    if not breaks.by_row:
        return Split(good=payload, bad=None)
    failing = breaks.mask()
    keep = pa.array(~failing)
    bad_rows = np.flatnonzero(failing)
    bad = original.take(pa.array(bad_rows))
    rules, reasons = breaks.columns(bad_rows)
    bad = bad.append_column(RULE_COLUMN, rules).append_column(REASON_COLUMN, reasons)
    if raw is not None:  # the values the connector could not convert, as read (the quarantine file keeps them)
        bad = bad.append_column(ROW_RAW_COLUMN, raw.take(pa.array(bad_rows)))
    bad_keys = None
    if key:  # a key the contract could not convert is no key a published row holds: left out
        bad_keys = key_array(payload.take(pa.array(bad_rows)), key)
        bad_keys = bad_keys.filter(pc.is_valid(bad_keys))
    return Split(good=payload.filter(keep), bad=bad, keep=keep, bad_keys=bad_keys)


def rules_of(rule_column: pa.Array) -> list[list[str]]:
    """Each quarantined row's rules (its _rule value split)."""
    return [value.split(RULE_SEPARATOR) if value else [] for value in rule_column.to_pylist()]


def duplicated_keys_in_files(files: list, key: tuple[str, ...], *, scratch) -> pa.Array:  # noqa: ANN001 - paths
    """Keys that occur more than once across the staged parts, in key_array's form. DuckDB groups them with a
    bounded memory budget and spills to `scratch`, so the run's memory does not grow with the table (a hash of
    5 M keys in Arrow alone costs about 1 GB)."""
    import duckdb

    if not files:
        return pa.array([])
    scratch.mkdir(parents=True, exist_ok=True)
    readable = [p.path for p in readable_parts([Part(path=Path(f), rows=0) for f in files],
                                               scratch=scratch / "parts", columns=list(key))]  # wide decimals: text
    columns = ", ".join('"' + name.replace('"', '""') + '"' for name in key)
    connection = duckdb.connect(config={"threads": "1", "memory_limit": "160MB", "temp_directory": str(scratch),
                                        "preserve_insertion_order": "false"})
    try:
        found = connection.execute(
            f"SELECT {columns} FROM read_parquet(?) GROUP BY ALL HAVING count(*) > 1",
            [[str(f) for f in readable]]).fetch_arrow_table()
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
    # max_fraction is a share of the dataset, not of the run: the rows the version will hold plus those the
    # run quarantined. An incremental run that reads 25 rows, 3 of them bad, is judged against the whole table.
    total = staged.rows_staged + staged.rows_quarantined
    for rule_id, count in sorted(staged.quarantine_rules.items()):
        rule = contract.rule(rule_id)
        why = rule.threshold.exceeded(count, total) if rule is not None and rule.threshold else None
        if why:
            failures.append(f"规则 {rule_id} 隔离 {count} 行, 超过阈值 / rule {rule_id} quarantined {count} rows of a "
                            f"dataset of {total}: {why}")
    if contract.threshold and (why := contract.threshold.exceeded(staged.rows_quarantined, total)):
        by_rule = ", ".join(f"{k}={v}" for k, v in sorted(staged.quarantine_rules.items()))
        failures.append(f"隔离总数超过阈值 / {staged.rows_quarantined} rows quarantined ({by_rule}) of a dataset of "
                        f"{total}: {why}")
    # A staged run's files are plain: each holds only rows of the run, whole.
    context = DatasetContext(batches=batches or file_batches([folder / f for f in staged.files]),
                             rows=staged.rows_staged,
                             run_time=clock.now(), previous_rows=previous_rows)
    findings = [issue for rule in contract.rules_of("dataset") for issue in rule.check_dataset(context)]
    failures.extend(f"规则 {i.rule}: {i.message}" for i in findings if i.blocking)
    report = {"contract": contract.name, "rows_read": staged.rows_read, "dataset_rows": total,
              "rows_staged": staged.rows_staged,
              "quarantine_rules": staged.quarantine_rules, "threshold_failures": failures,
              "dataset_findings": [{"rule": i.rule, "blocking": i.blocking, "message": i.message} for i in findings]}
    (folder / "quality.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    if failures:
        raise FatalError(f"资源 {staged.resource_code} 本次运行未发布 / run {staged.run_id} of {staged.resource_code} "
                         "publishes nothing; the previous version stays served:\n  - " + "\n  - ".join(failures))
    return [i for i in findings if not i.blocking]

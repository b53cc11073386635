"""Verify a consumer's copy (副本校验): does a downloaded Parquet or CSV file hold exactly a version's rows?

The file is read batch by batch next to the version's own rows and compared column by column in lockstep
(the download streams the version's live rows in manifest order, pipeline.layers), so memory stays bounded
whatever the size.
The answer is "match" or the first difference: row count, columns, or the first row and column that differ.
A copy restricted to granted columns is compared on those columns. A consumer's copy is what its grant lets
through (rows of its row condition, personal identifiers masked): with ``agency`` the version is passed through
that consumer's access decision first (delivery.access.restrict, as every channel does), so a faithful masked
copy matches. The hub's own files are checked against the manifest's SHA-256 first, deletion vectors included
(an altered version is a FatalError, never a silent "match").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import ConfigError, FatalError, NotFound
from pipeline.manifest import file_sha256
from pipeline.layering import same_values
from pipeline.layers import Part, iter_parts, parts_schema, version_parts
from pipeline.paths import storage_root
from pipeline.text_values import from_text, needs_text
from registry.db import session_scope
from registry.exchange.models import DatasetVersion, PrunedVersion
from registry.catalog.resources import get_resource
from registry.exchange.versions import require_latest_version

WINDOW = 65_536


@dataclass
class Verdict:
    match: bool
    version: int
    rows: int
    columns: list[str]
    difference: str = ""


def _open(path: Path, schema: pa.Schema) -> tuple[str, Iterator[pa.RecordBatch], list[str]]:
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == b"PAR1":
        parquet = pq.ParquetFile(path)
        return "parquet", parquet.iter_batches(batch_size=WINDOW), parquet.schema_arrow.names
    import pyarrow.csv as pacsv

    with path.open("r", encoding="utf-8-sig") as handle:
        header = next(__import__("csv").reader([handle.readline()]))
    unknown = [c for c in header if c not in schema.names]
    if unknown:
        raise ConfigError(f"{path.name}: column(s) {', '.join(unknown)} are not in the version; is it the right resource?")
    # binary, nested and duration columns are text in a CSV (pipeline.text_values): read as text, then converted
    # back; so are decimals of more than 38 digits, which Arrow's CSV reader does not convert (its cast does)
    texts = {c: schema.field(c).type for c in header
             if needs_text(schema.field(c).type) or pa.types.is_decimal256(schema.field(c).type)}
    convert = pacsv.ConvertOptions(column_types={c: pa.string() if c in texts else schema.field(c).type
                                                 for c in header},
                                   strings_can_be_null=True, quoted_strings_can_be_null=False)
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=8 << 20), convert_options=convert)
    if not texts:
        return "csv", iter(reader), header
    return "csv", (pa.RecordBatch.from_arrays([from_text(b.column(n), texts[n]) if n in texts else b.column(n)
                                               for n in b.schema.names], names=b.schema.names) for b in reader), header


def _windows(batches: Iterator[pa.RecordBatch], size: int = WINDOW) -> Iterator[pa.Table]:
    """Re-cut a batch stream into tables of exactly `size` rows (the last one shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        while count >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size)
            rest = table.slice(size)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


def _first_difference(expected: pa.ChunkedArray, actual: pa.ChunkedArray) -> int | None:
    if expected.type != actual.type:
        try:
            actual = actual.cast(expected.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return 0
    differs = np.flatnonzero(~same_values(expected, actual))
    return int(differs[0]) if len(differs) else None


def _pick_version(session, resource, number: int | None, path: Path) -> DatasetVersion:  # noqa: ANN001
    if number is None and (named := re.search(r"_v(\d+)\.(parquet|csv)$", path.name)):
        number = int(named.group(1))  # downloads are named <resource>_v<N>.<format>
    if number is None:
        return require_latest_version(session, resource=resource)
    from sqlalchemy import select

    version = session.scalar(select(DatasetVersion).where(DatasetVersion.resource_id == resource.id,
                                                          DatasetVersion.number == number))
    if version is None:
        raise NotFound(f"{resource.code} has no version {number}; `govshare versions {resource.code}` lists them")
    if session.get(PrunedVersion, version.id) is not None:
        raise ConfigError(f"v{number} of {resource.code} was pruned by the retention rule; only its manifest is kept "
                          "(rows and file digests in `govshare versions`)")
    return version


def _check_own_files(parts: list[Part], *, resource_code: str, number: int) -> None:
    """The reference itself first: the hub's files, and the deletion vectors that say which of their rows the
    version holds, must still be the ones the manifest lists."""
    for part in parts:
        checks = [(part.path, part.entry["sha256"])]
        if part.deleted is not None:
            checks.append((part.deleted, part.entry["deleted"]["sha256"]))
        for file, expected in checks:
            if file_sha256(file) != expected:
                raise FatalError(f"the hub's file {file.relative_to(storage_root())} of {resource_code} v{number} "
                                 "does not match its manifest's SHA-256: it was altered; report it to the hub's "
                                 "operators")


def _is_own_file(parts: list[Part], path: Path) -> bool:
    """The copy is the version's file byte for byte. Only a version of one part without deletion vector is its
    file: otherwise the file holds rows the version does not, or only some of the version's rows."""
    if len(parts) != 1 or parts[0].deleted is not None:
        return False
    return file_sha256(path) == parts[0].entry["sha256"]


def _consumer_view(session, *, agency: str, resource_code: str):  # noqa: ANN001, ANN202 - AccessDecision
    """What the agency receives through file download: its live grant's columns, row condition and masks (its
    refusal, e.g. no grant or an expired one, is the answer then, audited as every refusal)."""
    from delivery.agency_access import authorize_agency

    return authorize_agency(session, agency=agency, resource_code=resource_code, channel="file",
                            actor="console:verify")


def _counted(batches: Iterator[pa.RecordBatch], seen: list[int]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        seen[0] += batch.num_rows
        yield batch


def verify_copy(*, resource_code: str, path: Path, version: int | None = None,
                agency: str | None = None) -> Verdict:
    if not path.is_file():
        raise ConfigError(f"{path} is not a file; give the path of the downloaded Parquet or CSV copy")
    with session_scope() as session:
        record = _pick_version(session, get_resource(session, code=resource_code), version, path)
        view = _consumer_view(session, agency=agency, resource_code=resource_code) if agency else None
    parts = version_parts(record)
    schema = parts_schema(parts)
    if view is not None:
        from delivery.access import restricted_schema

        schema = restricted_schema(view, schema)
    try:
        fmt, actual_batches, columns = _open(path, schema)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, StopIteration) as exc:  # not a copy at all
        return Verdict(match=False, version=record.number, rows=record.row_count, columns=[],
                       difference=f"无法读取 / {path.name} is neither a readable Parquet file nor a UTF-8 CSV "
                                  f"of v{record.number} ({' '.join(str(exc).split())[:160]})")
    verdict = Verdict(match=False, version=record.number, rows=record.row_count, columns=columns)
    _check_own_files(parts, resource_code=resource_code, number=record.number)
    if view is None and _is_own_file(parts, path):
        verdict.match = True  # byte for byte the version's own (only) file
        return verdict
    missing_in_version = [c for c in columns if c not in schema.names]
    if missing_in_version:
        whose = f"what {agency} receives of v{record.number}" if view is not None else f"v{record.number}"
        verdict.difference = f"column(s) {', '.join(missing_in_version)} are not in {whose}"
        return verdict
    if fmt == "parquet":
        wrong = [f"{c} ({schema.field(c).type} in v{record.number}, {t} in the file)"
                 for c, t in zip(columns, pq.read_schema(path).types) if t != schema.field(c).type]
        if wrong:
            verdict.difference = "column types differ: " + "; ".join(wrong)
            return verdict
    if view is None:
        source = iter_parts(parts, batch_size=WINDOW, columns=columns)
    else:
        from delivery.access import restrict

        source = (batch.select(columns) for batch in
                  restrict(view, iter_parts(parts, batch_size=WINDOW, columns=view.read_columns)))
    expected_rows = [0]
    expected = _windows(_counted(source, expected_rows))
    actual = _windows(actual_batches)
    offset = surplus = 0
    for want in expected:
        try:
            got = next(actual, None)
        except pa.ArrowInvalid as exc:  # a value that does not read as the version's column type
            verdict.difference = f"after row {offset}, the file does not read as v{record.number}'s columns: {exc}"
            return verdict
        if got is None or got.num_rows < want.num_rows:
            for _ in expected:
                pass  # counts the rows still expected
            verdict.difference = (f"the file ends after {offset + (got.num_rows if got else 0)} rows; "
                                  f"{whose_rows(record, agency)} has {expected_rows[0]}")
            return verdict
        surplus = got.num_rows - want.num_rows  # only in the last window: a copy longer than the version
        got = got.slice(0, want.num_rows)
        for name in columns:
            index = _first_difference(want.column(name), got.column(name))
            if index is not None:
                row = offset + index
                verdict.difference = (f"row {row + 1}, column {name}: {whose_rows(record, agency)} has "
                                      f"{want.column(name)[index].as_py()!r}, the file has {got.column(name)[index].as_py()!r}")
                return verdict
        offset += want.num_rows
    verdict.rows = expected_rows[0]
    extra = sum(t.num_rows for t in actual) + surplus
    if extra:
        verdict.difference = f"the file has {extra} rows more than {whose_rows(record, agency)} ({verdict.rows} rows)"
        return verdict
    verdict.match = True
    return verdict


def whose_rows(record: DatasetVersion, agency: str | None) -> str:
    return f"v{record.number} as {agency} receives it" if agency else f"v{record.number}"

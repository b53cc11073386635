"""Changes since the version a consumer holds (增量获取): the change sets of every later version, in order.

A consumer holding version N applies the rows of versions N+1 .. latest in the order given (``_version``,
then ``_change``: insert, update or delete by key). Where that is impossible (N is 0, a later version has no
change set because the resource has no key, its columns changed, or its files were pruned) the answer says
so and the consumer downloads the whole latest version instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import ConfigError
from pipeline.changes import CHANGE_COLUMN, CHANGES_FILE
from pipeline.layers import parts_schema, version_parts
from pipeline.paths import resolve
from registry.catalog.models import Resource
from registry.exchange.models import DatasetVersion, PrunedVersion
from registry.exchange.versions import require_latest_version

VERSION_COLUMN = "_version"


class FullCopyNeeded(ConfigError):
    """The change sets cannot bring the consumer's copy up to date: download the whole latest version."""

    zh_advice: ClassVar[str] = "无法增量更新，请下载完整的最新版本"


@dataclass
class ChangeRange:
    resource_code: str
    since: int
    latest: int
    versions: list[DatasetVersion] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        totals = {"inserted": 0, "updated": 0, "deleted": 0}
        for version in self.versions:
            for name in totals:
                totals[name] += int(version.manifest["changes"].get(name) or 0)
        return totals


def changes_since(session: Session, *, resource: Resource, since: int, until: int | None = None) -> ChangeRange:
    """The change sets after ``since`` up to the latest version, or to ``until`` (a notice that names an older
    version counts only what it names)."""
    latest = require_latest_version(session, resource=resource)
    last = latest.number if until is None else min(until, latest.number)
    full = (f"download the whole version instead (`GET /api/v1/resources/{resource.code}/files`, "
            f"v{latest.number})")
    if since < 1:
        raise FullCopyNeeded(f"version {since} is not one that was published; {full}")
    if since > latest.number:
        raise ConfigError(zh=f"{resource.code} 尚无第 {since} 版，最新为第 {latest.number} 版",
                          en=f"{resource.code} has no version {since} yet: the latest is v{latest.number}")
    later = list(session.scalars(select(DatasetVersion).where(
        DatasetVersion.resource_id == resource.id, DatasetVersion.number > since, DatasetVersion.number <= last)
        .order_by(DatasetVersion.number)))
    pruned = set(session.scalars(select(PrunedVersion.version_id).where(
        PrunedVersion.version_id.in_([v.id for v in later])))) if later else set()
    for version in later:
        changes = version.manifest.get("changes") or {}
        if version.id in pruned:
            raise FullCopyNeeded(f"v{version.number}'s change set was removed by the retention rule; {full}")
        if not changes.get("file"):
            raise FullCopyNeeded(f"v{version.number} has no change set ({changes.get('note') or 'none recorded'}); "
                                 f"{full}")
        if changes.get("schema_changed"):
            raise FullCopyNeeded(f"v{version.number} changed the columns ({version.manifest.get('schema_change')}); "
                                 f"{full}")
    return ChangeRange(resource_code=resource.code, since=since, latest=last, versions=later)


def changes_schema(latest: DatasetVersion) -> pa.Schema:
    schema = parts_schema(version_parts(latest))
    fields = [pa.field(f.name, f.type, nullable=True) for f in schema]
    return pa.schema([*fields, pa.field(VERSION_COLUMN, pa.int32()), pa.field(CHANGE_COLUMN, pa.string())])


def iter_changes(change_range: ChangeRange, *, schema: pa.Schema,
                 columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The change rows of every version in the range, oldest first, with their version number."""
    for version in change_range.versions:
        parquet = pq.ParquetFile(resolve(version.path) / CHANGES_FILE)
        for batch in parquet.iter_batches(batch_size=65_536, columns=columns):
            number = pa.array([version.number] * batch.num_rows, pa.int32())
            arrays = [number if f.name == VERSION_COLUMN else batch.column(f.name).cast(f.type)
                      for f in schema if f.name in batch.schema.names or f.name == VERSION_COLUMN]
            names = [f.name for f in schema if f.name in batch.schema.names or f.name == VERSION_COLUMN]
            yield pa.RecordBatch.from_arrays(arrays, names=names)

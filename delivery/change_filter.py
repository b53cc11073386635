"""Row conditions on the change feed (增量获取按行授权): a consumer whose grant has a row condition gets the
changes of *its* view, so applying every change file to its first copy gives exactly its filtered copy.

A change set lists the new row of an insert or update and the last published row of a delete. Against a row
condition C, judged on the row before (the previous version's live row) and after the change:

    insert: kept when the new row meets C          delete: kept when the old row met C
    update: both meet C -> update;  only the new row -> insert (it entered the view);
            only the old row -> delete (it left the view: key only, nothing of its new values);  neither -> none

Only updates need the row before: the keys updated in a version are looked up in the previous version, reading
just the key and condition columns (the previous version must still have its files, else: download in full).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc

from delivery.access import AccessDecision, condition_mask
from delivery.files import iter_batches
from pipeline.changes import CHANGE_COLUMN
from pipeline.changes_feed import VERSION_COLUMN, ChangeRange, FullCopyNeeded, iter_changes
from registry.sharing.grants import filter_columns
from registry.exchange.models import DatasetVersion, PrunedVersion


def _key_text(batch: pa.RecordBatch, key: list[str]) -> pa.Array:
    parts = [pc.cast(batch.column(batch.schema.get_field_index(k)), pa.string()) for k in key]
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")


def _previous(session, change_range: ChangeRange, version: DatasetVersion) -> DatasetVersion:  # noqa: ANN001
    from sqlalchemy import select

    previous = session.scalar(select(DatasetVersion).where(DatasetVersion.resource_id == version.resource_id,
                                                           DatasetVersion.number == version.number - 1))
    pruned = previous is None or session.scalar(select(PrunedVersion.version_id).where(
        PrunedVersion.version_id == previous.id)) is not None
    if pruned:
        raise FullCopyNeeded(f"v{version.number - 1} of {change_range.resource_code} was pruned, so rows entering or "
                             "leaving your row condition cannot be told: download the whole latest version")
    return previous


def _met_before(previous: DatasetVersion, rule: dict, key: list[str], updated: set[str]) -> set[str]:
    """Keys among ``updated`` whose row in the previous version met the condition."""
    if not updated:
        return set()
    wanted = pa.array(sorted(updated), pa.string())
    met: set[str] = set()
    for batch in iter_batches(previous, columns=list(dict.fromkeys([*key, *filter_columns(rule)]))):
        keys = _key_text(batch, key)
        hit = pc.and_kleene(pc.is_in(keys, value_set=wanted), pc.fill_null(condition_mask(batch, rule), False))
        met.update(keys.filter(hit).to_pylist())
    return met


def filtered_changes(session, decision: AccessDecision, change_range: ChangeRange, *,  # noqa: ANN001
                     schema: pa.Schema, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    """The change rows of the consumer's view (see the module doc); unfiltered grants get them as they are.
    The registry is read now (a streamed answer outlives the request's session); the files while iterating."""
    rule = decision.row_filter
    if not rule:
        return iter_changes(change_range, schema=schema, columns=columns)
    key = list(decision.resource.stream.get("primary_key") or [])
    if not key:
        raise FullCopyNeeded("the resource has no key, so its changes cannot be applied: download it in full")
    read = None if columns is None else list(dict.fromkeys([*columns, *key, *filter_columns(rule), CHANGE_COLUMN]))
    previous = [_previous(session, change_range, version) for version in change_range.versions]
    return _view_batches(change_range, previous, rule=rule, key=key, schema=schema, read=read)


def _view_batches(change_range: ChangeRange, previous: list[DatasetVersion], *, rule: dict, key: list[str],
                  schema: pa.Schema, read: list[str] | None) -> Iterator[pa.RecordBatch]:
    for version, before_version in zip(change_range.versions, previous):
        one = replace(change_range, versions=[version])
        updated: set[str] = set()  # first pass: only the keys and kinds, to know which rows to look up
        for batch in iter_changes(one, schema=schema, columns=[*key, CHANGE_COLUMN]):
            is_update = pc.equal(batch.column(batch.schema.get_field_index(CHANGE_COLUMN)), "update")
            updated.update(_key_text(batch, key).filter(is_update).to_pylist())
        before = _met_before(before_version, rule, key, updated)
        for batch in iter_changes(one, schema=schema, columns=read):
            yield _view_of(batch, rule, key, before)


def _view_of(batch: pa.RecordBatch, rule: dict, key: list[str], before: set[str]) -> pa.RecordBatch:
    change = batch.column(batch.schema.get_field_index(CHANGE_COLUMN))
    now = pc.fill_null(condition_mask(batch, rule), False)
    was = pc.is_in(_key_text(batch, key), value_set=pa.array(sorted(before), pa.string()))
    is_update = pc.equal(change, "update")
    entered = pc.and_(is_update, pc.and_(now, pc.invert(was)))
    left = pc.and_(is_update, pc.and_(was, pc.invert(now)))
    keep = pc.if_else(is_update, pc.or_(now, was), now)
    relabelled = pc.if_else(entered, "insert", pc.if_else(left, "delete", change))
    arrays = []
    for field, array in zip(batch.schema, batch.columns):
        if field.name == CHANGE_COLUMN:
            arrays.append(relabelled)
        elif field.name in key or field.name == VERSION_COLUMN:
            arrays.append(array)
        else:  # a row that left the view travels as its key only
            arrays.append(pc.if_else(left, pa.nulls(len(array), field.type), array))
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema).filter(keep)

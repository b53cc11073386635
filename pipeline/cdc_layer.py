"""A change-capture run's changes staged as a layer on the previous version (pipeline.layering), or compacted.

Past the compaction limits (pipeline.layering.compaction_due) a change run writes a snapshot, as an
incremental run does, but only once its layer's change set shows a change. The changes a slot delivers are
not always changes of the published rows: an UPDATE that sets the values a row has, a row inserted and
deleted again between two runs. Compacting first wrote the whole table for such a run, compared it with the
previous version, found nothing and threw it away, and every such run on that version did it again.

Whether the slot's changes can be merged at all is decided here too (snapshot_reason). A run that finds its
table missing from the publication reads a snapshot: a table rebuilt and renamed into place is in no
publication until the run puts it back, so the changes made meanwhile never reached the slot; they had been
missed, the run saying "no change" (`tests/test_cdc_column_form.py`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.changes import no_change
from pipeline.layering import compact, compaction_due, stack, version_batches
from pipeline.layers import Part, parts_schema
from pipeline.schema_drift import compare
from pipeline.staging import PartWriter, StagedRun, files_rows


def snapshot_reason(*, published: pa.Schema | None, read: pa.Schema, table: str, publication: str,
                    publication_added: bool) -> str | None:
    """Why the slot's changes cannot be merged into the published version, so the run reads a snapshot; None
    when they can. ``read``: the table's columns now; ``publication_added``: the table was not in the
    resource's publication until this run put it there."""
    if publication_added:
        return (f"表 {table} 曾不在发布 {publication} 中，重新快照 / table {table} was not in publication "
                f"{publication} (a table rebuilt and renamed into place, or the publication altered): changes "
                "made to it meanwhile never reached the slot")
    if published is None:
        return None
    if diff := compare(published, read):
        return (f"源表的列已变化，重新快照 / the source table's columns changed since the last version: "
                f"{diff.describe()}")
    return None


def stage_layer(staged: StagedRun, writer: PartWriter, *, parts: list[Part], previous_path: str,
                previous_number: int, key: tuple[str, ...], removed: pa.Array):  # noqa: ANN201 - BatchReader | None
    """The layer's files, carried rows and change set in ``staged`` (``writer``: closed, holding the upserts;
    ``removed``: every key the changes touched). Returns the rows the version will hold for the dataset rules,
    or None when it was compacted and holds just its own files."""
    folder = Path(staged.folder)
    staged.files = [f"data/{name}" for name in writer.files  # a layer of deletes alone adds no file
                    if pq.ParquetFile(folder / "data" / name).metadata.num_rows]
    layer = stack(folder=folder, delta_files=staged.files, key=key, parts=parts, previous_path=previous_path,
                  previous_number=previous_number, schema=parts_schema(parts), cursor=None, previous_mark=None,
                  removed=removed)
    staged.changes = layer.changes
    if compaction_due(parts) and not no_change(layer.changes):
        staged.rows_carried = compact(folder, layer, writer)
        writer.ensure_file(writer.schema)  # every row deleted: the version still shows its columns
        writer.close()
        staged.files = [f"data/{name}" for name in writer.files]
        staged.rows_staged = files_rows(folder, staged.files)
        return None
    staged.referenced, staged.rows_carried = layer.referenced, layer.rows_carried
    staged.rows_staged = layer.rows_carried + files_rows(folder, staged.files)
    return version_batches(folder, layer, staged.files)

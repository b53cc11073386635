"""A change-capture run's changes staged as a layer on the previous version (pipeline.layering), or compacted.

Past the compaction limits (pipeline.layering.compaction_due) a change run writes a snapshot, as an
incremental run does, but only once its layer's change set shows a change. The changes a slot delivers are
not always changes of the published rows: an UPDATE that sets the values a row has, a row inserted and
deleted again between two runs. Compacting first wrote the whole table for such a run, compared it with the
previous version, found nothing and threw it away, and every such run on that version did it again.

Whether the slot's changes can be stacked at all is decided here too, with the incremental path's conform step
(pipeline.conform). Changes read with other nullability flags than the published version's take its flags and
stack a layer; a NULL in a column published NOT NULL reads a snapshot. The same columns in another order are
not conformed as an incremental run's are: a table's columns change order only when it is rebuilt or a column
is dropped and added again, and both change rows without a change in the slot (the rebuilt rows were copied
in, the added column's values set for every row), so stacking the changes would publish stale rows. Such a run
reads a snapshot, as for a column added, dropped or retyped. So does a run that finds its table missing from
the publication (a table rebuilt and renamed into place is in none): the changes made meanwhile never reached
the slot. Before, a rebuilt table's changes were missed ("no change") and every later run failed casting the
carried rows to the table's new order (`tests/test_cdc_column_form.py`).

The table's columns are compared as the data contract publishes them (pipeline.conform.contract_form): a text
column declared date, number or timestamp is published in that type, and comparing the table's own type with it
had made every run of such a resource a snapshot. The changes are cast to it (layer_form, layer_rows), so a text
timestamp whose changes hold no value keeps the published zone. The keys the changes touched are converted the
same way (touched_keys), so a key column the contract converts meets its published rows
(`tests/test_cdc_contract.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import FatalError
from pipeline.changes import no_change
from pipeline.conform import conform, nulls_moved, published_form
from pipeline.layering import compact, compaction_due, stack, version_batches
from pipeline.layers import Part, parts_schema
from pipeline.schema_drift import SchemaMoved, compare
from pipeline.staging import PartWriter, StagedRun, files_rows
from pipeline.validate import key_array


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
    if read.names != published.names:
        return (f"列序变化，重新快照 / the columns of {table} are in another order than published "
                f"({', '.join(read.names)}, was {', '.join(published.names)}): a table rebuilt or a column dropped "
                "and added again changes rows without a change in the slot")
    return None


def touched_keys(keys: pa.RecordBatch, key: tuple[str, ...], contract) -> pa.Array:  # noqa: ANN001 - Contract | None
    """Every key the changes touched (``keys``: connectors.postgres_cdc.changed_keys) as the published rows hold
    it: a key column the contract converts (text declared integer) is converted as the rows are, so an update
    replaces its published row and a delete removes it (unconverted, they matched none)."""
    if contract is not None:
        keys = contract.convert(keys)[0]
    return key_array(keys, key)


def layer_form(published: pa.Schema | None, read: pa.Schema, *, rows: Iterable[list | None]) -> pa.Schema | None:
    """The schema a change run's rows are written in to stack a layer on the published version: the published
    one, when the changes (``rows``: values in ``read``'s column order, None for a deleted key) come in it or
    with other nullability flags (pipeline.conform). None when they cannot be stacked (types spelt otherwise,
    as string and large_string): the previous rows are carried forward instead.

    A NULL the changes put in a column published NOT NULL raises SchemaMoved, before the run is recorded: the
    snapshot that reads the table instead is the same run, under the same lease."""
    if published is None:
        return None
    form = published if read == published else published_form(published, read)
    if form is None:
        return None
    required = [(index, name) for index, name in enumerate(read.names) if not form.field(name).nullable]
    nulls = sorted({name for row in rows if row is not None for index, name in required if row[index] is None})
    if nulls:
        raise nulls_moved(nulls)
    return form


def layer_rows(batch: pa.RecordBatch, form: pa.Schema, *, resource_code: str) -> pa.RecordBatch:
    """A change run's rows in ``form`` (layer_form). The NULLs the source sent were refused before the run was
    recorded; one that only the data contract's conversion makes (blank text read as a date, a number) is met
    here, where the run can no longer become a snapshot: it stops, saying how to read the table again."""
    try:
        return conform(batch, form)
    except SchemaMoved as moved:
        raise FatalError(f"{moved}; 请重新全量读取 / read the table again: govshare sync {resource_code} --full") \
            from moved


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

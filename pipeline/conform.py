"""An incremental run's rows in the published version's column order and nullability (按已发布的列序与可空性).

A layer's delta is read part after part with the files it references (pipeline.layers), so it must have the
published schema exactly, not merely the same columns. The source does not always give it that: a table
rebuilt by a migration (CREATE TABLE ... AS, a dump restored with another column list) or a redefined view or
query lists the same columns in another order, and a reader may report a column NOT NULL where another read
of it does not. Schema drift matches columns by name (pipeline.schema_drift), so such a run neither re-read in
full nor stacked a layer: it rewrote the whole previous version (nullability) or failed casting the carried
rows to its own order (order), every run until the next full read. With the same names and types the run's
batches are put in the published form instead, and the run stacks a layer like any other; a column added,
dropped or retyped still takes the other path. A change-capture run conforms its changes the same way for
nullability flags, not for another order (pipeline.cdc_layer says why).
"""

from __future__ import annotations

import pyarrow as pa

from connectors.base import ROW_PROBLEM_COLUMN, ROW_RAW_COLUMN, payload_schema
from pipeline.schema_drift import SchemaMoved


def run_schema(batch: pa.RecordBatch, contract) -> pa.Schema:  # noqa: ANN001 - quality.contracts.Contract | None
    """The batch's columns as they will be published: without a connector's row flags, and with the text
    columns the contract declares with another type converted."""
    if contract is None:
        return payload_schema(batch.schema)
    flags = [name for name in (ROW_PROBLEM_COLUMN, ROW_RAW_COLUMN) if name in batch.schema.names]
    if flags:
        batch = batch.drop_columns(flags)
    return contract.convert(batch)[0].schema


def published_choice(name: str, types: list[pa.DataType], published: pa.Schema | None) -> pa.DataType:
    """The type a converted column takes when no value chooses among ``types`` (a text timestamp with a zone
    or without): the published version's, when the contract allows it, else the contract's first."""
    chosen = published.field(name).type if published is not None and name in published.names else None
    return chosen if chosen is not None and chosen in types else types[0]


def contract_form(published: pa.Schema | None, read: pa.Schema, contract) -> pa.Schema:  # noqa: ANN001 - Contract | None
    """The source's columns (``read``) as a run publishes them under the data contract, without looking at a
    value: each text column it declares with another type in that type, the published choice where the values
    would choose (published_choice). Change capture compares its table with the published version in this form
    (pipeline.cdc_layer); another type (the contract or the table changed) is a column change."""
    if contract is None:
        return read
    conversions = contract.conversions(read)
    return pa.schema([pa.field(f.name, published_choice(f.name, conversions[f.name], published))
                      if f.name in conversions else f for f in read])


def published_form(published: pa.Schema, read: pa.Schema) -> pa.Schema | None:
    """``published`` when ``read`` has exactly its columns with their types, only in another order or with
    other nullability flags: the schema the run's batches are conformed to. None when they are equal already
    or differ in more than that."""
    if read == published or len(read) != len(published) or len(set(read.names)) != len(read.names):
        return None
    if set(read.names) != set(published.names):
        return None
    if any(read.field(f.name).type != f.type for f in published):
        return None
    return published


def conform(batch: pa.RecordBatch, form: pa.Schema) -> pa.RecordBatch:
    """``batch`` in ``form``'s column order and nullability. A NULL in a column published NOT NULL is a change
    of the column itself, which a layer on rows published as never NULL cannot carry: SchemaMoved, the run
    reads in full (pipeline.extract)."""
    batch = batch.select(form.names)
    nulls = [f.name for f in form if not f.nullable and batch.column(f.name).null_count]
    if nulls:
        raise nulls_moved(nulls)
    return batch.cast(form)


def nulls_moved(columns: list[str]) -> SchemaMoved:
    """The reason a run meeting a NULL in ``columns`` (published NOT NULL) reads in full, said once for the
    incremental and the change-capture paths."""
    return SchemaMoved(f"列 {', '.join(columns)} 出现空值 / column(s) {', '.join(columns)} published as NOT NULL "
                       "now hold NULL")

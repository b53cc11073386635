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

The types of the text columns the data contract converts are settled here too (按契约转换的列类型). A text
timestamp's zone is chosen by its values, and a batch of NULLs holds none: the run's first value chooses
(ValueChoices), and until it comes the published version's choice stands, as change capture decides it
without values (contract_form).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from connectors.base import ROW_PROBLEM_COLUMN, ROW_RAW_COLUMN, payload_schema
from pipeline.schema_drift import SchemaMoved


def run_schema(batch: pa.RecordBatch, contract, choices: ValueChoices | None = None) -> pa.Schema:  # noqa: ANN001 - Contract | None
    """The batch's columns as they will be published: without a connector's row flags, and with the text
    columns the contract declares with another type converted (in the type ``choices`` holds for a column whose
    values in this batch do not choose one)."""
    if contract is None:
        return payload_schema(batch.schema)
    flags = [name for name in (ROW_PROBLEM_COLUMN, ROW_RAW_COLUMN) if name in batch.schema.names]
    if flags:
        batch = batch.drop_columns(flags)
    converted = contract.convert(batch)[0]
    return choices.schema(converted) if choices is not None else converted.schema


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


class TypesChosen(SchemaMoved):
    """A value chose another type for a converted column than the one its NULLs were already written in: the
    run reads the table again with ``chosen`` standing from its first batch (pipeline.extract)."""

    def __init__(self, chosen: dict[str, pa.DataType]) -> None:
        self.chosen = chosen
        names = ", ".join(f"{name} ({kind})" for name, kind in chosen.items())
        super().__init__(f"列的取值决定了类型，重新读取 / the values chose the type of {names} after NULLs were "
                         "written in another")


class ValueChoices:
    """A run's choice for each converted column whose values choose its type (a text timestamp: UTC when the
    texts carry offsets, no zone otherwise; quality.contracts.convert_text). The first VALUE the run reads
    chooses, not the first batch: a batch of NULLs converted alone says UTC, which made a run against a version
    published without a zone re-read in full (incremental) or stop as a contract column retyped (full), and
    made a first read publish texts without offsets as UTC instants. Until a value comes, the column stands in
    the published choice (published_choice, as change capture decides it). A value that chooses otherwise
    after NULLs were written in the standing type raises TypesChosen: the run reads again with the values'
    choice standing (``chosen``), so texts now carrying offsets are a schema change like any other. Change
    capture's snapshot cannot read again (its slot's snapshot is read once): it re-types the NULLs it wrote
    instead (``retype``), which is exact, as they are only NULLs.

    Once decided, the choice is the run's for every later value (``decided``, given to split_batch): a text of
    the other kind, in whichever batch, does not convert and its row is quarantined as ``type_conversion``
    with the same reason as within one batch. Later batches' texts had been converted on their own and cast to
    the first one's type, so '09:00+08:00' in a column decided without a zone was published as 01:00. What
    tells a column whose texts all switched (a schema change) from one with a few of the other kind (a
    quarantine) is the first value: it decides, even against the published version, and only later values
    that disagree with it are quarantined. An incremental run whose first value decides against the published
    version reads in full (schema drift), and that read's first value decides again."""

    def __init__(self, *, contract, read: pa.Schema, published: pa.Schema | None,  # noqa: ANN001 - Contract | None
                 chosen: dict[str, pa.DataType] | None = None) -> None:
        conversions = contract.conversions(read) if contract is not None else {}
        self._standing = {name: (chosen or {}).get(name) or published_choice(name, types, published)
                          for name, types in conversions.items() if len(types) > 1}
        self._decided = set(chosen or {}) & set(self._standing)  # chosen by values, of this read or the last
        self._nulls_written: set[str] = set()
        self._published = published

    @property
    def decided(self) -> dict[str, pa.DataType]:
        """The types values have chosen so far: every later value is read as its column's (split_batch)."""
        return {name: self._standing[name] for name in self._decided}

    @property
    def undecided(self) -> set[str]:
        """The columns whose values have chosen nothing yet."""
        return set(self._standing) - self._decided

    def departed(self) -> SchemaMoved | None:
        """Change capture's change run, which stacks on the published version: the reason to read a snapshot
        when its first value chose another type than the version holds (the texts now carry offsets, or no
        longer do). A table read finds the same through schema drift; a change run's rows were cast to the
        published type instead, so '09:00+08:00' in a column published without a zone became 01:00."""
        if self._published is None:
            return None
        moved = {name: kind for name, kind in self.decided.items()
                 if name in self._published.names and self._published.field(name).type != kind}
        if not moved:
            return None
        said = ", ".join(f"{name} ({self._published.field(name).type} -> {kind})" for name, kind in moved.items())
        return SchemaMoved(f"列的取值改变了时间类型，读取快照 / the values of {said} now choose another type than "
                           "the published version holds")

    def schema(self, converted: pa.RecordBatch) -> pa.Schema:
        """``converted``'s schema with each column whose values chose nothing yet in its standing type."""
        schema = converted.schema
        for name, kind in self._standing.items():
            index = schema.get_field_index(name)
            if index >= 0 and (name in self._decided or not _has_values(converted.column(index))):
                schema = schema.set(index, schema.field(index).with_type(kind))
        return schema

    def apply(self, converted: pa.RecordBatch,
              retype: Callable[[dict[str, pa.DataType]], object] | None = None) -> pa.RecordBatch:
        """``converted`` (rows about to be written) with the run's choices: its values choose a column's type
        when none has yet, its NULLs take the type chosen or standing. ``retype``: where a value chooses
        otherwise after NULLs were written, called with the choice to re-type the NULLs written (change
        capture's snapshot, staging.PartWriter.retype) instead of raising TypesChosen."""
        for name in self._standing:
            index = converted.schema.get_field_index(name)
            if index < 0:
                continue
            column = converted.column(index)
            if _has_values(column):
                if name not in self._decided:
                    if name in self._nulls_written and column.type != self._standing[name]:
                        if retype is None:
                            raise TypesChosen({**self.decided, name: column.type})
                        retype({name: column.type})
                    self._standing[name] = column.type
                    self._decided.add(name)
                continue  # a decided column's values were read in its type: one of the other kind is quarantined
            self._nulls_written.add(name)
            if column.type != self._standing[name]:
                converted = converted.set_column(index, converted.schema.field(index).with_type(
                    self._standing[name]), column.cast(self._standing[name]))
        return converted


def _has_values(column: pa.Array) -> bool:
    return column.null_count < len(column)


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

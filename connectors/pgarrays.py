"""PostgreSQL arrays (数组), published in one form whatever read delivered them.

Every path reads an array column as PostgreSQL's own text of it (the array type's output function, as psql
shows it: ``{1,NULL,3}``, ``{{1,2},{3,4}}``, ``[0:1]={a,b}``) and turns that text into the published value
here, with one set of rules: the full and incremental reads (the driver, asked for ``format('%s', column)``),
the change-capture snapshot (``column::text``) and its changes (pgoutput sends that same text). The driver's
own array decoding flattened a 2-D array into a 1-D list and kept char(n) padding; DuckDB's scanner failed on a
2-D value in a column declared 1-D and named the list field and the time zone its own way; the capture's
snapshot wrote JSON where its changes kept PostgreSQL's text. So no path decodes arrays its own way any more.

The form of a column depends on its declared type only, never on the rows (ARCHITECTURE.md, "Arrays"):

- an array of an element type in :data:`LIST_ELEMENTS` declared with at most one dimension (``int[]``; a column
  made by CREATE TABLE AS declares none, which counts as one) is an Arrow ``list`` of the element's type, as a
  scalar column of that type is published: char(n) without its padding, timestamptz as UTC instants. A value
  with more dimensions, or not starting at index 1, has no such form without losing its shape: its row is
  quarantined with the value as read, never flattened. So is a value with an element no consumer can read
  (``infinity``, a year BC or after 9999), as for a scalar column;
- such an array declared with two or more dimensions (``int[][]``; PostgreSQL keeps the declaration in
  ``pg_attribute.attndims`` and enforces nothing) is its canonical text: PostgreSQL's output as a session in
  UTC shows it, char(n) elements without their padding. Any value fits, whatever its dimensions or bounds;
- an array of any other element type (numeric, uuid, json, inet, interval, a composite, ...) is PostgreSQL's
  text of it, unchanged, as before: '{1.50,NULL}'.

A NULL array is NULL, an empty one ``[]`` (or ``{}`` as text).

Parts beside this module: PostgreSQL's array text, read and written (connectors/pgarray_text.py), and one
element's value from its text, with a list column's value for replay (connectors/pgarray_values.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from connectors.base import ROW_PROBLEM_COLUMN, ROW_RAW_COLUMN
from connectors.pgarray_text import map_elements, parse, render
from connectors.pgarray_values import canonical_element, element_value

# Element types (pg_type.typname) whose arrays are published as Arrow lists, with the element's Arrow type:
# the scalar column's own (connectors.postgres_catalog.PG_TO_ARROW).
LIST_ELEMENTS: dict[str, pa.DataType] = {
    "int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "float4": pa.float32(), "float8": pa.float64(),
    "bool": pa.bool_(), "date": pa.date32(), "text": pa.string(), "varchar": pa.string(), "bpchar": pa.string(),
    "bytea": pa.binary(), "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class ArrayColumn:
    """An array column as the catalogue declares it: its element type and declared number of dimensions."""

    element: str  # pg_type.typname of the element: int4, bpchar, timestamptz, numeric, ...
    dims: int = 1  # pg_attribute.attndims; 0 (undeclared, or a query's column) counts as 1

    @property
    def listed(self) -> bool:
        return self.element in LIST_ELEMENTS and self.dims <= 1

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.list_(LIST_ELEMENTS[self.element]) if self.listed else pa.string()

    @property
    def canonical(self) -> bool:
        """Published as text rewritten canonically (UTC, no padding), not as PostgreSQL's text unchanged."""
        return self.element in LIST_ELEMENTS and self.dims > 1


def array_column(typname: str, dims: int) -> ArrayColumn | None:
    """The column's array description from its type's typname ('_int4': an array of int4), None if no array."""
    return ArrayColumn(element=typname[1:], dims=max(dims, 1)) if typname.startswith("_") else None


def _problem(name: str, text: str, why: str) -> str:
    return f"{name}={text}: {why}"


def convert(name: str, texts: list[str | None], spec: ArrayColumn) -> tuple[pa.Array, dict[int, str], dict[int, str]]:
    """A column of array texts as its published form: (array, {row: problem}, {row: the value as read}).
    A row with a problem gets NULL here and is quarantined by the pipeline with the value as read."""
    if spec.element not in LIST_ELEMENTS:
        return pa.array(texts, pa.string()), {}, {}
    if spec.canonical:
        if spec.element not in ("bpchar", "timestamptz"):  # PostgreSQL's text is already the canonical one
            return pa.array(texts, pa.string()), {}, {}
        out, problems = _each(name, texts, lambda parsed: _canonical(parsed, spec.element))
        return pa.array(out, pa.string()), problems, {row: texts[row] for row in problems}
    values, problems = _each(name, texts, lambda parsed: _listed(parsed, name, spec.element))
    return pa.array(values, spec.arrow_type), problems, {row: texts[row] for row in problems}


def _each(name: str, texts: list[str | None], publish) -> tuple[list, dict[int, str]]:  # noqa: ANN001 - parsed -> value
    """Each text parsed and published; NULL stays NULL, a text that does not parse or publish is a problem."""
    out: list = []
    problems: dict[int, str] = {}
    for row, text in enumerate(texts):
        try:
            out.append(None if text is None else publish(parse(text)))
        except ValueError as exc:
            problems[row] = _problem(name, text, str(exc))
            out.append(None)
    return out, problems


def _canonical(parsed, element: str) -> str:  # noqa: ANN001 - a parsed array
    rendered = render(map_elements(parsed.values, lambda e: canonical_element(e, element)))
    return f"{parsed.bounds}={rendered}" if parsed.bounds else rendered


def _listed(parsed, name: str, element: str) -> list:  # noqa: ANN001 - a parsed array
    if parsed.dims > 1:
        raise ValueError(
            f"是 {parsed.dims} 维数组，而该列声明为一维数组，列表无法保留其形状 / is a {parsed.dims}-dimensional "
            "array in a column declared with one dimension, which a list cannot hold without losing its "
            "shape; declare the column with its dimensions (ALTER TABLE ... ALTER COLUMN "
            f"{name} TYPE its type with {parsed.dims} pairs of brackets, e.g. integer{'[]' * parsed.dims}) to "
            "publish it as its text")
    if parsed.bounds:
        raise ValueError(
            f"下标不从 1 开始，列表无法保留 / starts at index {parsed.bounds}, which a list cannot keep; store it "
            "from index 1 or declare the column with two dimensions to publish it as its text")
    items = []
    for item in parsed.values:
        try:
            items.append(None if item is None else element_value(item, element))
        except ValueError as exc:
            raise ValueError(f"数组元素 {item} / element {item!r} {exc}") from None
    return items


def listed_arrays(name: str, column: pa.Array, spec: ArrayColumn,
                  odd: pa.Array | None) -> tuple[pa.Array, dict[int, str], dict[int, str]]:
    """A list column as the driver decoded it (the full and incremental reads: far faster than parsing text),
    in the form :func:`convert` gives: char(n) unpadded. The rows whose array the driver would not decode
    exactly (connectors.postgres_types._odd: several dimensions, other bounds, infinity) are NULL there and
    their text is in ``odd``: they are converted from it, as on every other path."""
    if spec.element == "bpchar" and len(column):
        column = pa.ListArray.from_arrays(column.offsets, pc.utf8_rtrim(column.values, characters=" "),
                                          mask=column.is_null())
    if not column.type.equals(spec.arrow_type, check_metadata=True):  # the driver's element field has metadata
        column = column.cast(spec.arrow_type) if column.type != spec.arrow_type else column.view(spec.arrow_type)
    if odd is None or odd.null_count == len(odd):
        return column, {}, {}
    texts = odd.to_pylist()
    rows = [row for row, text in enumerate(texts) if text is not None]
    converted, found, values = convert(name, [texts[row] for row in rows], spec)
    merged = column.to_pylist()
    for index, row in enumerate(rows):
        merged[row] = converted[index].as_py()
    return (pa.array(merged, spec.arrow_type), {rows[i]: problem for i, problem in found.items()},
            {rows[i]: value for i, value in values.items()})


def apply(batch: pa.RecordBatch, forms: dict[str, ArrayColumn]) -> pa.RecordBatch:
    """A batch whose array columns hold their text (connectors.arrowconv.rows_to_batch of the text) with those
    columns in their published form, each row's problems added to the flags it may carry already."""
    if not forms:
        return batch
    names = batch.schema.names
    problems: dict[int, list[str]] = {}
    raw: dict[int, dict[str, str]] = {}
    columns = list(batch.columns)
    fields = list(batch.schema)
    for name, spec in forms.items():
        index = names.index(name)
        column, found, values = convert(name, columns[index].to_pylist(), spec)
        columns[index], fields[index] = column, pa.field(name, column.type, fields[index].nullable)
        for row, problem in found.items():
            problems.setdefault(row, []).append(problem)
        for row, value in values.items():
            raw.setdefault(row, {})[name] = value
    if problems:
        before = columns[names.index(ROW_PROBLEM_COLUMN)].to_pylist() if ROW_PROBLEM_COLUMN in names else None
        old_raw = columns[names.index(ROW_RAW_COLUMN)].to_pylist() if ROW_RAW_COLUMN in names else None
        flags = ["; ".join([*([before[i]] if before and before[i] else []), *problems.get(i, [])]) or None
                 for i in range(batch.num_rows)]
        merged = [{**(json.loads(old_raw[i]) if old_raw and old_raw[i] else {}), **raw.get(i, {})} or None
                  for i in range(batch.num_rows)]
        keep = [i for i, n in enumerate(names) if n not in (ROW_PROBLEM_COLUMN, ROW_RAW_COLUMN)]
        columns = [columns[i] for i in keep] + [pa.array(flags, pa.string()), pa.array(
            [None if m is None else json.dumps(m, ensure_ascii=False) for m in merged], pa.string())]
        fields = [fields[i] for i in keep] + [pa.field(ROW_PROBLEM_COLUMN, pa.string()),
                                              pa.field(ROW_RAW_COLUMN, pa.string())]
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))

"""PostgreSQL column types the ADBC driver cannot deliver as publishable values, read as text instead.

The driver converts the common types to Arrow natively. For the rest it sends PostgreSQL's binary wire
format as an opaque extension (inet, cidr, macaddr, timetz, bit, varbit, xml, tsvector, geometric and range
types, ...), which would publish bytes no consumer can read; an interval arrives as Arrow's
month_day_nano_interval, which Parquet cannot store (the sync failed); money arrives as an integer count of
cents, without its scale; uuid and json arrive as extension types while the catalogue declares text. So a
read asks the server for each column's result type first (``execute_schema``: no rows read) and selects these
columns converted by the server itself:

- money as numeric (published as a decimal, exactly);
- composite types (and arrays of them) as their text, '(上海,200000)': the driver's structures for them came
  back NULL on some reads;
- every other one as its type's own text output, as psql shows it and PostgreSQL reads it back ('10.0.0.1',
  '1 day', '10:00:00+08', '{...}' for an array of such values; NULL stays NULL). A cast to text is not always
  that output: inet's adds the netmask.

``numeric`` also arrives as an opaque extension (its text), which the connector converts to an exact decimal
itself (``connectors.postgres_adbc.faithful``).

Every array column is read as its text too, whatever its element type ('{1,NULL}', '{{1,2},{3,4}}'), and
turned into its published form by connectors.pgarrays, the one place every read path (full, incremental, the
change capture's snapshot and changes) takes arrays from: the driver's own decoding flattened a 2-D array into
a 1-D list and kept char(n)'s padding. The catalogue describes the form before any row is read (discovery,
``contract attach``: ``connectors.pgarrays.ArrayColumn.arrow_type``): ``list<string>`` for ``text[]``, text for
``integer[][]`` and ``numeric[]``.
"""

from __future__ import annotations

import pyarrow as pa

from connectors.pgarrays import ArrayColumn, array_column

_TYPE_KEY = b"POSTGRESQL:type"


def array_columns(schema: pa.Schema, dims: dict[str, int] | None = None) -> dict[str, ArrayColumn]:
    """The array columns of a schema the driver described, with the dimensions the catalogue declares for them
    (a query's columns have none: one)."""
    found = {}
    for field in schema:
        postgres_type = (field.metadata or {}).get(_TYPE_KEY, b"").decode()
        if postgres_type.startswith("_") and (pa.types.is_list(field.type)
                                              or isinstance(field.type, pa.BaseExtensionType)):
            found[field.name] = array_column(postgres_type, (dims or {}).get(field.name, 1))
    return found


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _unpublishable(kind: pa.DataType) -> bool:
    # A composite type (a struct here) came back as NULL from some reads of a process and not others (the
    # driver decodes it by the types it loaded for the server): read as its text, '(上海,200000)', it is exact.
    if isinstance(kind, pa.BaseExtensionType) or pa.types.is_interval(kind) or pa.types.is_struct(kind):
        return True
    if pa.types.is_nested(kind):
        return any(_unpublishable(kind.field(i).type) for i in range(kind.num_fields))
    return False


ARRAY_TEXT = "__govshare_array_text_"  # beside a list column: the text of the values the driver cannot decode
TIME_BOUNDS = {"date": ("'0001-01-01'::date", "'10000-01-01'::date"),
                "timestamp": ("'0001-01-01'::timestamp", "'10000-01-01'::timestamp"),
                "timestamptz": ("'0001-01-01 00:00:00+00'::timestamptz", "'10000-01-01 00:00:00+00'::timestamptz")}


def _odd(name: str, spec: ArrayColumn) -> str:
    """Rows whose array the driver's list would not give exactly: more than one dimension (it flattens them),
    an index not starting at 1 (it drops the bounds), a date or time no consumer can read (infinity)."""
    condition = f"array_ndims({name}) > 1 OR array_lower({name}, 1) <> 1"
    if spec.element in TIME_BOUNDS:
        low, high = TIME_BOUNDS[spec.element]
        condition += (f" OR EXISTS (SELECT 1 FROM unnest({name}) AS e WHERE NOT isfinite(e) OR e < {low} "
                      f"OR e >= {high})")
    return condition


def conversions(schema: pa.Schema, arrays: dict[str, ArrayColumn] | None = None) -> dict[str, str]:
    """Column -> the SQL expression that reads it publishably, for the columns that need one. ``arrays``: the
    array columns' forms (:func:`array_columns`); an array published as a list is read by the driver, with
    its rows in :func:`_odd` read as their text instead (an ARRAY_TEXT column beside it), any other array as
    its text; connectors.pgarrays makes both its published form."""
    found = {}
    arrays = arrays if arrays is not None else array_columns(schema)
    for field in schema:
        postgres_type = (field.metadata or {}).get(_TYPE_KEY, b"").decode()
        if postgres_type == "numeric":
            continue
        if field.name in arrays:
            name, spec = _quoted(field.name), arrays[field.name]
            if spec.listed:
                odd = _odd(name, spec)
                found[field.name] = f"CASE WHEN {odd} THEN NULL ELSE {name} END"
                found[ARRAY_TEXT + field.name] = f"CASE WHEN {odd} THEN format('%s', {name}) END"
            else:
                found[field.name] = f"CASE WHEN {name} IS NULL THEN NULL ELSE format('%s', {name}) END"
            continue
        if postgres_type == "money":
            found[field.name] = f"{_quoted(field.name)}::numeric"
        elif _unpublishable(field.type):  # the type's output function (a cast to text may differ: inet's)
            name = _quoted(field.name)
            found[field.name] = f"CASE WHEN {name} IS NULL THEN NULL ELSE format('%s', {name}) END"
    return found


def converted_select(select: str, schema: pa.Schema, arrays: dict[str, ArrayColumn] | None = None) -> str | None:
    """``select`` wrapped so that the columns needing it are converted by the server (None: none needs it)."""
    found = conversions(schema, arrays)
    if not found:
        return None
    columns = [f"{found[f.name]} AS {_quoted(f.name)}" if f.name in found else _quoted(f.name) for f in schema]
    columns += [f"{found[name]} AS {_quoted(name)}" for name in found if name.startswith(ARRAY_TEXT)]
    return f"SELECT {', '.join(columns)} FROM ({select}) AS govshare_read"

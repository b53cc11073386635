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
itself (``PostgresConnector._faithful``).

An array of a type the driver reads natively arrives as an Arrow list of it (``text[]`` -> ``list<string>``);
:func:`array_type` describes such a column the same way before any row is read (discovery, ``contract attach``).
"""

from __future__ import annotations

import pyarrow as pa

_TYPE_KEY = b"POSTGRESQL:type"
# Element types (format_type's spelling) whose arrays the driver delivers as Arrow lists; an array of any other
# type (numeric, uuid, json, inet, a composite, ...) is converted to its text above, '{1.50,2}'.
LIST_ELEMENTS = {"smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(), "real": pa.float32(),
                 "double precision": pa.float64(), "boolean": pa.bool_(), "date": pa.date32(), "text": pa.string(),
                 "character varying": pa.string(), "character": pa.string(), "bytea": pa.binary(),
                 "timestamp without time zone": pa.timestamp("us"),
                 "timestamp with time zone": pa.timestamp("us", tz="UTC")}


def array_type(formatted: str) -> pa.DataType | None:
    """The Arrow type a read delivers for a column of type ``formatted`` (``format_type``: 'integer[]',
    'character varying(10)[]') when it is an array; None when it is not one."""
    if not formatted.endswith("[]"):
        return None
    element = formatted[:-2].split("(")[0]
    return pa.list_(LIST_ELEMENTS[element]) if element in LIST_ELEMENTS else pa.string()


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


def conversions(schema: pa.Schema) -> dict[str, str]:
    """Column -> the SQL expression that reads it publishably, for the columns that need one."""
    found = {}
    for field in schema:
        postgres_type = (field.metadata or {}).get(_TYPE_KEY, b"").decode()
        if postgres_type == "numeric":
            continue
        if postgres_type == "money":
            found[field.name] = f"{_quoted(field.name)}::numeric"
        elif _unpublishable(field.type):  # the type's output function (a cast to text may differ: inet's)
            name = _quoted(field.name)
            found[field.name] = f"CASE WHEN {name} IS NULL THEN NULL ELSE format('%s', {name}) END"
    return found


def converted_select(select: str, schema: pa.Schema) -> str | None:
    """``select`` wrapped so that the columns needing it are converted by the server (None: none needs it)."""
    found = conversions(schema)
    if not found:
        return None
    columns = ", ".join(f"{found[f.name]} AS {_quoted(f.name)}" if f.name in found else _quoted(f.name)
                        for f in schema)
    return f"SELECT {columns} FROM ({select}) AS govshare_read"

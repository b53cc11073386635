"""PostgreSQL's text of an array (array_out's output, as psql shows it): read into nested lists of element
texts, and written back.

Apart from connectors/pgarrays.py, which decides each column's published form, because this is the syntax
alone (braces, quotes, backslashes, NULL, bounds decoration), the same whatever the element type: every read
path hands its arrays over as this text, and the list values of replay (connectors/pgarray_values.py) may be
written in it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPACE = " \t\n\r\v\f"
BOUNDS = re.compile(r"(\[-?\d+:-?\d+\])+=")  # [0:1]={a,b}: an array not starting at index 1


@dataclass
class Parsed:
    values: list  # nested lists of element texts (None for NULL), one level per dimension
    dims: int  # 0 for an empty array
    bounds: str  # the decoration before '=' when an index does not start at 1 ('[0:1]'), else ''


def parse(text: str) -> Parsed:
    """PostgreSQL's output of an array (array_out) as nested lists of element texts; ValueError if it is not one."""
    try:
        return _parse(text)
    except (IndexError, ValueError):
        raise ValueError(f"{text!r} is not an array's text (PostgreSQL's, e.g. {{1,NULL,\"a b\"}})") from None


def _parse(text: str) -> Parsed:
    bounds = ""
    start = 0
    if text.startswith("["):
        start = text.index("=") + 1
        bounds = text[:start - 1]
        if all(low == "1" for low in re.findall(r"\[(-?\d+):", bounds)):
            bounds = ""  # the default bounds, written out
    if not text.startswith("{", start) or not text.endswith("}"):
        raise ValueError(f"{text!r} is not an array's text")
    body = text[start:]
    if not any(ch in body[1:-1] for ch in '"\\{}'):  # one dimension, nothing quoted: most arrays
        inner = body[1:-1]
        if not inner:
            return Parsed([], 0, bounds)
        return Parsed([None if part.upper() == "NULL" else part for part in inner.split(",")], 1, bounds)
    stack: list[list] = []
    result: list | None = None
    depth = dims = 0
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch == "{":
            stack.append([])
            depth += 1
            dims = max(dims, depth)
            i += 1
        elif ch == "}":
            done = stack.pop()
            depth -= 1
            if stack:
                stack[-1].append(done)
            else:
                result = done
                if i != n - 1:
                    raise ValueError("text after the array's end")
            i += 1
        elif ch == ",":
            i += 1
        elif ch in _SPACE:
            i += 1
        elif ch == '"':
            i += 1
            chars = []
            while body[i] != '"':
                if body[i] == "\\":
                    i += 1
                chars.append(body[i])
                i += 1
            stack[-1].append("".join(chars))
            i += 1
        else:
            chars = []
            while body[i] not in ",}":
                if body[i] in '"{':
                    raise ValueError("a quote or brace inside an unquoted element")
                if body[i] == "\\":
                    i += 1
                chars.append(body[i])
                i += 1
            word = "".join(chars).strip(_SPACE)
            stack[-1].append(None if word.upper() == "NULL" else word)
    if result is None or stack:
        raise ValueError(f"{text!r} is not an array's text")
    return Parsed(result, dims if result else 0, bounds)


def _quoted(text: str) -> str:
    """An element as array_out writes it: quoted when empty, NULL, or holding a brace, quote, comma, backslash
    or white space."""
    if text == "" or text.upper() == "NULL" or any(ch in '{}",\\' or ch in _SPACE for ch in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def render(values: list) -> str:
    return "{" + ",".join("NULL" if v is None else render(v) if isinstance(v, list) else _quoted(v)
                          for v in values) + "}"


def map_elements(values: list, function) -> list:  # noqa: ANN001
    return [None if v is None else map_elements(v, function) if isinstance(v, list) else function(v) for v in values]

"""Why a value was refused, in Chinese (校验错误说明), from pydantic's error records.

pydantic validates the API's request bodies and queries (FastAPI) and the command line's option values
(typer); its messages are English only. :func:`reason_zh` says the same for the error types people meet (a
missing value, a wrong type, too long, a pattern, a choice), and for the rest 值无效 with pydantic's own words,
so nothing is lost; :func:`summary_zh` names every wrong field of a request with its reason. The
machine-readable record itself stays as pydantic made it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# pydantic error type -> Chinese reason; {placeholders} come from the error's ctx (and `input`).
REASONS = {
    "missing": "必须填写",
    "missing_argument": "必须填写",
    "int_parsing": "{input!r} 不是整数",
    "int_type": "应为整数",
    "int_from_float": "{input!r} 不是整数",
    "float_parsing": "{input!r} 不是数字",
    "float_type": "应为数字",
    "decimal_parsing": "{input!r} 不是数字",
    "bool_parsing": "{input!r} 不是布尔值（true/false）",
    "bool_type": "应为布尔值（true/false）",
    "string_type": "应为文本",
    "list_type": "应为列表",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "date_parsing": "{input!r} 不是有效日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "{input!r} 不是有效日期（YYYY-MM-DD）",
    "date_type": "应为日期（YYYY-MM-DD）",
    "datetime_parsing": "{input!r} 不是有效时间（ISO 8601）",
    "datetime_from_date_parsing": "{input!r} 不是有效时间（ISO 8601）",
    "datetime_type": "应为时间（ISO 8601）",
    "uuid_parsing": "{input!r} 不是有效的 UUID",
    "json_invalid": "不是有效的 JSON",
    "string_too_long": "过长：最多 {max_length} 个字符",
    "string_too_short": "过短：至少 {min_length} 个字符",
    "too_long": "过多：最多 {max_length} 项",
    "too_short": "过少：至少 {min_length} 项",
    "string_pattern_mismatch": "格式不符（应匹配 {pattern}）",
    "enum": "只能是 {expected} 之一",
    "literal_error": "只能是 {expected} 之一",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "应不小于 {ge}",
    "less_than": "应小于 {lt}",
    "less_than_equal": "应不大于 {le}",
    "extra_forbidden": "不是可接受的字段",
    "value_error": "{error}",
    "assertion_error": "{error}",
}


def _expected(text: str) -> str:
    """pydantic's "'a', 'b' or 'c'" as 'a'、'b'、'c'."""
    return "、".join(part.strip() for part in re.split(r",| or ", text) if part.strip())


def reason_zh(error: Mapping[str, Any]) -> str:
    """One pydantic error record (``ValidationError.errors()`` item) as a Chinese reason."""
    kind = str(error.get("type", ""))
    template = REASONS.get(kind)
    if template is None:
        return f"值无效（{kind}）：{error.get('msg', '')}"
    ctx = {key: value for key, value in (error.get("ctx") or {}).items()}
    if "expected" in ctx:
        ctx["expected"] = _expected(str(ctx["expected"]))
    if kind in ("value_error", "assertion_error"):  # the validator's own words, without pydantic's prefix
        ctx["error"] = re.sub(r"^(Value|Assertion) error, ", "", str(error.get("msg", ctx.get("error", ""))))
    try:
        return template.format(input=error.get("input"), **ctx)
    except (KeyError, IndexError, ValueError):
        return f"值无效（{kind}）：{error.get('msg', '')}"



PLACES = {"body": "请求体", "query": "查询参数", "path": "路径参数", "header": "请求头", "cookie": "Cookie"}


def location_zh(loc: Sequence[Any]) -> str:
    """Where in a request the value was: ('body', 'items', 0, 'name') -> 请求体 items[0].name."""
    parts = list(loc)
    where = PLACES.get(str(parts[0]), "") if parts else ""
    if where:
        parts = parts[1:]
    field = ""
    for part in parts:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return " ".join(p for p in (where, field) if p) or "请求"


def summary_zh(errors: Sequence[Mapping[str, Any]], *, names: Mapping[str, str] | None = None, most: int = 5) -> str:
    """Every wrong field and why, in one Chinese sentence: 请求体 username：应为文本；请求体 password：必须填写.
    ``names`` gives a field (the last name in its location) the label a page shows for it (用户名)."""
    said = []
    for error in errors:
        loc = list(error.get("loc") or ())
        named = [p for p in loc if isinstance(p, str) and p not in PLACES]
        where = (names or {}).get(named[-1]) if named else None
        said.append(f"{where or location_zh(loc)}：{reason_zh(error)}")
    unique = list(dict.fromkeys(said))
    more = f"（另有 {len(unique) - most} 处）" if len(unique) > most else ""
    return "；".join(unique[:most]) + more

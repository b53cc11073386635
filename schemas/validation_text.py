"""Why a value was refused, in Chinese (校验错误说明), from pydantic's error records.

pydantic validates the API's request bodies and queries (FastAPI) and the command line's option values
(typer); its messages are English only. :func:`reason_zh` says the same for the error types people meet (a
missing value, a wrong type, too long, a pattern, a choice), and an English-only fallback naming the type for
the rest, so nothing is lost. The machine-readable record itself stays as pydantic made it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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


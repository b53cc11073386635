"""The catalogue as JSON (the export, the import and the bulk API's entries): CatalogEntryData's fields with an
optional resource code; the provider columns must name the importing agency, if filled in. Problems name the entry by its position (第N条)
and the element by its Chinese label."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.errors import ConfigError
from schemas.catalog_metadata import (
    RESOURCE_CODE,
    CatalogEntryData,
    label_of,
    problems_of,
)
from schemas.catalog_tabular import MAX_ROWS, ParsedEntry, duplicates, read_text
from schemas.catalog_workbook import ENTRY_EXTRA, Problem


def parse_json_entries(raw: Any, *, sheet: str) -> tuple[list[ParsedEntry], list[Problem]]:
    """Entries as the JSON export and the bulk API spell them: CatalogEntryData's fields plus an optional code."""
    items = raw.get("entries") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise ConfigError(f"{sheet}: 应为 {{\"entries\": [...]}} / expected an object with an entries list")
    if len(items) > MAX_ROWS:
        raise ConfigError(f"{sheet}: 超过 {MAX_ROWS} 条，请分批导入 / more than {MAX_ROWS} entries")
    parsed: list[ParsedEntry] = []
    problems: list[Problem] = []
    for number, item in enumerate(items, start=1):
        result = parse_json_entry(item, sheet=sheet, number=number)
        if isinstance(result, ParsedEntry):
            parsed.append(result)
        else:
            problems.extend(result)
    return parsed, problems + duplicates(parsed)


def parse_json_entry(item: Any, *, sheet: str, number: int) -> ParsedEntry | list[Problem]:
    if not isinstance(item, dict):
        return [Problem(sheet, number, None, "每个条目应为 JSON 对象 / each entry must be an object", "条")]
    # read-only keys an API answer carries (revision, status) are ignored, so a system may post back what it read
    content = {k: v for k, v in item.items() if k not in (*ENTRY_EXTRA, "revision", "status")}
    code = item.get("code") or None
    problems = []
    if code is not None and (not isinstance(code, str) or not RESOURCE_CODE.match(code)):
        problems.append(Problem(sheet, number, label_of("code"), f"信息资源代码 {code!r} 应为 分类代码/顺序号 / code format",
                                "条"))
    try:
        data = CatalogEntryData.model_validate(content)
    except ValidationError as error:
        return problems + [Problem(sheet, number, where, message, "条") for where, message in problems_of(error)]
    if problems:
        return problems
    return ParsedEntry(str(number), code, data, item.get("provider_code"), sheet, number, unit="条",
                       provider=item.get("provider"))


def parse_json(path: Path) -> tuple[list[ParsedEntry], list[Problem]]:
    try:
        raw = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path.name} 不是有效的 JSON（第{exc.lineno}行）/ not valid JSON: {exc.msg}") from None
    except RecursionError:  # brackets nested by the hundred thousand: the decoder ran out of stack
        raise ConfigError(f"{path.name} 的 JSON 嵌套过深，不是目录文件 / JSON nested far too deeply for a catalogue "
                          '(entries hold data items, nothing deeper): export it again as {"entries": [...]}') from None
    return parse_json_entries(raw, sheet=path.name)


def json_document(rows: list[tuple[str, dict[str, Any], str, str]], *, agency: str | None = None) -> dict[str, Any]:
    return {"format": "govshare-catalog", "version": 1, "agency": agency,
            "entries": [{"code": code, "provider": provider, "provider_code": provider_code, **content}
                        for code, content, provider, provider_code in rows]}

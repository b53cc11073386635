"""The catalogue's core metadata (目录核心元数据) as data, and the validated shape of one catalogue entry.

`schemas/catalog/metadata.yaml` lists the elements, their Chinese labels and code lists; this module loads it
and defines `CatalogEntryData` / `DataItem`, the one validated form an entry takes whichever way it was
compiled (article 9: online, offline workbook, system docking). Cross-field rules (article 8: not shared needs
its legal basis; conditional needs its conditions; open to the public needs its conditions) are checked here,
so every path refuses the same entries with the same messages. Each problem names the element by its Chinese
label, so a workbook import can report it against the cell.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from schemas.presentation import code_of, labels

METADATA_FILE = Path(__file__).with_name("catalog") / "metadata.yaml"
# Classification code: class (1 digit) + item (2) + sub-item (3) + optional detail digits (类/项/目/细目).
CLASSIFICATION = re.compile(r"^[1-9]\d{2}(\d{3}(\d{1,6})?)?$")
RESOURCE_CODE = re.compile(r"^[1-9]\d{2}(\d{3}(\d{1,6})?)?/\d{4,}$")
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@cache
def metadata() -> dict[str, Any]:
    return yaml.safe_load(METADATA_FILE.read_text(encoding="utf-8"))


def code_list(name: str) -> dict[str, str]:
    """A code list: {code: Chinese label}, e.g. code_list("sharing_types"), from the one label table."""
    return labels(name)


def label_of(field: str, *, data_item: bool = False) -> str:
    key = "data_item_elements" if data_item else "elements"
    return next((e["label"] for e in metadata()[key] if e["field"] == field), field)


def _coded(value: str, list_name: str, field: str, *, data_item: bool = False) -> str:
    # A workbook or a person may give the code, the Chinese label or its short form before the brackets.
    if (code := code_of(list_name, value)) is not None:
        return code
    codes = code_list(list_name)
    raise ValueError(f"{label_of(field, data_item=data_item)} 的取值 {value!r} 无效，可选：{'、'.join(codes.values())}"
                     f" / {field} must be one of {', '.join(codes)}")


class DataItem(BaseModel):
    """信息项: one data item of a resource, optionally mapped to a source column and a data element (数据元)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=200)
    column: str | None = None
    data_type: str
    length: int | None = Field(default=None, ge=1)
    subject_id: str | None = None  # uscc / idcard / orgcode: the item identifies a subject (article 12)
    personal: str | None = None  # a natural person's ID number, name, phone or address: masked unless granted
    element_code: str | None = None  # 数据元代码 (one data, one source, article 11)
    description: str = ""

    @field_validator("data_type")
    @classmethod
    def _data_type(cls, value: str) -> str:
        return _coded(value, "data_types", "data_type", data_item=True)

    @field_validator("subject_id")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        return _coded(value, "subject_ids", "subject_id", data_item=True) if value else None

    @field_validator("personal")
    @classmethod
    def _personal(cls, value: str | None) -> str | None:
        return _coded(value, "personal_kinds", "personal", data_item=True) if value else None

    @model_serializer(mode="wrap")
    def _without_empty_personal(self, handler):  # noqa: ANN001, ANN202 - pydantic's wrap serializer
        # Revisions stored before the mark existed keep their canonical JSON (and digest): no mark, no key.
        dumped = handler(self)
        if isinstance(dumped, dict) and dumped.get("personal") is None:
            dumped.pop("personal", None)
        return dumped

    @property
    def is_personal(self) -> bool:
        """Personal identifier (个人信息): masked on every channel unless the provider's decision lifts it."""
        return self.subject_id == "idcard" or self.personal is not None

    @field_validator("column")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        if value and not COLUMN_NAME.match(value):
            raise ValueError(f"字段名 {value!r} 只能包含字母、数字和下划线 / column must be an identifier")
        return value or None


class CatalogEntryData(BaseModel):
    """The content of one catalogue entry revision: the 13 core elements (provider comes from the agency)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    classification: str
    name: str = Field(min_length=1, max_length=200)
    abstract: str = Field(min_length=1)
    format: str = "database"
    data_items: list[DataItem] = Field(min_length=1)
    sharing_type: str
    sharing_condition: str = ""
    sharing_modes: list[str] = Field(default_factory=list)
    open_to_public: bool = False
    open_condition: str = ""
    update_cycle: str = "daily"
    release_date: date | None = None
    related_codes: list[str] = Field(default_factory=list)

    @field_validator("classification")
    @classmethod
    def _classification(cls, value: str) -> str:
        if not CLASSIFICATION.match(value):
            raise ValueError(f"信息资源分类 {value!r} 应为 类(1位)+项(2位)[+目(3位)[+细目]] 的数字代码，如 101001"
                             " / classification must be class(1)+item(2)[+sub-item(3)[+detail]] digits")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        return _coded(value, "formats", "format")

    @field_validator("sharing_type")
    @classmethod
    def _sharing_type(cls, value: str) -> str:
        return _coded(value, "sharing_types", "sharing_type")

    @field_validator("update_cycle")
    @classmethod
    def _cycle(cls, value: str) -> str:
        return _coded(value, "update_cycles", "update_cycle")

    @field_validator("sharing_modes")
    @classmethod
    def _modes(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_coded(v, "sharing_modes", "sharing_modes") for v in value))

    @field_validator("related_codes")
    @classmethod
    def _related(cls, value: list[str]) -> list[str]:
        for code in value:
            if not RESOURCE_CODE.match(code):
                raise ValueError(f"关联资源代码 {code!r} 应为 分类代码/顺序号，如 101001/0001 / related code format")
        return value

    @model_validator(mode="after")
    def _article_8(self) -> CatalogEntryData:
        if self.sharing_type == "not_shared" and not self.sharing_condition:
            raise ValueError("不予共享的资源必须填写共享条件中的法律法规、规章政策或其他依据（第八条）"
                             " / a not-shared resource needs its legal basis in sharing_condition (article 8)")
        if self.sharing_type == "conditional" and not self.sharing_condition:
            raise ValueError("有条件共享的资源必须填写共享条件 / a conditional resource needs its sharing conditions")
        if self.sharing_type != "not_shared" and not self.sharing_modes:
            raise ValueError("可共享的资源必须选择至少一种共享方式 / a shared resource needs at least one sharing mode")
        if self.sharing_type == "not_shared" and self.open_to_public:
            raise ValueError("不予共享的资源不能向社会开放 / a not-shared resource cannot be open to the public")
        if self.open_to_public and not self.open_condition:
            raise ValueError("向社会开放的资源必须填写开放条件 / a resource open to the public needs its open conditions")
        names = [item.name for item in self.data_items]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"信息项名称重复：{'、'.join(duplicates)} / duplicate data item names")
        return self


def problems_of(error: ValidationError) -> list[tuple[str, str]]:
    """(element label, message) for each problem of a ValidationError, Chinese first, for reports and cells."""
    out = []
    for problem in error.errors():
        loc = [str(p) for p in problem["loc"]]
        if loc and loc[0] == "data_items" and len(loc) >= 3:
            where = f"信息项第{int(loc[1]) + 1}项·{label_of(loc[2], data_item=True)}"
        elif loc:
            where = label_of(loc[0])
        else:
            where = "目录条目"
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["type"] == "missing":
            message = "必填 / required"
        out.append((where, message))
    return out

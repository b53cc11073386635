"""Public shapes of the API's answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class ResourcePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    abstract: str
    provider: str
    provider_code: str
    sharing_type: str
    sharing_modes: list[str]
    update_cycle: str
    latest_version: int | None


class VersionPublic(BaseModel):
    number: int
    created_at: datetime
    row_count: int
    quarantined_count: int
    manifest_sha256: str
    watermark: dict
    schema_fields: list[dict]


class Problem(BaseModel):
    detail: str
    detail_zh: str | None = None

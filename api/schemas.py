"""Public shapes of the API's answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


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
    catalog_status: str = "registered"  # registered (resource add) or published (catalogue review)


class VersionPublic(BaseModel):
    """A version as the reader may see it (null: withheld because the grant restricts it)."""

    number: int
    created_at: datetime
    row_count: int | None
    quarantined_count: int | None
    manifest_sha256: str | None
    watermark: dict
    schema_fields: list[dict]


class Problem(BaseModel):
    detail: str
    detail_zh: str | None = None


class LookupPublic(BaseModel):
    """Records found by key (接口交换): only granted data items, masked where the grant says so."""

    version: int
    manifest_sha256: str
    records: list[dict]


class PagePublic(LookupPublic):
    next_cursor: str | None = None


class SignedLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # names nobody: the link is the caller's, for its agency
    format: str = Field(default="parquet", description="parquet, csv or xlsx")
    version: int | None = Field(default=None, description="a given version; default the latest")
    since: int | None = Field(default=None, description="only the changes after this version")
    expires_in: int | None = Field(default=None, ge=1, le=7 * 86400, description="seconds; default an hour")


class SignedLinkPublic(BaseModel):
    url: str
    expires_at: datetime
    version: int
    format: str

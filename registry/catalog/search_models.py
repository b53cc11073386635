"""Tables of the catalogue search (article 15): the search index of the published catalogue and the registered interface
services (接口服务) of entries shared through the interface mode.

Both are projections of the published revisions (registry/catalog/entries.py) kept in step by
registry/catalog/search.py `refresh_published`; imported by registry/models.py; migration
registry/migrations/versions/0012_catalog_search.py (label "catalog_search").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from registry.catalog.models import Resource
from registry.orm import Base
from registry.people.models import Agency

__all__ = ["CatalogSearchEntry", "InterfaceService"]


class CatalogSearchEntry(Base):
    """One published entry as search reads it: plain text columns, so LIKE finds Chinese words on any database
    (the revision JSON may store them \\u-escaped)."""

    __tablename__ = "catalog_search_index"
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), primary_key=True)
    revision_id: Mapped[int] = mapped_column(Integer, doc="the published revision indexed")
    code: Mapped[str] = mapped_column(String(60), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    classification: Mapped[str] = mapped_column(String(30), index=True)
    sharing_type: Mapped[str] = mapped_column(String(20))
    sharing_modes: Mapped[str] = mapped_column(String(100), doc="space-delimited, e.g. ' interface file '")
    name: Mapped[str] = mapped_column(String(200))
    search_text: Mapped[str] = mapped_column(Text, doc="lower-cased name, abstract and data item names")
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)
    resource: Mapped[Resource] = relationship()
    agency: Mapped[Agency] = relationship()


class InterfaceService(Base):
    """接口服务 (article 15): an entry offered through the interface mode, with its description and invocation
    method (an OpenAPI 3 document generated from its published data items)."""

    __tablename__ = "interface_services"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"), unique=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    revision_id: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(200), doc="base path of the service's operations")
    description: Mapped[str] = mapped_column(Text)
    invocation: Mapped[str] = mapped_column(Text, doc="调用方法: how a consumer system calls it")
    openapi: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="active", doc="active or withdrawn")
    registered_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)
    resource: Mapped[Resource] = relationship()

"""Registry tables. Every change to this file needs an Alembic migration in registry/migrations/versions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from registry.catalog.models import Resource
from registry.orm import Base
from registry.people.models import Agency


class Subscription(Base):
    """A consumer agency's subscription to a resource (获取方); unconditional resources grant at once."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("resource_id", "agency_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    status: Mapped[str] = mapped_column(String(20), default="active")
    purpose: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    resource: Mapped[Resource] = relationship()
    agency: Mapped[Agency] = relationship()


from registry.audit.models import *  # noqa: E402,F401,F403
from registry.catalog.models import *  # noqa: E402,F401,F403
from registry.catalog.search_models import *  # noqa: E402,F401,F403
from registry.exchange.delivery_models import *  # noqa: E402,F401,F403
from registry.exchange.models import *  # noqa: E402,F401,F403
from registry.exchange.notice_models import *  # noqa: E402,F401,F403
from registry.quality.models import *  # noqa: E402,F401,F403
from registry.people.models import *  # noqa: E402,F401,F403
from registry.sharing_models import *  # noqa: E402,F401,F403
from registry.supervision_models import *  # noqa: E402,F401,F403

"""Tables of supervision (articles 22, 23): evaluation runs, violations with their evidence, rectification orders.

registry/models.py imports them for Alembic; their migration is
registry/migrations/versions/0018_supervision.py (a branch of its own, label "supervision").
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from registry.catalog.models import Resource
from registry.orm import Base
from registry.people.models import Agency
from schemas.presentation import labels

__all__ = [
    "ORDER_STATUSES",
    "VIOLATION_CASES",
    "VIOLATION_KINDS",
    "VIOLATION_STATUSES",
    "EvaluationRun",
    "RectificationOrder",
    "Violation",
]

# Article 23's cases (七: other violations are left to the leading group's judgement, not detected here).
VIOLATION_CASES = {
    1: "未按规定提供资源目录和政务数据资源共享",
    2: "随意采集、扩大采集范围、重复采集",
    3: "资源目录和数据不真实、不准确、不全面或未按时限发布更新",
    4: "共享数据资源管理失控（滥用、非授权使用、扩散、泄漏）",
    5: "超出履职需要使用、擅自转让或经营性使用共享数据",
    6: "拒不整改监督检查机关责令整改的问题",
}
# What found a violation, each with its one Chinese label (schemas/labels.yaml violation_kinds): every detector's
# kind (violations_provider.py, violations_use.py), rectification.py's refusal and the commission's inspection.
VIOLATION_KINDS = labels("violation_kinds")
# open: found and not yet put right; resolved: the condition no longer holds (detected again and gone) or the
# rectification order was fixed; closed: it stood and can no longer be put right (an application withdrawn after
# its due day passed unanswered), still counted; dismissed: the supervisor judged it not a violation (with a reason).
VIOLATION_STATUSES = tuple(labels("violation_statuses"))
# open: waiting for the agency; fixed: reported fixed (fixed_on says when); overdue: not fixed by the deadline.
ORDER_STATUSES = tuple(labels("order_statuses"))


class EvaluationRun(Base):
    """One evaluation (评估) of every agency for a period, with the weights used: the periodic notice's facts."""

    __tablename__ = "evaluation_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(10), index=True, doc="2026, 2026Q4 or 2026-11")
    as_of: Mapped[date] = mapped_column(Date)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    weights: Mapped[dict[str, Any]] = mapped_column()
    results: Mapped[dict[str, Any]] = mapped_column(doc="{agencies: [{code, name, metrics, score, rank}, ...]}")
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class Violation(Base):
    """A violation of article 23 with the records that show it (evidence: table names and ids)."""

    __tablename__ = "violations"
    id: Mapped[int] = mapped_column(primary_key=True)
    case: Mapped[int] = mapped_column(Integer, index=True, doc="article 23 case number, 1-6")
    kind: Mapped[str] = mapped_column(String(40), doc="which rule found it, e.g. late_update")
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    resource_id: Mapped[int | None] = mapped_column(ForeignKey("resources.id"))
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True, doc="kind + what it is about: found once")
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    origin: Mapped[str] = mapped_column(String(20), default="detected", doc="detected, inspection or rectification")
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    detected_on: Mapped[date] = mapped_column(Date)
    last_seen_on: Mapped[date] = mapped_column(Date)
    resolved_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    agency: Mapped[Agency] = relationship()
    resource: Mapped[Resource | None] = relationship()


class RectificationOrder(Base):
    """责令限期改正: an order against a violation with a deadline in working days; missed -> case 6."""

    __tablename__ = "rectification_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    violation_id: Mapped[int] = mapped_column(ForeignKey("violations.id"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    requirement: Mapped[str] = mapped_column(Text)
    issued_on: Mapped[date] = mapped_column(Date)
    working_days: Mapped[int] = mapped_column(Integer)
    due_on: Mapped[date | None] = mapped_column(Date, doc="deadline; None while its year's schedule is missing")
    due_problem: Mapped[str | None] = mapped_column(Text, doc="why due_on is unknown (the missing schedule)")
    issued_by: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    fixed_on: Mapped[date | None] = mapped_column(Date)
    fixed_by: Mapped[str | None] = mapped_column(String(100))
    fix_note: Mapped[str] = mapped_column(Text, default="")
    refusal_violation_id: Mapped[int | None] = mapped_column(ForeignKey("violations.id"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    violation: Mapped[Violation] = relationship(foreign_keys=[violation_id])
    agency: Mapped[Agency] = relationship()

"""Evaluation of every agency's catalogue, sharing and updates for a period (评估考核, article 22).

Computed from what the platform already records, never from self-reports:

- catalogue (registry/catalog*): entries registered by the period's end, the revision published as of its end
  (published_at), its elements (sharing type, release date, data items); reconfirmations (全面维护);
- clocks: update obligations (registry/catalog/obligations.py, 2 working days), applications
  (registry/sharing/applications.py, 10 working days; one withdrawn unanswered after its due day counts as late,
  registry/sharing/withdrawal.py), rectification orders (registry/supervision/rectification.py);
- runs: sync runs' rows read / published (quarantined rows failed the quality rules); SFTP deliveries and
  update notices delivered or failed;
- one data, one source: registry/catalog/elements.py `check_duplicate_collection` on the published data items.

Each metric is a share in [0, 1] with its numerator and denominator, defined once with its formula in
schemas/evaluation_config.py (METRIC_FORMULAS, printed in the report's notes); a metric with nothing to measure
is None and left out of the score, whose weights come from schemas/supervision/evaluation.yaml (SCORE_FORMULA).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import clock
from registry.audit.log import record_event
from registry.audit.models import AuditEvent
from registry.catalog.elements import check_duplicate_collection
from registry.catalog.models import CatalogRevision, Reconfirmation, Resource, UpdateObligation
from registry.exchange.delivery_models import Delivery
from registry.exchange.models import SyncRun
from registry.exchange.notice_models import Notice
from registry.people.models import Agency
from registry.sharing.models import Application
from registry.sharing.withdrawal import withdrawn_on
from registry.supervision.models import EvaluationRun, RectificationOrder, Violation
from registry.supervision.periods import Period, parse_period, trailing
from schemas.evaluation_config import METRICS, EvaluationConfig, load_config

__all__ = [
    "AgencyStanding",
    "Evaluation",
    "evaluate",
    "latest_run",
    "published_as_of",
    "run_evaluation",
    "trend",
    "weighted_score",
]

SHARED_TYPES = ("unconditional", "conditional")
CLOCKS = {"update": "目录更新（2个工作日）", "application": "申请答复（10个工作日）",
          "reconfirmation": "年度全面维护", "rectification": "限期整改"}


@dataclass
class Ratio:
    """numerator (kept) of denominator (total): every metric is one, so it lies in [0, 1] or is None."""

    kept: int
    total: int

    def __post_init__(self) -> None:
        if not 0 <= self.kept <= self.total:  # a metric counted outside its denominator is a bug, never shown
            raise ValueError(f"a metric's numerator {self.kept} is not part of its denominator {self.total}")

    @property
    def value(self) -> float | None:
        return self.kept / self.total if self.total else None


@dataclass
class AgencyStanding:
    code: str
    name: str
    metrics: dict[str, float | None]
    counts: dict[str, list[int]]  # metric -> [numerator, denominator]
    clocks: dict[str, dict[str, int]]  # clock -> {kept, missed}
    score: float | None = None
    rank: int | None = None
    open_violations: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evaluation:
    period: str
    as_of: date
    weights: dict[str, float]
    agencies: list[AgencyStanding] = field(default_factory=list)

    def standing(self, code: str) -> AgencyStanding | None:
        return next((a for a in self.agencies if a.code == code), None)


def weighted_score(metrics: dict[str, float | None], weights: dict[str, float]) -> float | None:
    """100 x the weighted mean of the metrics that apply; None when none does (or all their weights are 0)."""
    applicable = {m: v for m, v in metrics.items() if v is not None and weights.get(m, 0) > 0}
    total = sum(weights[m] for m in applicable)
    if not total:
        return None
    raw = 100 * sum(weights[m] * v for m, v in applicable.items()) / total
    # to two decimals, but short of full marks never 100.00 (a tie with an agency that kept everything), nor
    # above nothing 0.00: the share's rule (schemas/presentation.py shown_share)
    return max(0.01, round(raw, 2)) if 0 < raw < 50 else min(99.99, round(raw, 2)) if 50 <= raw < 100 else round(raw, 2)


def published_as_of(session: Session, *, resource: Resource, moment: datetime) -> CatalogRevision | None:
    """The revision consumers saw at `moment`: the last one published before it (later ones may supersede it),
    unless the entry was withdrawn (撤销发布) after that publication and before `moment`: a withdrawn entry is
    not in the catalogue, so it counts as neither published nor shared."""
    revision = session.scalars(select(CatalogRevision).where(
        CatalogRevision.resource_id == resource.id, CatalogRevision.published_at.is_not(None),
        CatalogRevision.published_at < clock.as_utc(moment)).order_by(CatalogRevision.published_at.desc(),
                                                                CatalogRevision.number.desc())).first()
    if revision is None:
        return None
    withdrawn = session.scalar(select(func.max(AuditEvent.at)).where(
        AuditEvent.action == "catalog.withdraw", AuditEvent.resource_code == resource.code,
        AuditEvent.at < clock.as_utc(moment)))
    if withdrawn is not None and clock.as_utc(withdrawn) >= clock.as_utc(revision.published_at):
        return None
    return revision


def _complete(content: dict[str, Any]) -> bool:
    items = content.get("data_items") or []
    return bool(content.get("release_date")) and bool(items) and all(
        i.get("column") and (i.get("description") or "").strip() for i in items)


def _maintenance(session: Session, resource: Resource, revision: CatalogRevision, year: int, last: date,
                 today: date) -> bool | None:
    """The yearly full maintenance (全面维护) of a published entry, due by 31 December: True when done in `year` by
    `last`, False when late (that year is over by `today`, or the entry already went a whole earlier year without
    it), None while still due (not yet counted, like any clock before its due day)."""
    confirmed = session.scalar(select(func.max(Reconfirmation.confirmed_on)).where(
        Reconfirmation.resource_id == resource.id, Reconfirmation.confirmed_on <= last))
    if confirmed is not None and confirmed.year == year:
        return True
    since = confirmed or clock.beijing_day(revision.published_at)
    return False if today > date(year, 12, 31) or since.year < year - 1 else None


def _catalogue(session: Session, agency: Agency, period: Period, as_of: date, today: date) -> dict[str, Ratio]:
    resources = list(session.scalars(select(Resource).where(
        Resource.agency_id == agency.id, Resource.created_at < clock.as_utc(period.end_at)).order_by(Resource.id)))
    published = [(r, rev) for r in resources if (rev := published_as_of(session, resource=r, moment=period.end_at))]
    last = min(period.end, as_of)
    maintenance = [_maintenance(session, r, rev, period.end.year, last, today) for r, rev in published]
    duplicated = 0
    for resource, revision in published:
        codes = [i["element_code"] for i in revision.content.get("data_items", []) if i.get("element_code")]
        if codes and any(f.kind == "duplicate_collection" for f in check_duplicate_collection(
                session, agency_code=agency.code, element_codes=codes)):
            duplicated += 1
    n = len(published)
    return {
        "catalogue_coverage": Ratio(n, len(resources)),
        "catalogue_completeness": Ratio(sum(_complete(rev.content) for _, rev in published), n),
        "sharing_openness": Ratio(sum(rev.content.get("sharing_type") in SHARED_TYPES for _, rev in published), n),
        "duplicate_collection": Ratio(n - duplicated, n),
        "reconfirmation": Ratio(maintenance.count(True), maintenance.count(True) + maintenance.count(False)),
    }


def _clock(pairs: list[tuple[date, date | None]], as_of: date, today: date) -> Ratio:
    """(due day, day done or None): counted once done by `as_of` (the period's last day at most) or once the due
    day has passed by `today` (the day the figures are read); kept when done by the due day. A due day on the
    period's last day has passed once the period is over: capping that test at the period's end too counted
    such a clock in no period at all (更新及时率 100 % with an update never made)."""
    counted = [(due, done if done is not None and done <= as_of else None) for due, done in pairs]
    counted = [(due, done) for due, done in counted if done is not None or due < today]
    return Ratio(sum(1 for due, done in counted if done is not None and done <= due), len(counted))


def _clocks(session: Session, agency: Agency, period: Period, as_of: date, today: date) -> dict[str, Ratio]:
    obligations = session.execute(select(UpdateObligation.due_on, UpdateObligation.closed_on).join(Resource).where(
        Resource.agency_id == agency.id, UpdateObligation.due_on >= period.start, UpdateObligation.due_on <= period.end))
    applications = session.execute(select(Application.due_on, Application.decided_at, Application.status,
                                          Application.number)
                                   .join(Resource, Resource.id == Application.resource_id).where(
        Resource.agency_id == agency.id, Application.due_on >= period.start, Application.due_on <= period.end)).all()
    # Withdrawn unanswered: late if its due day had passed by the withdrawal (the provider's silence is not undone
    # by the consumer giving up), not counted if withdrawn by its due day or when no withdrawal day is recorded.
    withdrawn = withdrawn_on(session, numbers=[n for _, at, status, n in applications
                                               if status == "withdrawn" and at is None])
    decided = [(due, clock.beijing_day(at) if at else None) for due, at, status, number in applications
               if not (status == "withdrawn" and at is None) or withdrawn.get(number, due) > due]
    orders = session.execute(select(RectificationOrder.due_on, RectificationOrder.fixed_on).where(
        RectificationOrder.agency_id == agency.id, RectificationOrder.due_on >= period.start,
        RectificationOrder.due_on <= period.end))
    return {"update_timeliness": _clock([tuple(row) for row in obligations], as_of, today),
            "application_timeliness": _clock(decided, as_of, today),
            "rectification": _clock([tuple(row) for row in orders], as_of, today)}


def _runs(session: Session, agency: Agency, period: Period) -> dict[str, Ratio]:
    window = (clock.as_utc(period.start_at), clock.as_utc(period.end_at))
    read = passed = 0
    # Rows of the runs' own reads (not the versions' sizes): a run that found no change read rows too.
    for rows_read, rows_quarantined in session.execute(select(SyncRun.rows_read, SyncRun.rows_quarantined).join(
            Resource, Resource.id == SyncRun.resource_id).where(
            Resource.agency_id == agency.id, SyncRun.status.in_(("published", "unchanged")), SyncRun.mode != "replay",
            SyncRun.finished_at >= window[0], SyncRun.finished_at < window[1])):
        read += rows_read or 0
        passed += (rows_read or 0) - min(rows_quarantined or 0, rows_read or 0)
    outcomes: list[str] = []
    for model in (Delivery, Notice):
        outcomes += session.scalars(select(model.status).join(Resource, Resource.id == model.resource_id).where(
            Resource.agency_id == agency.id, model.status.in_(("delivered", "failed")),
            model.created_at >= window[0], model.created_at < window[1])).all()
    return {"quality_pass_rate": Ratio(passed, read),
            "delivery_success": Ratio(outcomes.count("delivered"), len(outcomes))}


def _standing(session: Session, agency: Agency, period: Period, as_of: date, today: date,
              weights: dict[str, float]) -> AgencyStanding:
    ratios = {**_catalogue(session, agency, period, as_of, today), **_clocks(session, agency, period, as_of, today),
              **_runs(session, agency, period)}
    rectification = ratios.pop("rectification")
    metrics = {m: ratios[m].value for m in METRICS}
    clocks = {"update": ratios["update_timeliness"], "application": ratios["application_timeliness"],
              "reconfirmation": ratios["reconfirmation"], "rectification": rectification}
    # open at the period's end (today for the current one), as the period's other figures: counting those open
    # today let a violation found later raise a past quarter's figure and one put right later leave it
    last = min(period.end, as_of)
    open_count = session.scalar(select(func.count()).select_from(Violation).where(
        Violation.agency_id == agency.id, Violation.status != "dismissed", Violation.detected_on <= last,
        (Violation.status == "open") | (Violation.resolved_on > last)))
    return AgencyStanding(
        code=agency.code, name=agency.name, metrics=metrics,
        counts={m: [ratios[m].kept, ratios[m].total] for m in METRICS},
        clocks={k: {"kept": r.kept, "missed": r.total - r.kept} for k, r in clocks.items()},
        score=weighted_score(metrics, weights), open_violations=open_count)


def evaluate(session: Session, *, period: str, as_of: date | None = None,
             config: EvaluationConfig | None = None) -> Evaluation:
    """Every agency that provides resources by the period's end, scored and ranked (best first).

    ``as_of`` (default today, Beijing time) caps the clocks: a deadline after it is not yet missed."""
    span = parse_period(period)
    config = config or load_config()
    today = as_of or clock.today()
    as_of = min(today, span.end) if today >= span.start else today
    providers = session.scalars(select(Agency).where(Agency.id.in_(
        select(Resource.agency_id).where(Resource.created_at < clock.as_utc(span.end_at)))).order_by(Agency.code))
    standings = [_standing(session, a, span, as_of, today, config.weights) for a in providers]
    ranked = sorted((s for s in standings if s.score is not None), key=lambda s: (-s.score, s.code))
    for index, standing in enumerate(ranked):
        # competition ranking: equal scores share a rank, the next rank skips
        standing.rank = ranked[index - 1].rank if index and standing.score == ranked[index - 1].score else index + 1
    ordered = ranked + [s for s in standings if s.score is None]
    return Evaluation(period=span.code, as_of=as_of, weights=dict(config.weights), agencies=ordered)


def trend(session: Session, *, period: str, as_of: date | None = None,
          config: EvaluationConfig | None = None) -> dict[str, dict[str, float | None]]:
    """Scores per agency over the trailing periods (oldest first), keyed by period code then agency code."""
    config = config or load_config()
    spans = trailing(period, config.thresholds.trend_periods)
    return {span.code: {s.code: s.score for s in evaluate(session, period=span.code, as_of=as_of,
                                                             config=config).agencies} for span in spans}


def run_evaluation(session: Session, *, period: str, actor: str, as_of: date | None = None,
                   config: EvaluationConfig | None = None) -> EvaluationRun:
    """Evaluate and keep the result (the periodic notice is drawn from it); audited."""
    config = config or load_config()
    result = evaluate(session, period=period, as_of=as_of, config=config)
    run = EvaluationRun(period=result.period, as_of=result.as_of, weights_sha256=config.sha256,
                        weights=config.model_dump(), actor=actor,
                        results={"agencies": [s.as_dict() for s in result.agencies]})
    session.add(run)
    session.flush()
    record_event(session, actor=actor, action="supervision.evaluate",
                 detail={"run": run.id, "period": result.period, "as_of": result.as_of.isoformat(),
                         "agencies": len(result.agencies), "weights_sha256": config.sha256})
    return run


def latest_run(session: Session, *, period: str) -> EvaluationRun | None:
    return session.scalars(select(EvaluationRun).where(EvaluationRun.period == parse_period(period).code)
                           .order_by(EvaluationRun.id.desc())).first()

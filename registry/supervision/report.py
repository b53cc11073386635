"""The periodic notice (定期通报, article 22): the evaluation of a period with its trend, clocks kept and missed,
violations and rectification orders, as one data structure rendered to HTML (Jinja2, charts as inline SVG),
PDF (registry/supervision/report_pdf.py) or Excel (registry/supervision/report_xlsx.py), written to a file by
registry/supervision/report_writer.py. All text is Chinese."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from html import escape
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core import clock
from registry.supervision.evaluation import CLOCKS, Evaluation, evaluate, trend
from registry.supervision.models import VIOLATION_CASES, RectificationOrder, Violation
from registry.supervision.periods import Period, parse_period
from schemas import presentation
from schemas.evaluation_config import METRIC_FORMULAS, METRICS, SCORE_FORMULA, EvaluationConfig, load_config
from schemas.presentation import day

PALETTE = ["#1f5fa8", "#d9534f", "#5cb85c", "#f0ad4e", "#6f42c1", "#17a2b8", "#8c564b", "#e377c2"]


@dataclass
class ReportData:
    period: Period
    evaluation: Evaluation
    trend: dict[str, dict[str, float | None]]  # period code -> agency code -> score
    violations: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    generated_at: datetime = field(default_factory=lambda: clock.now())

    @property
    def title(self) -> str:
        return f"政务数据资源共享评估定期通报（{self.period.label}）"

    @property
    def metric_labels(self) -> dict[str, str]:
        return dict(METRICS)

    def metric_notes(self) -> list[tuple[str, str, float, str]]:
        """(label, key, weight, formula) of every metric: the report's notes."""
        return [(label, key, self.evaluation.weights[key], METRIC_FORMULAS[key]) for key, label in METRICS.items()]

    @property
    def score_formula(self) -> str:
        return SCORE_FORMULA

    @property
    def clock_labels(self) -> dict[str, str]:
        return dict(CLOCKS)

    def clock_totals(self) -> dict[str, tuple[int, int]]:
        return {k: (sum(a.clocks[k]["kept"] for a in self.evaluation.agencies),
                    sum(a.clocks[k]["missed"] for a in self.evaluation.agencies)) for k in CLOCKS}

    def names(self) -> dict[str, str]:
        return {a.code: a.name for a in self.evaluation.agencies}


# one format for every surface (schemas/presentation.py): 66.7%, 无数据, 75.00, 不参与评分
pct = presentation.share
fmt_score = presentation.score


def build_report(session: Session, *, period: str, as_of: date | None = None,
                 config: EvaluationConfig | None = None) -> ReportData:
    config = config or load_config()
    span = parse_period(period)
    evaluation = evaluate(session, period=span.code, as_of=as_of, config=config)
    scores = trend(session, period=span.code, as_of=as_of, config=config)
    violations = [{
        "id": v.id, "case": v.case, "case_label": VIOLATION_CASES[v.case],
        "kind": presentation.label("violation_kinds", v.kind), "agency": v.agency.name,
        "agency_code": v.agency.code, "summary": presentation.days_in(v.summary), "evidence": presentation.evidence(v.evidence.get("records", [])),
        "status": presentation.label("violation_statuses", v.status), "detected_on": day(v.detected_on)}
        for v in session.scalars(select(Violation).where(
            Violation.detected_on <= span.end, Violation.status != "dismissed",
            or_(Violation.status == "open", Violation.resolved_on >= span.start)).order_by(Violation.case, Violation.id))]
    orders = [{
        "number": o.number, "agency": o.agency.name, "violation": o.violation_id, "issued_on": day(o.issued_on),
        "due_on": presentation.due_day(o.due_on), "fixed_on": day(o.fixed_on) or "—",
        "status": presentation.label("order_statuses", o.status), "requirement": o.requirement}
        for o in session.scalars(select(RectificationOrder).where(
            RectificationOrder.issued_on <= span.end,
            or_(RectificationOrder.fixed_on.is_(None), RectificationOrder.fixed_on >= span.start))
            .order_by(RectificationOrder.id))]
    return ReportData(period=span, evaluation=evaluation, trend=scores, violations=violations, orders=orders)


# --- inline SVG charts ------------------------------------------------------------------------------------------

def svg_bars(rows: list[tuple[str, float]], *, maximum: float = 100.0, unit: str = "") -> str:
    """Horizontal bars, one per (label, value)."""
    height, label_w, bar_w = 26 * len(rows) + 20, 230, 380
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{height}" '
              f'role="img" font-size="12">')]
    for i, (label, value) in enumerate(rows):
        y = 10 + 26 * i
        width = 0 if maximum <= 0 else bar_w * max(0.0, value) / maximum
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="18" fill="{PALETTE[0]}"/>'
                     f'<text x="{label_w + width + 4:.1f}" y="{y + 14}">{value:.2f}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_stacked(rows: list[tuple[str, int, int]]) -> str:
    """Horizontal stacked bars of kept (green) and missed (red) counts."""
    total = max([k + m for _, k, m in rows] + [1])
    height, label_w, bar_w = 26 * len(rows) + 40, 200, 380
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}" height="{height}" '
              f'role="img" font-size="12">')]
    for i, (label, kept, missed) in enumerate(rows):
        y = 10 + 26 * i
        kw, mw = bar_w * kept / total, bar_w * missed / total
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{kw:.1f}" height="18" fill="{PALETTE[2]}"/>'
                     f'<rect x="{label_w + kw:.1f}" y="{y}" width="{mw:.1f}" height="18" fill="{PALETTE[1]}"/>'
                     f'<text x="{label_w + kw + mw + 4:.1f}" y="{y + 14}">按时 {kept} / 超时 {missed}</text>')
    y = 14 + 26 * len(rows)
    parts.append(f'<rect x="{label_w}" y="{y}" width="12" height="12" fill="{PALETTE[2]}"/>'
                 f'<text x="{label_w + 16}" y="{y + 11}">按时</text>'
                 f'<rect x="{label_w + 60}" y="{y}" width="12" height="12" fill="{PALETTE[1]}"/>'
                 f'<text x="{label_w + 76}" y="{y + 11}">超时</text></svg>')
    return "".join(parts)


def svg_lines(periods: list[str], series: list[tuple[str, list[float | None]]]) -> str:
    """One line per agency across the periods (scores 0-100); gaps where an agency had no score."""
    width, height, left, top, plot_w, plot_h = 640, 260 + 18 * len(series), 40, 10, 560, 200
    step = plot_w / max(len(periods) - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" font-size="12">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for tick in (0, 25, 50, 75, 100):
        y = top + plot_h - plot_h * tick / 100
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
                     f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
    for i, code in enumerate(periods):
        parts.append(f'<text x="{left + step * i:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{escape(code)}</text>')
    for n, (name, values) in enumerate(series):
        colour = PALETTE[n % len(PALETTE)]
        points = [(left + step * i, top + plot_h - plot_h * v / 100) for i, v in enumerate(values) if v is not None]
        if len(points) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                         + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points]
        ly = top + plot_h + 30 + 18 * n
        parts.append(f'<rect x="{left}" y="{ly}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{left + 16}" y="{ly + 11}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(data: ReportData) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                      autoescape=select_autoescape(["html", "j2"]))
    names = data.names()
    scored = [a for a in data.evaluation.agencies if a.score is not None]
    periods = list(data.trend)
    charts = {
        "scores": Markup(svg_bars([(a.name, a.score) for a in scored])),
        "trend": Markup(svg_lines(periods, [(names[c], [data.trend[p].get(c) for p in periods]) for c in names])),
        "clocks": Markup(svg_stacked([(data.clock_labels[k], kept, missed)
                                      for k, (kept, missed) in data.clock_totals().items()])),
    }
    return env.get_template("evaluation_report.html.j2").render(
        data=data, charts=charts, pct=pct, fmt_score=fmt_score, span_text=span_text, overview=overview,
        periods=periods, names=names)


def generated_on(data: ReportData) -> str:
    return day(data.generated_at)


def overview(data: ReportData) -> str:
    """一、总体情况 as every rendering of the notice states it (the PDF once left out 其中参与评分 N 个)."""
    agencies = data.evaluation.agencies
    return (f"本期参与评估的行政机构共 {len(agencies)} 个，其中参与评分 {sum(1 for a in agencies if a.rank)} 个；"
            f"发现违规情形 {len(data.violations)} 项，下达整改通知 {len(data.orders)} 份。")


def span_text(data: ReportData) -> str:
    """评估期 and 统计截至 as the notice states them: 2026年10月1日至2026年12月31日，统计截至2026年11月25日."""
    return f"评估期：{day(data.period.start)}至{day(data.period.end)}　统计截至：{day(data.evaluation.as_of)}"

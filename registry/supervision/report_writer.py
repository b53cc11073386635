"""The periodic notice (定期通报) written to a file: HTML (registry/supervision/report.py), PDF
(report_pdf.py) or Excel (report_xlsx.py), from one data structure."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy.orm import Session

from core.errors import ConfigError
from registry.supervision.report import build_report, render_html
from schemas.evaluation_config import EvaluationConfig

FORMATS = ("html", "pdf", "xlsx")


def write_report(session: Session, *, period: str, fmt: str, out: Path, as_of: date | None = None,
                 config: EvaluationConfig | None = None) -> Path:
    if fmt not in FORMATS:
        raise ConfigError(f"报告格式 {fmt!r} 无效，可选 {', '.join(FORMATS)} / format must be one of {', '.join(FORMATS)}")
    data = build_report(session, period=period, as_of=as_of, config=config)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        out.write_text(render_html(data), encoding="utf-8")
    elif fmt == "pdf":
        from registry.supervision.report_pdf import render_pdf  # reportlab only when a PDF is asked for

        render_pdf(data, out)
    else:
        from registry.supervision.report_xlsx import render_xlsx

        render_xlsx(data, out)
    return out

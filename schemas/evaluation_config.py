"""The evaluation's weights and the violation thresholds as data (schemas/supervision/evaluation.yaml).

Validated on load: every metric has a weight (no typo silently drops one), weights are non-negative and not
all zero, thresholds are in range. An operator replaces the file with GOVSHARE_HOME/evaluation.yaml or a path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ConfigError

DEFAULT_FILE = Path(__file__).with_name("supervision") / "evaluation.yaml"
# Metric names in report order, with their Chinese labels (the report's column headers).
METRICS = {
    "catalogue_coverage": "目录覆盖率",
    "catalogue_completeness": "目录要素完整率",
    "sharing_openness": "共享开放率",
    "update_timeliness": "更新及时率",
    "application_timeliness": "申请答复及时率",
    "quality_pass_rate": "数据质量合格率",
    "duplicate_collection": "一数一源符合率",
    "delivery_success": "交付成功率",
    "reconfirmation": "年度全面维护率",
}
# Each metric's one definition: numerator ÷ denominator, the numerator always a part of the denominator, so a
# metric is a share in [0, 1] (0-100 %). registry/supervision/evaluation.py computes them, the report prints these notes.
METRIC_FORMULAS = {
    "catalogue_coverage": "经审核发布且期末未撤销发布的目录条目数 ÷ 期末前登记的目录条目数 / entries published after review "
                          "and not withdrawn by the period's end ÷ "
                          "entries registered by the period's end",
    "catalogue_completeness": "要素完整的已发布条目数 ÷ 已发布条目数（完整：有发布日期，且每个信息项都有对应列和说明） / "
                              "published entries with a release date and every data item's column and description ÷ "
                              "published entries",
    "sharing_openness": "无条件或有条件共享的已发布条目数 ÷ 已发布条目数 / published entries shared unconditionally or "
                        "on application ÷ published entries",
    "update_timeliness": "2个工作日内完成的目录更新义务数 ÷ 本期到期且已完成或已逾期的更新义务数 / update obligations "
                         "closed within 2 working days ÷ obligations due in the period, done or overdue",
    "application_timeliness": "10个工作日内答复的共享申请数 ÷ 本期到期且已答复或已逾期的申请数（逾期未答复后撤回的仍计为"
                              "逾期，到期前撤回的不计入） / applications decided within 10 working days ÷ applications "
                              "due in the period, decided or overdue (one withdrawn after its due day passed unanswered "
                              "is overdue; one withdrawn by its due day is left out)",
    "quality_pass_rate": "（读取行数 − 隔离行数）÷ 读取行数，本期全部同步运行（含无变化的运行，不含回放） / (rows read − "
                         "rows quarantined) ÷ rows read, over the period's sync runs (unchanged ones included, replays "
                         "excluded)",
    "duplicate_collection": "无重复采集发现的已发布条目数 ÷ 已发布条目数 / published entries with no duplicate-"
                            "collection finding ÷ published entries",
    "delivery_success": "成功送达的SFTP推送与更新通知数 ÷（成功 + 放弃）数 / SFTP pushes and update notices delivered "
                        "÷ delivered + given up",
    "reconfirmation": "本年度已全面维护的已发布条目数 ÷ 已维护或已逾期的已发布条目数（12月31日前尚未维护且上年已维护的不计入） / "
                      "published entries maintained (reconfirmed or published after review) this year ÷ published "
                      "entries maintained or late (one maintained last year and not yet this year is not due "
                      "before 31 December and is left out until then)",
}
SCORE_FORMULA = ("得分 = 100 × Σ(权重 × 指标值) ÷ Σ(本期适用指标的权重)；本期无可统计事项的指标不计入 / score = "
                 "100 × Σ(weight × metric) ÷ Σ(weights of the metrics that apply); a metric with nothing to measure "
                 "is left out")


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    no_data_grace_working_days: int = Field(10, ge=0, le=250)
    uncatalogued_grace_working_days: int = Field(20, ge=0, le=250)
    quarantine_rate: float = Field(0.05, ge=0, le=1)
    stale_grace_working_days: int = Field(2, ge=0, le=60)
    rectification_working_days: int = Field(10, ge=1, le=250)
    trend_periods: int = Field(4, ge=1, le=12)


class EvaluationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weights: dict[str, float]
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @model_validator(mode="after")
    def _weights(self) -> EvaluationConfig:
        unknown = sorted(set(self.weights) - set(METRICS))
        missing = [m for m in METRICS if m not in self.weights]
        if unknown or missing:
            raise ValueError(f"weights: unknown metric(s) {unknown}, missing {missing}; the metrics are "
                             f"{', '.join(METRICS)}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must not be negative")
        if sum(self.weights.values()) <= 0:
            raise ValueError("at least one weight must be positive")
        return self

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()


def load_config(path: Path | None = None) -> EvaluationConfig:
    """The given file, else GOVSHARE_HOME/evaluation.yaml when present, else the shipped defaults."""
    if path is None:
        from core.settings import get_settings

        own = Path(get_settings().home) / "evaluation.yaml"
        path = own if own.is_file() else DEFAULT_FILE
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"评估配置文件不存在 / evaluation config {path} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"评估配置文件 {path} 不是有效的 YAML / not valid YAML: {exc}") from None
    try:
        return EvaluationConfig.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"评估配置文件 {path} 有误 / invalid evaluation config {path}: {problems}") from None

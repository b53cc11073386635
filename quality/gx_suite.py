"""The contract's rules as a great-expectations 1.x suite (期望套件), run batch by batch over a published version.

GX is slow and memory-hungry on whole tables, so it never decides quarantine (the inline vectorised checks do)
and never sees a whole version: ``SuiteRunner.validate`` takes one bounded Arrow record batch at a time, turns
it into a pandas DataFrame, validates it with the suite and adds the counts up. Whole-version rules (freshness,
row-count change) are judged once by the hub's own checks and reported beside GX's results; ``unique`` is
checked by GX within each batch (the pipeline already guarantees the key is unique across the version).

GX Core 1.x API: an ephemeral context, a pandas data source with a dataframe asset and a whole-dataframe batch
definition, an ExpectationSuite of ``gx.expectations.*`` objects, ``batch.validate(suite)``.
"""

from __future__ import annotations

import html
import os
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from quality.checks import DatasetContext, Rule
from quality.contracts import Contract

SAMPLE_VALUES = 20


def _gx():  # noqa: ANN202 - the great_expectations module, imported only when a suite runs (2-3 s)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def _range_kwargs(rule: Rule, kwargs: dict[str, Any]) -> dict[str, Any]:
    # The spec carries ISO text for dates (JSON-friendly); pandas compares real dates.
    for name in ("min", "max"):
        value = getattr(rule, name, None)
        if isinstance(value, (date, datetime)):
            kwargs[f"{name}_value"] = value
    return kwargs


class SuiteRunner:
    """One suite, one ephemeral context; feed it record batches, then read ``results()``."""

    def __init__(self, contract: Contract, *, suite_name: str | None = None) -> None:
        gx = _gx()
        self.contract = contract
        self.context = gx.get_context(mode="ephemeral")
        try:  # progress bars would flood task logs
            self.context.variables.progress_bars = {"globally": False}
        except Exception:  # noqa: BLE001 - cosmetic only
            pass
        asset = self.context.data_sources.add_pandas("govshare").add_dataframe_asset(name="version")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("record_batch")
        self.suite = self.context.suites.add(gx.ExpectationSuite(name=suite_name or f"govshare.{contract.name}"))
        self.entries: list[dict[str, Any]] = []
        for rule in contract.rules:
            for spec in rule.expectations():
                kwargs = dict(spec.kwargs)
                if rule.type == "range":
                    kwargs = _range_kwargs(rule, kwargs)
                self.suite.add_expectation(getattr(gx.expectations, spec.name)(**kwargs))
                self.entries.append({
                    "expectation": spec.name, "column": kwargs.get("column") or ",".join(kwargs.get("column_list", [])),
                    "kwargs": {k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in kwargs.items()},
                    "rule": rule.id, "blocking": rule.blocking, "engine": "great_expectations", "note": spec.note,
                    "element_count": 0, "unexpected_count": 0, "missing_count": 0, "success": True,
                    "partial_unexpected_list": [], "exceptions": []})
        self.rows = 0
        self.batches = 0
        # Only the columns an expectation reads become pandas columns (the suite never sees the others).
        self.columns = sorted({name for e in self.entries for name in e["column"].split(",") if name})

    def validate(self, batch: pa.RecordBatch) -> None:
        if not self.entries or batch.num_rows == 0:
            self.rows += batch.num_rows
            return
        frame = batch.select([c for c in self.columns if c in batch.schema.names]).to_pandas()
        result = self.batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
            self.suite, result_format="SUMMARY")
        del frame
        self.rows += batch.num_rows
        self.batches += 1
        for entry, outcome in zip(self.entries, self._in_suite_order(result)):
            found = outcome.result or {}
            entry["element_count"] += int(found.get("element_count") or 0)
            entry["unexpected_count"] += int(found.get("unexpected_count") or 0)
            entry["missing_count"] += int(found.get("missing_count") or 0)
            entry["success"] = entry["success"] and bool(outcome.success)
            samples = entry["partial_unexpected_list"]
            for value in found.get("partial_unexpected_list") or []:
                if len(samples) >= SAMPLE_VALUES:
                    break
                text = str(value)
                if text not in samples:
                    samples.append(text)
            info = outcome.exception_info or {}
            if info.get("raised_exception") and len(entry["exceptions"]) < 3:
                entry["exceptions"].append(str(info.get("exception_message"))[:500])

    def _in_suite_order(self, result) -> list:  # noqa: ANN001 - ExpectationSuiteValidationResult
        # GX groups results by column; match them back to the suite's order by expectation id
        by_id = {outcome.expectation_config.id: outcome for outcome in result.results}
        return [by_id[expectation.id] for expectation in self.suite.expectations]

    def results(self, *, dataset: DatasetContext | None = None) -> dict[str, Any]:
        """The aggregated results, plus the hub's whole-version rules when ``dataset`` is given."""
        entries = [dict(e) for e in self.entries]
        for entry in entries:
            entry["unexpected_percent"] = (100.0 * entry["unexpected_count"] / entry["element_count"]
                                           if entry["element_count"] else 0.0)
        if dataset is not None:
            for rule in self.contract.rules_of("dataset"):
                issues = list(rule.check_dataset(dataset))
                entries.append({"expectation": rule.type, "column": getattr(rule, "column", "") or "",
                                "kwargs": rule.model_dump(exclude={"id", "description"}, mode="json"),
                                "rule": rule.id, "blocking": rule.blocking, "engine": "govshare",
                                "note": "整版本规则, 由平台判断 / whole-version rule, judged by the hub",
                                "element_count": dataset.rows, "unexpected_count": len(issues), "missing_count": 0,
                                "unexpected_percent": 0.0, "success": not issues,
                                "partial_unexpected_list": [i.message for i in issues], "exceptions": []})
        failed = sum(1 for e in entries if not e["success"])
        return {"contract": self.contract.name, "suite": self.suite.name, "rows": self.rows,
                "batches": self.batches, "evaluated": len(entries), "failed": failed, "success": failed == 0,
                "status": "passed" if failed == 0 else "failed", "results": entries,
                "gx_version": _gx().__version__}


def render_html(result: dict[str, Any]) -> str:
    """A self-contained, readable report of one validation (Chinese and English)."""
    e = html.escape
    rows = []
    for entry in result["results"]:
        ok = entry["success"]
        samples = ", ".join(entry["partial_unexpected_list"][:10])
        extra = "; ".join(x for x in [entry.get("note") or "", *entry.get("exceptions", [])] if x)
        rows.append(
            f"<tr class='{'ok' if ok else 'bad'}'><td>{'✓' if ok else '✗'}</td><td>{e(entry['expectation'])}</td>"
            f"<td>{e(entry['column'])}</td><td>{e(entry['rule'])}{'' if entry['blocking'] else ' (提示 advisory)'}</td>"
            f"<td>{entry['element_count']:,}</td><td>{entry['unexpected_count']:,}</td>"
            f"<td>{entry.get('unexpected_percent', 0):.3f}%</td><td>{e(samples)}</td><td>{e(extra)}</td></tr>")
    title = f"{result.get('resource', '')} v{result.get('version', '')} 数据质量校验报告 / data quality report"
    verdict = "通过 / passed" if result["success"] else f"{result['failed']} 项未通过 / {result['failed']} failed"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:4px 8px;font-size:14px}}tr.bad td{{background:#fde8e8}}tr.ok td:first-child{{color:#070}}
tr.bad td:first-child{{color:#b00}}</style></head><body>
<h1>{e(title)}</h1>
<p>结论 result: <b>{e(verdict)}</b> · 行数 rows {result['rows']:,} · 批次 batches {result['batches']} ·
耗时 seconds {result.get('seconds', 0):.2f} · 契约 contract {e(result['contract'])} · great-expectations
{e(result['gx_version'])} · run {e(str(result.get('run_id', '')))}</p>
<table><tr><th></th><th>期望 expectation</th><th>字段 column</th><th>规则 rule</th><th>检查 checked</th>
<th>不符 unexpected</th><th>比例 %</th><th>示例 sample values</th><th>说明 notes</th></tr>
{''.join(rows)}
</table></body></html>
"""

"""A finding of a violation (违规发现) as every detector yields it, with its evidence.

A finding names its case of article 23, its kind, the agency (and resource) it concerns, the subject that
makes it the same finding day after day (``fingerprint``), when it ended without being put right (``closed_on``), and its evidence: ``{"records": [{"table", "id"},
...], "facts": {...}}``, the rows to open to see it for oneself. Separate so that the detectors
(violations_provider.py, violations_use.py) and what records findings (violations.py, rectification.py) share
it, and no detector imports the recording that calls it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

__all__ = ["Finding", "row_ref"]


@dataclass
class Finding:
    case: int
    kind: str
    agency_id: int
    key: str
    summary: str
    records: list[dict[str, Any]]
    facts: dict[str, Any] = field(default_factory=dict)
    resource_id: int | None = None
    # A violation that stood and can no longer be put right (an application withdrawn after its due day passed
    # unanswered): recorded as closed on that day with the reason, still a violation, never "resolved".
    closed_on: date | None = None
    closed_because: str = ""

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.kind}:{self.key}".encode()).hexdigest()

    @property
    def evidence(self) -> dict[str, Any]:
        return {"records": self.records, "facts": self.facts}


def row_ref(table: str, id_: Any) -> dict[str, Any]:
    """One evidence record: a row to open."""
    return {"table": table, "id": id_}

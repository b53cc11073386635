"""The records cursor is read strictly: only the cursor a page returned continues the pages; one written by hand
(a number as text, a fraction, true for 1, an unknown or missing field, a negative or oversized number, text
that is no base64) is a 400 that says so in Chinese, never a page read from a guessed position or a 500."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.delivery_helpers import delivery_hub


def _cursor(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def test_only_an_issued_cursor_continues_the_pages(hub_home: Path, tmp_path: Path) -> None:
    with delivery_hub(tmp_path, rows=60) as site:
        records = f"/api/v1/resources/{site.hub.resource_code}/records"
        first = site.get(records, token=site.hub.token, params={"limit": 5}).json()
        issued = first["next_cursor"]
        second = site.get(records, token=site.hub.token, params={"limit": 5, "cursor": issued})
        assert second.status_code == 200, second.text
        assert not {json.dumps(r, sort_keys=True) for r in first["records"]} & {
            json.dumps(r, sort_keys=True) for r in second.json()["records"]}

        # The issued cursor is sealed and opaque (delivery.interface.encode_cursor): a cursor written by hand, in
        # the form the hub seals, is refused whatever it holds.
        v, k, o = 1, "id", 5
        edited = {
            "ordinal as text": {"v": v, "k": k, "o": str(o)},
            "fractional ordinal": {"v": v, "k": k, "o": o + 0.5},
            "true for a version": {"v": True, "k": k, "o": o},
            "version as text": {"v": str(v), "k": k, "o": o},
            "unknown field": {"v": v, "k": k, "o": o, "x": 1},
            "missing field": {"v": v, "k": k},
            "negative ordinal": {"v": v, "k": k, "o": -5},
            "oversized ordinal": {"v": v, "k": k, "o": 2**70},
            "version 0": {"v": 0, "k": k, "o": o},
            "no object": [v, k, o],
        }
        cursors = {name: _cursor(made) for name, made in edited.items()}
        cursors["not base64"] = "e30!!"
        for name, cursor in cursors.items():
            answer = site.get(records, token=site.hub.token, params={"limit": 5, "cursor": cursor})
            assert answer.status_code == 400, (name, answer.status_code, answer.text[:200])
            assert answer.json()["detail_zh"].startswith("游标（cursor）不是本服务签发的"), (name, answer.json())

        # The notices feed's cursor too: a digit str.isdigit accepts but int() does not was a 500.
        for after in ("²", "1.5", "-1", str(2**64)):
            answer = site.get("/api/v1/notices", token=site.hub.token, params={"after": after})
            assert answer.status_code == 400, (after, answer.status_code, answer.text[:200])
            assert answer.json()["detail_zh"].startswith(f"游标“{after}”不是本通知接口返回的"), answer.json()

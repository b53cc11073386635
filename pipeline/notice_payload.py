"""What an update notice (更新通知) says: a version as its subscriber may see it, or why it was withheld."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from registry.exchange.models import DatasetVersion
from registry.sharing.models import Subscription
from registry.sharing.visibility import restricted, subscriber_scope, version_facts

CHANGE_COUNTS = ("inserted", "updated", "deleted")
CHANGE_FILE_FACTS = ("file", "sha256", "bytes", "rows")  # of the whole change set's file


def version_payload(session: Session, version: DatasetVersion, subscription: Subscription) -> dict[str, Any]:
    """What the subscriber may know of the version, as the versions endpoint shows it to that reader (the same
    registry.sharing.visibility rules): a row condition hides the row count and the change counts (those of its
    own view are the change feed's headers), any restriction the digests of change files it never gets, and the
    quarantine is the provider's business. The manifest digest stays, as for every reader with a live grant:
    every download's X-Govshare-Manifest-SHA256 carries it, so a subscriber matches a notice with the version it
    downloads. The numbers a notice gives are then the ones the subscriber's download confirms."""
    manifest = version.manifest or {}
    resource = version.resource
    scope = subscriber_scope(session, resource=resource, agency_id=subscription.agency_id)
    facts = version_facts(scope, version)
    payload: dict[str, Any] = {
        "event": "dataset.version.published",
        "resource": resource.code, "resource_name": resource.name,
        "provider": resource.agency.name, "provider_code": resource.agency.code,
        "subscriber_code": subscription.agency.code,
        "version": version.number, "published_at": version.created_at.isoformat(), "mode": manifest.get("mode"),
        "row_count": facts["row_count"], "manifest_sha256": facts["manifest_sha256"],
        "download": f"/api/v1/resources/{resource.code}/files",
        "changes_feed": f"/api/v1/resources/{resource.code}/changes",
    }
    if "changes" in manifest:  # the change summary of an incremental run, when the pipeline records one
        hidden = (CHANGE_COUNTS if scope.row_filter else ()) + (CHANGE_FILE_FACTS if restricted(scope) else ())
        payload["changes"] = {k: v for k, v in manifest["changes"].items() if k not in hidden}
    return payload


def withheld_payload(version: DatasetVersion, reason: tuple[str, str]) -> dict[str, Any]:
    """What a subscriber without a live grant is told of a version: that it exists and why nothing more."""
    resource = version.resource
    return {"event": "dataset.version.withheld", "resource": resource.code, "resource_name": resource.name,
            "version": version.number, "withheld_zh": reason[0], "withheld": reason[1]}


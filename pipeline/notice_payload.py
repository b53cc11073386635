"""What an update notice (更新通知) says: a version as its subscriber may see it, why it was withheld, or what a
subscriber missed while it held no grant (补发通知).

Queueing (pipeline/notify.py) and the release of withheld notices (pipeline/notice_release.py) both build
their bodies here, so a notice states a version the same way whichever path wrote it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from pipeline.changes_feed import FullCopyNeeded, changes_since
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


def catch_up_payload(session: Session, version: DatasetVersion, subscription: Subscription, *,
                     since: int | None, missed: list[int], releases: int) -> dict[str, Any]:
    """The notice released when a subscriber holds a live grant again: ``version`` as any notice states it, plus
    ``catch_up``, the versions whose notices were withheld (``missed``) and the changes since ``since``, the
    version of the last notice it received (None: none, so only a whole download brings it up to date), and
    ``releases``, the id of the withheld notice it releases (a feed reader may have read that one already).

    ``changes`` stays this version's own summary, as in every notice; the range's counts are
    ``catch_up.changes``, summed over the versions' change sets exactly as the changes feed (``?since=``)
    counts the rows it returns, so the subscriber's download confirms them. They are left out where that feed
    cannot serve the range (a version without a change set, changed columns, pruned files) or a row condition
    hides counts (as ``version_payload`` does)."""
    payload = version_payload(session, version, subscription)
    resource = version.resource
    listed = "、".join(str(number) for number in missed)
    catch_up: dict[str, Any] = {"since_version": since, "withheld_versions": missed, "changes_feed": None,
                                "releases": str(releases)}  # a string, as the feed and webhook spell notice ids
    counts = None
    if since is not None:
        try:
            counts = changes_since(session, resource=resource, since=since, until=version.number).counts
            catch_up["changes_feed"] = f"/api/v1/resources/{resource.code}/changes?since={since}"
        except FullCopyNeeded:
            pass
    if counts is not None and not subscriber_scope(session, resource=resource, agency_id=subscription.agency_id
                                                   ).row_filter:
        catch_up["changes"] = counts
    if catch_up["changes_feed"]:
        get_zh = f"自第{since}版以来的全部变更见 catch_up（changes_feed 增量获取）"
        get_en = f"every change since v{since} is in catch_up (its changes_feed)"
    else:
        get_zh = f"请下载第{version.number}版完整数据（download）"
        get_en = f"download the whole of v{version.number} (download)"
    catch_up["note_zh"] = (f"贵机构无有效共享授权期间发布的第{listed}版未予通知，本通知代替这些通知；"
                           f"changes 仅为第{version.number}版本身的变更，{get_zh}")
    catch_up["note"] = (f"versions {', '.join(map(str, missed))} were published while your agency held no live "
                        f"grant and were not notified; this notice replaces those notices. changes covers "
                        f"v{version.number} alone; {get_en}")
    payload["catch_up"] = catch_up
    return payload

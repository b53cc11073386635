"""Derived files of the delivery channels, removed with the versions they derive from.

Key-sorted copies and lookup structures built on demand (<storage>/index/<resource>/<version folder>/) and
materialised exports
(<storage>/exports/<resource id>/v<number>/) are rebuilt on demand, so they may go at any time; once their
version's folder is gone (pruned by the retention rule, `govshare housekeep`), nothing can use them again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select

from core.storage import get_storage
from registry.db import session_scope
from registry.exchange.models import DatasetVersion


def prune_delivery_caches() -> list[str]:
    """Remove the copies and exports of versions whose published folder no longer exists; what was removed."""
    removed: list[str] = []
    storage = get_storage()
    index_root = storage.root / "index"
    with session_scope() as session:  # a version whose files are still in the storage (not pruned)
        versions = list(session.scalars(select(DatasetVersion)))
        kept = {v.path for v in versions if storage.local(v.path).is_dir() or storage.exists(v.path)}
        live = {(v.resource_id, v.number) for v in versions if v.path in kept}
    if index_root.is_dir():  # lookup structures built on demand: this worker's own
        for resource_dir in index_root.iterdir():
            for version_dir in (p for p in resource_dir.iterdir() if p.is_dir()):
                if f"datasets/{resource_dir.name}/{version_dir.name}" not in kept:
                    shutil.rmtree(version_dir, ignore_errors=True)
                    removed.append(str(version_dir.relative_to(storage.root)))
    exports = {Path(info.path).name: info for info in storage.children("exports")} if storage.remote else {}
    for resource in sorted(set(exports) | {p.name for p in (storage.root / "exports").glob("*") if p.is_dir()}):
        if not resource.isdigit():
            continue
        names = {Path(i.path).name for i in storage.children(f"exports/{resource}")} if storage.remote else set()
        names |= {p.name for p in (storage.root / "exports" / resource).glob("v*") if p.is_dir()}
        for name in sorted(n for n in names if n.startswith("v") and n[1:].isdigit()):
            if (int(resource), int(name[1:])) not in live:
                storage.delete(f"exports/{resource}/{name}")  # the store's copy and this worker's
                removed.append(f"exports/{resource}/{name}")
    return removed

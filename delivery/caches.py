"""Derived files of the delivery channels, removed with the versions they derive from.

Key-sorted copies and lookup structures built on demand (<storage>/index/<resource>/<version folder>/) and
materialised exports
(<storage>/exports/<resource id>/v<number>/) are rebuilt on demand, so they may go at any time; once their
version's folder is gone (pruned by the retention rule, `govshare housekeep`), nothing can use them again.
"""

from __future__ import annotations

import shutil

from sqlalchemy import select

from pipeline.paths import resolve, storage_root
from registry.db import session_scope
from registry.exchange.models import DatasetVersion


def prune_delivery_caches() -> list[str]:
    """Remove the copies and exports of versions whose published folder no longer exists; what was removed."""
    removed: list[str] = []
    index_root, exports_root = storage_root() / "index", storage_root() / "exports"
    datasets = storage_root() / "datasets"
    if index_root.is_dir():
        for resource_dir in index_root.iterdir():
            for version_dir in (p for p in resource_dir.iterdir() if p.is_dir()):
                if not (datasets / resource_dir.name / version_dir.name).is_dir():
                    shutil.rmtree(version_dir, ignore_errors=True)
                    removed.append(str(version_dir.relative_to(storage_root())))
    if exports_root.is_dir():
        with session_scope() as session:
            live = {(v.resource_id, v.number) for v in session.scalars(select(DatasetVersion))
                    if resolve(v.path).is_dir()}
        for resource_dir in (p for p in exports_root.iterdir() if p.is_dir() and p.name.isdigit()):
            for version_dir in (p for p in resource_dir.iterdir() if p.is_dir() and p.name.startswith("v")):
                if (int(resource_dir.name), int(version_dir.name[1:])) not in live:
                    shutil.rmtree(version_dir, ignore_errors=True)
                    removed.append(str(version_dir.relative_to(storage_root())))
    return removed

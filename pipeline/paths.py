"""Where runs write and versions live, as storage-relative names (core.storage holds the files).

A run writes everything under its own prefix ``datasets/<resource>/<run_id>/``; publishing writes the
manifest there last and the registry's transaction alone makes that prefix a version (no rename, no copy).
A prefix no version names and no live run holds is a crashed run's leftover, which housekeeping removes.
"""

from __future__ import annotations

from pathlib import Path

from core.storage import get_storage

DATASETS = "datasets"


def storage_root() -> Path:
    """This worker's working folder of the storage (the store itself for a local folder)."""
    return get_storage().root


def run_prefix(resource_id: int, run_id: str) -> str:
    return f"{DATASETS}/{resource_id}/{run_id}"


def run_dir(resource_id: int, run_id: str) -> Path:
    """The run's own folder in the working copy: its staged parts, later the version's."""
    return storage_root() / run_prefix(resource_id, run_id)


def quarantine_file(resource_id: int, run_id: str) -> Path:
    return storage_root() / "quarantine" / str(resource_id) / f"{run_id}.parquet"


def resolve(relative: str) -> Path:
    """A published file or folder in the working copy (copied from an object store first if missing)."""
    return get_storage().pull(relative)

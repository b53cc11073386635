"""Where runs stage and versions live under the storage root."""

from __future__ import annotations

from pathlib import Path

from core.settings import get_settings


def storage_root() -> Path:
    root = get_settings().storage
    root.mkdir(parents=True, exist_ok=True)
    return root


def staging_dir(run_id: str) -> Path:
    return storage_root() / "staging" / run_id


def version_dir(resource_id: int, number: int, run_id: str) -> Path:
    # The run id in the name keeps a crashed publish's leftover from colliding with the next attempt.
    return storage_root() / "datasets" / str(resource_id) / f"v{number:06d}-{run_id[:8]}"


def quarantine_file(resource_id: int, run_id: str) -> Path:
    return storage_root() / "quarantine" / str(resource_id) / f"{run_id}.parquet"


def resolve(relative: str) -> Path:
    return storage_root() / relative

"""The manifest of a published version: what a consumer needs to trust its copy (article 16)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

CHUNK = 1 << 20
MANIFEST = "manifest.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def schema_fields(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def describe_files(folder: Path, names: list[str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    files = []
    for name in names:
        path = folder / name
        files.append({"path": name, "rows": pq.ParquetFile(path).metadata.num_rows,
                      "bytes": path.stat().st_size, "sha256": file_sha256(path)})
    return files


def write_manifest(folder: Path, manifest: dict[str, Any]) -> str:
    """Writes manifest.json and returns its SHA-256, which the registry keeps to detect tampering."""
    body = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode()
    (folder / "manifest.json").write_bytes(body)
    return hashlib.sha256(body).hexdigest()


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())

"""The published catalogue as DCAT (JSON-LD), so other catalogues can harvest it (article 15).

One dcat:Catalog; one dcat:Dataset per published entry (title, description, publisher, identifier, theme =
classification, accrualPeriodicity from the update cycle, keywords = data item names) with one
dcat:Distribution per sharing mode: the interface mode points at its registered service (dcat:DataService with
the OpenAPI document as endpoint description), file download at the download URLs (Parquet and CSV), online
browsing and offline exchange are described by title only (they have no machine address).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog.models import CatalogRevision
from registry.catalog.search import offered_modes, refresh_published
from registry.catalog.search_models import CatalogSearchEntry, InterfaceService
from schemas.catalog_metadata import code_list

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "govshare": "urn:govshare:",
}
FREQUENCY = "http://publications.europa.eu/resource/authority/frequency/"
# The update cycles (更新周期) in the EU frequency vocabulary that DCAT-AP profiles use.
FREQUENCIES = {"realtime": "CONT", "hourly": "HOURLY", "daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY",
               "quarterly": "QUARTERLY", "half_yearly": "ANNUAL_2", "yearly": "ANNUAL", "irregular": "IRREG"}


def _zh(text: str) -> dict[str, str]:
    return {"@value": text, "@language": "zh"}


def _distributions(base: str, code: str, content: dict[str, Any], service: InterfaceService | None) -> list[dict]:
    labels = code_list("sharing_modes")
    out = []
    for mode in offered_modes(content):
        dist: dict[str, Any] = {"@id": f"{base}/api/v1/catalog/entries/{code}#{mode}", "@type": "dcat:Distribution",
                                "dct:title": _zh(labels.get(mode, mode)), "govshare:sharingMode": mode}
        if mode == "interface" and service is not None:
            endpoint = f"{base}{service.path}"
            dist["dcat:accessURL"] = {"@id": endpoint}
            dist["dcat:accessService"] = {
                "@id": endpoint, "@type": "dcat:DataService", "dct:title": _zh(service.description),
                "dcat:endpointURL": {"@id": endpoint},
                "dcat:endpointDescription": {"@id": f"{base}/api/v1/catalog/{code}/openapi.json"},
                "dct:conformsTo": {"@id": "https://spec.openapis.org/oas/v3.0.3"}}
        elif mode == "file":
            dist["dcat:accessURL"] = {"@id": f"{base}/api/v1/resources/{code}/files"}
            dist["dcat:downloadURL"] = [{"@id": f"{base}/api/v1/resources/{code}/files?format=parquet"},
                                        {"@id": f"{base}/api/v1/resources/{code}/files?format=csv"}]
            dist["dcat:mediaType"] = ["application/vnd.apache.parquet", "text/csv"]
        out.append(dist)
    return out


def dcat_catalog(session: Session, *, base_url: str, title: str = "政务数据资源目录") -> dict[str, Any]:
    """The JSON-LD document of the published catalogue; `base_url` makes the identifiers resolvable."""
    refresh_published(session)
    base = base_url.rstrip("/")
    services = {s.resource_id: s for s in session.scalars(
        select(InterfaceService).where(InterfaceService.status == "active"))}
    rows = session.execute(select(CatalogSearchEntry, CatalogRevision)
                           .join(CatalogRevision, CatalogRevision.id == CatalogSearchEntry.revision_id)
                           .order_by(CatalogSearchEntry.code)).tuples().all()
    datasets = []
    for row, revision in rows:
        content = revision.content
        dataset: dict[str, Any] = {
            "@id": f"{base}/api/v1/catalog/entries/{row.code}", "@type": "dcat:Dataset",
            "dct:identifier": row.code, "dct:title": _zh(content["name"]), "dct:description": _zh(content["abstract"]),
            "dct:publisher": {"@type": "foaf:Agent", "foaf:name": _zh(row.agency.name),
                              "dct:identifier": row.agency.code},
            "dcat:theme": {"@type": "skos:Concept", "skos:notation": row.classification},
            "dct:accrualPeriodicity": {"@id": FREQUENCY + FREQUENCIES.get(content.get("update_cycle", ""), "UNKNOWN")},
            "dcat:keyword": [_zh(item["name"]) for item in content.get("data_items", [])],
            "dct:accessRights": _zh(code_list("sharing_types").get(content["sharing_type"], content["sharing_type"])),
            "govshare:sharingType": content["sharing_type"],
            "owl:versionInfo": str(revision.number),
            "dcat:distribution": _distributions(base, row.code, content, services.get(row.resource_id)),
        }
        if content.get("sharing_condition"):
            dataset["govshare:sharingCondition"] = _zh(content["sharing_condition"])
        if content.get("release_date"):
            dataset["dct:issued"] = {"@value": content["release_date"], "@type": "xsd:date"}
        if content.get("related_codes"):
            dataset["dct:relation"] = [{"@id": f"{base}/api/v1/catalog/entries/{c}"} for c in content["related_codes"]]
        datasets.append(dataset)
    return {"@context": {**CONTEXT, "owl": "http://www.w3.org/2002/07/owl#"},
            "@id": f"{base}/api/v1/catalog/dcat.jsonld", "@type": "dcat:Catalog", "dct:title": _zh(title),
            "dct:description": _zh("按《上海市政务数据资源共享管理办法》编制并发布的政务数据资源目录"),
            "dcat:dataset": datasets}

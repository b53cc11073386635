"""A resource in change-capture mode (变更捕获) as a run finds it: its capture, cursor state and previous version.

Whether a stream is in cdc mode, how its cursor state names an LSN and the forms its values were published in
(``CDC_CURSOR``, ``cdc_forms``), its capture (the source's connector and the resource's slot), and what one
run starts from, read once under the resource's lock (``CdcResource``, ``load_resource``). Separate from the run
(pipeline/cdc.py) so that the slot guard (pipeline/cdc_slots.py), which the run calls, reads these without
importing the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.pgoutput import lsn_int
from connectors.postgres_cdc import ChangeCapture, slot_name
from connectors.postgres_forms import FORMS
from core.errors import ConfigError
from core.settings import get_settings
from pipeline.layers import Part, version_parts
from registry.db import session_scope
from registry.catalog.resources import get_resource
from registry.catalog.sources import open_connector
from registry.exchange.versions import cursor_state, latest_version

# CursorState.cursor_column of a cdc resource, its value an LSN such as 0/1949108. It names the forms the versions
# hold values in (connectors.postgres_forms; "__cdc_lsn": before they were numbered), here and not in a version's
# manifest because a snapshot that changes nothing publishes no version but does rewrite this state.
CDC_CURSOR = f"__cdc_lsn/forms={FORMS}"


def cdc_forms(cursor_column: str | None) -> int | None:
    """The forms of a cdc cursor state's versions; None: not a cdc cursor state."""
    if cursor_column == "__cdc_lsn":
        return 1
    number = (cursor_column or "").removeprefix("__cdc_lsn/forms=")
    return int(number) if number != cursor_column and number.isdigit() else None


def is_cdc(stream: dict | None) -> bool:
    return (stream or {}).get("mode") == "cdc"


@dataclass
class CdcResource:
    id: int
    code: str
    stream: dict
    source: dict
    previous_id: int | None
    previous_number: int | None
    previous_rows: int | None
    previous_parts: list[Part]  # the previous version's parts: its rows are their live rows (pipeline.layers)
    previous_path: str | None  # its storage-relative folder, which a layer's entries point at
    cursor: int | None
    watch: list[str]  # keys with open quarantine records (registry.quality.quarantine)
    forms: int | None  # the forms its values were published in (cdc_forms)
    identity: dict | None  # the table they were read from (pipeline.cdc_identity); None: not recorded yet


def capture_for(resource) -> ChangeCapture:  # noqa: ANN001 - registry Resource with its source
    if resource.source is None:
        raise ConfigError(f"resource {resource.code} has no source; change capture needs a postgresql source")
    return ChangeCapture(open_connector(resource.source), slot=slot_name(get_settings().cdc_slot_prefix, resource.code))


def load_resource(resource_code: str) -> tuple[CdcResource, ChangeCapture, object]:
    from registry.quality.quarantine import open_keys
    from schemas.contract_store import contract_for

    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        capture = capture_for(resource)
        previous = latest_version(session, resource=resource)
        state = cursor_state(session, resource=resource)
        info = CdcResource(
            id=resource.id, code=resource.code, stream=dict(resource.stream),
            source={"name": resource.source.name, "kind": resource.source.kind, "stream": resource.stream},
            previous_id=previous.id if previous else None, previous_number=previous.number if previous else None,
            previous_rows=previous.row_count if previous else None,
            previous_parts=version_parts(previous) if previous else [],
            previous_path=previous.path if previous else None,
            cursor=lsn_int(state.cursor_value) if state and cdc_forms(state.cursor_column) and state.cursor_value
            else None, watch=open_keys(session, resource_id=resource.id),
            forms=cdc_forms(state.cursor_column) if state else None,
            identity=state.source_identity if state and cdc_forms(state.cursor_column) else None)
        contract = contract_for(resource_code=resource.code, stream=resource.stream)
    return info, capture, contract

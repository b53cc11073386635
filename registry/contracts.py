"""Attach a data contract (schemas/contracts/) to a catalogue resource: the registry side of the contracts."""

from __future__ import annotations

from core.errors import ConfigError
from quality.contracts import Contract
from registry.audit import record_event
from registry.resources import get_resource
from schemas.contract_store import find_contract


def attach_contract(session, *, resource_code: str, name: str, actor: str = "cli") -> Contract:  # noqa: ANN001
    """Set ``contract: name`` in a resource's stream after validating the contract against the stream."""
    contract = find_contract(name)
    resource = get_resource(session, code=resource_code)
    stream = dict(resource.stream or {})
    stream_key = list(stream.get("primary_key") or [])
    if contract.key and stream_key and stream_key != contract.key:
        raise ConfigError(f"contract {name} has key {contract.key} but resource {resource_code} reads key "
                          f"{stream_key}; make them the same")
    stream["contract"] = name
    resource.stream = stream
    record_event(session, actor=actor, action="resource.contract", resource_code=resource_code,
                 agency_code=resource.agency.code, detail={"contract": name, "rules": [r.id for r in contract.rules]})
    return contract

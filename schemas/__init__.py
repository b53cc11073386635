"""Schemas shipped with the hub: data contracts under schemas/contracts/ (see schemas.contract_store)."""

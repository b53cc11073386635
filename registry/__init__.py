"""The registry: agencies, sources, catalogue resources, versions, subscriptions and audit (SQLAlchemy 2)."""

"""The registry (登记库) by capability: audit, people, catalog, exchange, quality, sharing, supervision, each with
its tables beside its services; the shared infrastructure (db, orm, migrate, migrations) stays here (SQLAlchemy 2)."""

"""Synthetic but realistic sample data for demos, tests and benchmarks.

``samples.enterprises`` generates a seeded Shanghai enterprise registry (企业基本信息) as bounded
``pyarrow.RecordBatch``es, vectorised with numpy; ``samples.loaders`` streams those batches into SQLite,
PostgreSQL and MySQL/MariaDB, and mutates a PostgreSQL copy for incremental-sync tests.
"""

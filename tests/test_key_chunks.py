"""The key scan's chunked read of an integer key (connectors.postgres_keys): a range read as sorted arrays,
one row per chunk, holds exactly the keys of the range, in order, whatever the cuts: keys below and above the
published ones (a table that grew at both ends), empty chunks, negative and sparse keys. Against a real
PostgreSQL table."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.base import StreamSpec
from connectors.postgres import PostgresConnector
from connectors.postgres_keys import MAX_EXTRA_EDGES, chunk_bounds
from tests.helpers import pg_execute, pg_scratch_schema, pg_source_config
from tests.services import require_postgres

# Sparse, negative and clustered keys: a dense run, a gap of a billion, a few far out.
KEYS = sorted({*range(-500, 0, 7), *range(1, 20_001), *range(1_000_000_000, 1_000_050_000, 3), 2**62})


@pytest.fixture
def keyed() -> tuple[PostgresConnector, StreamSpec]:
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f'CREATE TABLE "{schema}".t (id bigint PRIMARY KEY, note text)')
        pg_execute(dsn, f'INSERT INTO "{schema}".t SELECT k, \'n\' FROM unnest(%s::bigint[]) AS k', (KEYS,))
        # the same keys declared as a key without an index (a view's or a legacy table's)
        pg_execute(dsn, f'CREATE TABLE "{schema}".bare AS SELECT * FROM "{schema}".t')
        config, secret = pg_source_config(dsn, schema=schema)
        yield PostgresConnector(name="chunks", config=config, secret=secret), StreamSpec(table="t", primary_key=["id"])


def test_chunks_only_over_a_key_index(keyed) -> None:  # noqa: ANN001
    connector, stream = keyed
    bare = StreamSpec(table="bare", primary_key=["id"])
    assert connector._key_extent(stream) == (True, KEYS[0], KEYS[-1])
    assert connector._key_extent(bare) == (False, None, None)  # min and max not computed: no table scan
    assert not connector._key_extent(StreamSpec(table="t", primary_key=["note"]))[0]
    # without an index the range is read row by row (one scan, not one per chunk), the same keys
    assert _read(connector, bare, low=None, high=10_000, splits=[2_000, 4_000]) == [k for k in KEYS if k < 10_000]


def _read(connector: PostgresConnector, stream: StreamSpec, **bounds) -> list[int]:  # noqa: ANN003
    values = []
    for batch in connector.read_key_range(stream, **bounds):
        assert batch.schema.names == ["id"]
        values += batch.column(0).to_pylist()
    return values


@pytest.mark.parametrize("low, high", [(None, None), (None, 10_000), (10_000, None), (-3, 1_000_000_001)])
def test_a_chunked_range_holds_exactly_its_keys_in_order(keyed, low: int | None, high: int | None) -> None:  # noqa: ANN001
    connector, stream = keyed
    # Cuts as the published keys' quantiles would give them, from the dense middle only: keys below and above
    # them come in chunks of the usual span, up to the source's own ends.
    splits = list(range(2_000, 18_001, 2_000))
    wanted = [k for k in KEYS if (low is None or k >= low) and (high is None or k < high)]
    assert _read(connector, stream, low=low, high=high, splits=splits) == wanted
    assert _read(connector, stream, low=low, high=high) == wanted  # row by row, the same keys


def test_chunk_bounds_cover_the_range_without_gaps_or_overlaps() -> None:
    for low, high, splits, lowest, highest in [(None, None, [10, 20, 30], -25, 65), (None, 25, [10, 20, 30], -25, 65),
                                               (20, None, [10, 20, 30, 40], -25, 10**12), (5, 6, [1, 9], 0, 10)]:
        bounds = chunk_bounds(low=low, high=high, splits=splits, source_min=lowest, source_max=highest)
        firsts, lasts = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
        assert firsts[0] == (-(2**63) if low is None else low) and lasts[-1] == (2**63 - 1 if high is None else high - 1)
        assert (firsts[1:] == lasts[:-1] + 1).all() and (firsts <= lasts).all()
        assert len(bounds) <= len(splits) + 2 * MAX_EXTRA_EDGES + 1  # a far outlier does not make a billion chunks

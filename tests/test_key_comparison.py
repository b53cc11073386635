"""The key scan's two cheap steps, against plain set arithmetic: which published keys a batch of the source's
sorted keys lacks (a presence table where keys are dense, bisection where they are not), and the keys of a
batch of PostgreSQL key chunks (8-byte big-endian integers end to end, NULL for an empty chunk). The whole
scan against a real server: tests/test_exact_incremental.py."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from connectors.postgres_keys import chunk_keys
from pipeline.deletes_merge import _Present


@pytest.mark.parametrize(("spread", "offset", "dense"), [
    (1, 0, True),            # ids with a few holes
    (3, -1_000_000, True),   # a third of the range used, negative ids
    (1_000, 0, False),       # sparse: bisection
    (2**40, -(2**62), False),  # far apart, near the ends of the 64-bit range
])
def test_a_batch_tells_exactly_which_published_keys_it_lacks(spread: int, offset: int, dense: bool) -> None:
    rng = np.random.default_rng(spread % 997)
    published = np.unique(rng.integers(0, 40_000 * spread, 30_000, dtype=np.int64)) + offset
    # the source: most published keys, a few new ones, read up to some key (the batch)
    kept = published[rng.random(len(published)) > 0.02]
    new = rng.integers(0, 40_000 * spread, 500, dtype=np.int64) + offset
    source = np.unique(np.concatenate([kept, new]))
    batch = source[len(source) // 5: len(source) // 2]
    present = _Present(batch)
    assert (present.table is not None) is dense
    # a part's keys up to the batch's last key, those below its first included (the source has none there)
    segment = published[published <= batch[-1]]
    expected = ~np.isin(segment, batch)
    assert expected.any() and not expected.all()
    assert np.array_equal(present.absent(segment), expected)


def test_an_empty_batch_lacks_every_key() -> None:
    keys = np.array([3, 5, 8], dtype=np.int64)
    assert _Present(np.empty(0, np.int64)).absent(keys).all()


def test_chunk_keys_reads_the_values_end_to_end_skipping_empty_chunks() -> None:
    def chunk(keys: list[int]) -> bytes:
        return np.array(keys, dtype=">i8").tobytes()

    column = pa.array([b"", chunk([1, 2, 3]), None, chunk([-(2**63), 2**63 - 1]), None, chunk([7])], pa.binary())
    assert chunk_keys(column).tolist() == [1, 2, 3, -(2**63), 2**63 - 1, 7]
    assert chunk_keys(column.slice(2)).tolist() == [-(2**63), 2**63 - 1, 7]  # a batch's slice keeps its offset
    assert chunk_keys(column.cast(pa.large_binary())).tolist() == [1, 2, 3, -(2**63), 2**63 - 1, 7]
    assert chunk_keys(pa.array([None, None], pa.binary())).tolist() == []

"""Validation over Arrow string arrays (批量校验): a numpy fast path and a per-value Python path, same results.

Fast path (``engine="vectorised"``), per chunk:

1. Rows whose UTF-8 byte length is the fixed width (18) are gathered as an ``n x 18`` uint8 matrix straight
   from the Arrow data buffer (zero-copy when every row qualifies, else after one Arrow ``filter``).
2. The matrix is read as nine little-endian uint16 columns, one per pair of characters. For each pair
   position a 65,536-entry uint64 table gives, packed into bit fields, everything that pair contributes:
   its share of the check sums (modulo 31 and the GB 11714 modulo 11 for a USCC, modulo 11 for an ID),
   counters for characters outside the alphabet, flags (authority/category pair, digits), and its digits'
   share of the division code (and the birth date). Nine lookups and eight additions per row give all the
   sums at once; the fields are sized so they can never carry into each other.
3. Membership of the division code is one lookup in a dense 1,000,000-entry table.
4. Rows that are not plainly valid get their precise reason by masks, in the same order as the scalar
   validator. Only rows the tables cannot judge (characters outside the alphabet, lower case, whitespace,
   lengths that might be padding, 15-digit IDs) fall back to the scalar validator, row by row.

Work proceeds in blocks of 65,536 rows so temporaries stay in the CPU cache.
The Python path (``engine="python"``) calls the scalar validator for every row; tests check the two agree.
Nulls are passed through as null status (no verdict): completeness is another rule's business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core import clock
from quality.identifier_kinds import IdentifierKind
from quality.identifiers.idcard import evaluate_idcard_matrix, validate_idcard
from quality.identifiers.orgcode import validate_orgcode
from quality.identifiers.outcomes import REASON_INDEX, ArrayOutcome, Level, Outcome, Reason, reason_dictionary
from quality.identifiers.uscc import evaluate_uscc_matrix, validate_uscc

Engine = Literal["vectorised", "python"]
ArrayLike = pa.Array | pa.ChunkedArray | Sequence[str | None]
NO_REASON = -1


ScalarValidator = Callable[[str | None], Outcome | None]
# A fast evaluator judges an (m x width) byte matrix: level int8, reason int8 (-1 none), needs_scalar bool.
FastEvaluator = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def validate_value(value: str | None, *, kind: IdentifierKind | str, today: date | None = None) -> Outcome | None:
    """Check one value of the given kind; None in, None out."""
    return _scalar_validator(IdentifierKind(kind), today)(value)


def validate_array(
    values: ArrayLike,
    *,
    kind: IdentifierKind | str,
    today: date | None = None,
    engine: Engine = "vectorised",
) -> ArrayOutcome:
    """Check a whole column; the result is row-aligned (chunked when the input is a ChunkedArray)."""
    kind = IdentifierKind(kind)
    scalar = _scalar_validator(kind, today)
    fast: FastEvaluator | None = None
    width = short_below = 0
    if engine == "vectorised" and kind is IdentifierKind.USCC:
        fast, width, short_below = evaluate_uscc_matrix, 18, 18
    elif engine == "vectorised" and kind is IdentifierKind.IDCARD:
        day = today or clock.today()
        fast = lambda matrix: evaluate_idcard_matrix(matrix, today=day)  # noqa: E731
        width, short_below = 18, 15
    elif engine not in ("vectorised", "python"):
        raise ValueError(f"engine must be 'vectorised' or 'python', got {engine!r}")
    chunks, chunked = _chunks(values)
    parts = [_validate_chunk(chunk, scalar=scalar, fast=fast, width=width, short_below=short_below) for chunk in chunks]
    if not chunked:
        return parts[0]
    return ArrayOutcome(
        status=pa.chunked_array([part.status for part in parts], type=pa.int8()),
        reason=pa.chunked_array([part.reason for part in parts], type=_REASON_TYPE),
        normalized=pa.chunked_array([part.normalized for part in parts], type=pa.string()),
    )


def validate_uscc_array(values: ArrayLike, *, engine: Engine = "vectorised") -> ArrayOutcome:
    """Check a column of unified social credit codes (统一社会信用代码)."""
    return validate_array(values, kind=IdentifierKind.USCC, engine=engine)


def validate_idcard_array(
    values: ArrayLike, *, today: date | None = None, engine: Engine = "vectorised"
) -> ArrayOutcome:
    """Check a column of citizen ID numbers (身份证号码); ``today`` bounds birth dates."""
    return validate_array(values, kind=IdentifierKind.IDCARD, today=today, engine=engine)


def validate_orgcode_array(values: ArrayLike, *, engine: Engine = "vectorised") -> ArrayOutcome:
    """Check a column of organisation codes (组织机构代码); both engines use the scalar check (rare columns)."""
    return validate_array(values, kind=IdentifierKind.ORGCODE, engine=engine)


_REASON_TYPE = pa.dictionary(pa.int8(), pa.string())


def _scalar_validator(kind: IdentifierKind, today: date | None) -> ScalarValidator:
    if kind is IdentifierKind.USCC:
        return validate_uscc
    if kind is IdentifierKind.ORGCODE:
        return validate_orgcode
    day = today or clock.today()
    return lambda value: validate_idcard(value, today=day)


def _chunks(values: ArrayLike) -> tuple[list[pa.Array], bool]:
    if isinstance(values, pa.ChunkedArray):
        chunks = [_as_text(chunk) for chunk in values.chunks] or [pa.array([], type=pa.string())]
        return chunks, True
    if isinstance(values, pa.Array):
        return [_as_text(values)], False
    return [pa.array(list(values), type=pa.string())], False


def _as_text(chunk: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(chunk.type):
        chunk = chunk.dictionary_decode()
    if pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type):
        return chunk
    # Numbers (an ID column typed as integer by a reader), string views, binary: judged on their text.
    return chunk.cast(pa.string())


def _validate_chunk(
    chunk: pa.Array,
    *,
    scalar: ScalarValidator,
    fast: FastEvaluator | None,
    width: int,
    short_below: int,
) -> ArrayOutcome:
    size = len(chunk)
    status = np.full(size, Level.INVALID, dtype=np.int8)
    reason = np.full(size, NO_REASON, dtype=np.int8)
    null = chunk.is_null().to_numpy(zero_copy_only=False) if chunk.null_count else np.zeros(size, dtype=bool)
    needs_scalar = ~null
    if fast is not None and size:
        lengths = _byte_lengths(chunk)
        fixed = lengths == width
        if fixed.all():
            # Every slot (nulls' too) holds exactly width bytes: the data buffer is the matrix, and the verdicts
            # are the column's as they are (a null's is masked below); no gather, no scatter.
            level, why, scalar_rows = fast(_fixed_width_matrix(chunk, fixed, np.arange(size), width))
            status, reason = level, np.where(null, NO_REASON, why).astype(np.int8) if chunk.null_count else why
            needs_scalar = scalar_rows & ~null
        else:
            # Fewer bytes than the shortest form can never strip down to a valid length.
            short = ~null & (lengths < short_below)
            reason[short] = REASON_INDEX[Reason.BAD_LENGTH]
            fixed &= ~null
            rows = np.flatnonzero(fixed)
            matrix = _fixed_width_matrix(chunk, fixed, rows, width, lengths=lengths)
            level, why, scalar_rows = fast(matrix)
            status[rows] = level
            reason[rows] = why
            needs_scalar = ~null & ~short & ~fixed
            needs_scalar[rows[scalar_rows]] = True
    normalized = _run_scalar(chunk, np.flatnonzero(needs_scalar), scalar, status, reason)
    return ArrayOutcome(
        status=pa.array(status, type=pa.int8(), mask=null if chunk.null_count else None),
        reason=pa.DictionaryArray.from_arrays(
            pa.array(reason, type=pa.int8(), mask=reason == NO_REASON), reason_dictionary()
        ),
        normalized=normalized,
    )


def _run_scalar(
    chunk: pa.Array, rows: np.ndarray, scalar: ScalarValidator, status: np.ndarray, reason: np.ndarray
) -> pa.Array:
    """Judge ``rows`` one by one, writing into status/reason; returns the normalized column."""
    size = len(chunk)
    if not len(rows):
        return pa.nulls(size, type=pa.string())
    suggestions: list[str | None] = [None]
    slot = np.zeros(size, dtype=np.int32)
    values = chunk.take(pa.array(rows)).to_pylist()
    for row, value in zip(rows.tolist(), values, strict=True):
        outcome = scalar(value)
        if outcome is None:  # only nulls, which never reach here
            continue
        status[row] = outcome.level
        reason[row] = REASON_INDEX[outcome.reason] if outcome.reason is not None else NO_REASON
        if outcome.normalized is not None:
            slot[row] = len(suggestions)
            suggestions.append(outcome.normalized)
    if len(suggestions) == 1:
        return pa.nulls(size, type=pa.string())
    return pc.take(pa.array(suggestions, type=pa.string()), pa.array(slot))


def _byte_lengths(chunk: pa.Array) -> np.ndarray:
    offsets = _offsets(chunk)
    return np.diff(offsets)


def _offsets(chunk: pa.Array) -> np.ndarray:
    dtype = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    buffer = chunk.buffers()[1]
    return np.frombuffer(buffer, dtype=dtype)[chunk.offset : chunk.offset + len(chunk) + 1]


def _fixed_width_matrix(chunk: pa.Array, fixed: np.ndarray, rows: np.ndarray, width: int,
                        lengths: np.ndarray | None = None) -> np.ndarray:
    """The selected rows' bytes as an (m x width) uint8 matrix; zero-copy when the selected rows lie back to
    back in the data buffer (every row selected, or every other one empty: nulls read from Parquet)."""
    if len(rows) == 0:
        return np.zeros((0, width), dtype=np.uint8)
    back_to_back = len(rows) == len(chunk) or (lengths is not None and not lengths[~fixed].any())
    if not back_to_back:
        # Arrow's filter lays the kept strings out back to back, so the matrix is a plain reshape again.
        chunk = chunk.filter(pa.array(fixed))
    start = int(_offsets(chunk)[0])
    data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)
    return data[start : start + len(rows) * width].reshape(len(rows), width)

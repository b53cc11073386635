"""Benchmark: identifier validation (统一社会信用代码, 身份证号码), vectorised vs per-value Python.

``run()`` builds 5,000,000 realistic codes without a Python loop (mostly valid: real authority/category mixes,
current division codes, old numeric and new ``MA`` organisation codes with correct check characters; 0.5%
single-character typos, 0.1% nulls), times the vectorised validator on one core (best of 3) and the
per-value Python path on a 200,000-row sample, prints both and returns them; then the same for 5,000,000 ID
numbers of the enterprise sample's legal representatives. It writes no files.

Each figure is given twice: values per second of elapsed time and values per CPU second of the validating
thread (``..._per_cpu_s``). On a shared machine the elapsed figure moves with other work; the CPU figure
barely does, and ``identifiers_load_average_1m`` says how busy the machine was. Target: >= 20 M/s on one core.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_uscc.py``
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from quality.identifiers import USCC_ALPHABET, USCC_WEIGHTS, all_divisions, validate_uscc_array
from quality.identifiers.orgcode import ORG_WEIGHTS

ROWS = 5_000_000
PYTHON_SAMPLE = 200_000
REPEATS = 3

# Authority + category (登记管理部门 + 机构类别) with rough real-world shares: enterprises and individual
# businesses dominate; public institutions, social organisations and cooperatives follow.
_KIND_SHARES = {"91": 0.70, "92": 0.20, "93": 0.03, "12": 0.02, "11": 0.01, "51": 0.02, "52": 0.015, "N2": 0.015}
_NEW_ORGCODE_SHARE = 0.6  # post-2015 "MA..." organisation codes versus carried-over numeric GB 11714 codes


def make_uscc_array(
    rows: int, *, seed: int = 20_151_001, typo_share: float = 0.005, null_share: float = 0.001
) -> pa.Array:
    """``rows`` realistic USCC strings as one Arrow string array, generated with numpy only."""
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
    codes = np.empty((rows, 18), dtype=np.uint8)

    kinds = np.frombuffer("".join(_KIND_SHARES).encode(), dtype=np.uint8).reshape(-1, 2)
    shares = np.array(list(_KIND_SHARES.values()))
    codes[:, 0:2] = kinds[rng.choice(len(kinds), size=rows, p=shares / shares.sum())]

    current = np.array([int(code) for code, division in all_divisions().items() if division.in_force])
    division = current[rng.integers(0, len(current), size=rows)]
    for position in range(6):
        codes[:, 7 - position] = ord("0") + division // 10**position % 10

    new_style = rng.random(rows) < _NEW_ORGCODE_SHARE
    digits = ord("0") + rng.integers(0, 10, size=(rows, 8), dtype=np.uint8)
    letters = alphabet[rng.integers(0, 31, size=(rows, 8))]
    body = np.where(new_style[:, None], letters, digits)
    body[new_style, 0:2] = np.frombuffer(b"MA", dtype=np.uint8)
    codes[:, 8:16] = body
    codes[:, 16] = _orgcode_check_chars(body)
    codes[:, 17] = _uscc_check_chars(codes[:, :17], alphabet)

    typos = np.flatnonzero(rng.random(rows) < typo_share)
    codes[typos, rng.integers(0, 18, size=len(typos))] = alphabet[rng.integers(0, 31, size=len(typos))]

    offsets = np.arange(0, 18 * (rows + 1), 18, dtype=np.int32)
    valid = rng.random(rows) >= null_share
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        pa.string(), rows, [bitmap, pa.py_buffer(offsets), pa.py_buffer(codes.tobytes())], int((~valid).sum())
    )


def _orgcode_check_chars(body: np.ndarray) -> np.ndarray:
    values = np.where(body >= ord("A"), body.astype(np.int64) - ord("A") + 10, body.astype(np.int64) - ord("0"))
    check = 11 - (values @ np.array(ORG_WEIGHTS)) % 11
    return np.where(check == 10, ord("X"), np.where(check == 11, ord("0"), ord("0") + check)).astype(np.uint8)


def _uscc_check_chars(first17: np.ndarray, alphabet: np.ndarray) -> np.ndarray:
    lookup = np.zeros(256, dtype=np.int64)
    lookup[alphabet] = np.arange(31)
    total = lookup[first17] @ np.array(USCC_WEIGHTS)
    return alphabet[-total % 31]


def _best_seconds(action, repeats: int) -> tuple[float, float]:
    """The best elapsed and the best CPU seconds (this thread's) of ``repeats`` runs."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.thread_time()
        action()
        best, best_cpu = min(best, time.perf_counter() - started), min(best_cpu, time.thread_time() - cpu)
    return best, best_cpu


def make_idcard_array(rows: int) -> pa.Array:
    from samples.enterprises import iter_enterprise_batches

    batches = iter_enterprise_batches(rows=rows, seed=5, batch_rows=500_000)
    return pa.concat_arrays([batch.column("legal_rep_id") for batch in batches])


def run() -> dict[str, float]:
    import os

    from quality.identifiers import validate_idcard_array

    figures: dict[str, float] = {}
    for name, values, check in (("uscc", make_uscc_array(ROWS), validate_uscc_array),
                                ("idcard", make_idcard_array(ROWS), validate_idcard_array)):
        check(values.slice(0, 1_000))  # load division data and build lookup tables outside the clock
        load = os.getloadavg()[0]
        seconds, cpu = _best_seconds(lambda check=check, values=values: check(values), REPEATS)
        sample = values.slice(0, PYTHON_SAMPLE)
        python = PYTHON_SAMPLE / _best_seconds(lambda check=check, sample=sample: check(sample, engine="python"),
                                               1)[0]
        vectorised = ROWS / seconds
        print(f"{name} vectorised: {vectorised:,.0f} values/s, {ROWS / cpu:,.0f} per CPU second ({ROWS:,} rows, "
              f"best of {REPEATS}, load average {load:.2f}); per-value Python {python:,.0f} values/s; "
              f"{vectorised / python:,.1f}x")
        figures.update({f"{name}_values_per_s": vectorised, f"{name}_values_per_cpu_s": ROWS / cpu,
                        f"{name}_python_values_per_s": python, f"{name}_vectorised_vs_python_ratio": vectorised / python,
                        f"{name}_load_average_1m": round(load, 2)})
    figures["identifiers_target_values_per_s"] = 20e6
    return figures


if __name__ == "__main__":
    run()

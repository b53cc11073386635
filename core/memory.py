"""Giving freed memory back to the system after a run (释放空闲内存).

A run frees what it allocated, but the allocators keep the pages: Arrow's pool (mimalloc) holds freed pages for
reuse, and glibc keeps each thread's arena (the key scan's and the readers' threads, where the database drivers
allocate) at its high mark. A process that runs one sync after another (the CLI's ``--attempts``, the API
server's runs, a worker) then starts every run from the last one's peak: measured on the 5 M-row bench, the
resident memory between incremental runs grew from 340 to 430 MiB over three runs, and the next run's peak
with it, past the 512 MiB bound. Handing the free pages back costs a few milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)


def _malloc_trim():  # noqa: ANN202 - a ctypes function or None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc.malloc_trim if libc is not None else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_TRIM = _malloc_trim()


def give_back_free_memory() -> None:
    """Return the pages the allocators hold free to the system (Arrow's pool, then glibc's arenas)."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
        if _TRIM is not None:
            _TRIM(0)
    except Exception:  # noqa: BLE001 - only memory is at stake, never the run
        log.debug("could not release free memory", exc_info=True)

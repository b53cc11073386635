"""Key files (.npy) are opened by several threads at once: the key scan's range threads, the interface's
lookups. Their headers are parsed by ast.literal_eval, and CPython 3.11 keeps an AST's recursion bookkeeping
per interpreter: two threads parsing at once failed a sync with "SystemError: AST constructor recursion depth
mismatch" (python/cpython#106905). Forced here by a garbage collection, which lets another thread run, at
every allocation."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import numpy as np


def test_key_files_open_in_many_threads_at_once(tmp_path: Path) -> None:
    from pipeline.locator import Mapped, load_npy

    path = tmp_path / "part.keys.npy"
    np.save(path, np.arange(100, dtype=np.int64))
    failures: list[str] = []

    def open_often() -> None:
        for _ in range(300):
            try:
                mapped = Mapped(path, random=True)
                assert int(mapped.array[-1]) == 99
                mapped.close()
                assert load_npy(path, mmap_mode="r")[7] == 7 and load_npy(path)[8] == 8
            except Exception as exc:  # noqa: BLE001 - every failure is reported
                failures.append(repr(exc))

    def switch(phase: str, info: dict) -> None:
        time.sleep(0)

    threshold = gc.get_threshold()
    gc.callbacks.append(switch)
    gc.set_threshold(1)
    try:
        threads = [threading.Thread(target=open_often) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(switch)
    assert not failures, failures[:3]

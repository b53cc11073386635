"""Read ahead in a background thread, so the source's fetch overlaps the pipeline's checks and writes."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetched(source: Iterator[T], *, depth: int = 4) -> Iterator[T]:
    """Yield what `source` yields, produced up to `depth` items ahead; memory stays bounded by depth.

    Arrow and database drivers release the GIL while they fetch and convert, so the producer thread
    runs in parallel with the consumer's Arrow compute and Parquet writing. An error in the producer is
    raised in the consumer; closing the consumer stops the producer.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            buffer.put(exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None and stop.is_set():
                close()

    worker = threading.Thread(target=produce, name="govshare-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                buffer.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.1)

"""Independent chunks of array work on every core: numpy releases the GIL inside its loops, so a
thread pool suffices. Results come back in input order, so they are the same as a plain loop's."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

WORKERS = min(4, os.cpu_count() or 1)
_pool: ThreadPoolExecutor | None = None


def map_chunks(fn: Callable, items: Iterable) -> list:
    global _pool
    items = list(items)
    if WORKERS == 1 or len(items) < 2:
        return [fn(item) for item in items]
    if _pool is None:
        _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="qcompile")
    return list(_pool.map(fn, items))

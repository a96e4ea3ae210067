"""One ordered parallel map for forge's worker pools: results in input order, bounded work in flight.

The OpenAPI ingest (shards of specs), the trajectory synthesis (chunks of APIs) and the Python
module introspection (one sandboxed child per module) all hand work to a pool and must neither
read their whole input ahead nor let results come back out of order: part files and rows are
numbered by input position, and counts merge the same way on every run.

Processes are spawned, not forked, so a worker starts clean under a threaded orchestrator
(no inherited locks, Arrow buffers or threads). ``threads=True`` uses threads instead, for work
whose cost is already in a child process of its own (the introspection children).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    *,
    window: int | None = None,
    threads: bool = False,
) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in the order of ``items``, computed on ``workers`` workers.

    ``items`` is read lazily: at most ``window`` items (default ``2 * workers``) are submitted and
    not yet yielded, so memory is bounded by the window however long the input is. With
    ``workers <= 1`` everything runs in this process, one item after another (same results).

    A worker's exception is raised here when its item's turn comes, after every earlier result
    was yielded; the items still in flight are cancelled (those already running finish first).
    With processes, ``fn`` and the items must be picklable (a module-level function).
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    window = max(1, window if window is not None else 2 * workers)
    pool: Executor = (
        ThreadPoolExecutor(workers)
        if threads
        else ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    )
    with pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

"""One ordered parallel map for forge's worker pools: results in input order, bounded work in flight.

The OpenAPI ingest (shards of specs), the trajectory synthesis (chunks of APIs) and the Python
module introspection (one sandboxed child per module) all hand work to a pool and must neither
read their whole input ahead nor let results come back out of order: part files and rows are
numbered by input position, and counts merge the same way on every run.

Processes are spawned, not forked, so a worker starts clean under a threaded orchestrator
(no inherited locks, Arrow buffers or threads). ``threads=True`` uses threads instead, for work
whose cost is already in a child process of its own (the introspection children).

Bad input must not stop a run, so the pool is built to survive its items:

- ``errors="return"`` turns an item whose ``fn`` raised (any ``Exception``, ``RecursionError``
  and ``MemoryError`` included) into an :class:`ItemFailed` in its place: the caller counts it as a
  skip and goes on;
- a worker that dies (killed, out of memory, a crash in C code) breaks a process pool and fails
  every item in flight. The pool is rebuilt and those items are run again **one at a time**, so a
  second death names its culprit: that item is failed with reason ``worker_died`` (or raised as
  :class:`WorkerDied` under ``errors="raise"``) and the innocent ones finish normally;
- workers die with the process that started them (``PR_SET_PDEATHSIG`` on Linux, a watch thread
  elsewhere): a ``kill -9`` of the parent leaves no idle orphans behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Linux prctl option: the signal the kernel sends a process when its parent (thread) exits.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ItemFailed:
    """Stands in for the result of an item that did not complete (``ordered_map(errors="return")``).

    ``index`` is the item's position in the input; ``reason`` a short kind for drop counters
    (the exception's class name, or ``worker_died``); ``detail`` one line for the drop examples.
    """

    index: int
    reason: str
    detail: str


class WorkerDied(RuntimeError):
    """A worker process died twice while running the same item (``ordered_map(errors="raise")``)."""


class TimeLimitExceeded(Exception):
    """Raised inside :func:`time_limit` when its work ran past the limit."""


def die_with_parent(parent_pid: int | None = None, signum: int = signal.SIGKILL) -> None:
    """Make this process die when its parent does (call it first thing in a worker or child).

    On Linux the kernel sends ``signum`` (SIGKILL unless a child should shut down cleanly, e.g.
    SIGINT to a server that stops its own children) when the parent exits, even by ``kill -9``: no
    Python code has to run for it. The signal is tied to the parent *thread* that created this process; every
    pool here is created and fed from the thread that also waits for it, so that is the same
    lifetime. Elsewhere a daemon thread polls the parent pid every half second. ``parent_pid``
    closes the race of a parent that died before this call (then this process exits at once).
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    else:
        _start_parent_watch(parent_pid or os.getppid())
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def _start_parent_watch(parent_pid: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _limit_memory(memory_bytes: int | None) -> None:
    """Cap this process's address space: a runaway allocation raises MemoryError in it, here."""
    if memory_bytes is None:
        return
    import resource

    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _worker_init(parent_pid: int, memory_bytes: int | None) -> None:
    die_with_parent(parent_pid)
    _limit_memory(memory_bytes)


def worker_pool(workers: int, *, memory_bytes: int | None = None) -> ProcessPoolExecutor:
    """A spawned process pool whose workers die with this process and (optionally) have an
    address-space cap of ``memory_bytes``; for callers that need the pool itself (async code)."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(os.getpid(), memory_bytes),
    )


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` in the block after ``seconds`` of wall time.

    Uses SIGALRM, so it only acts in the main thread of a process (a pool worker's task runs
    there); elsewhere, or with ``seconds`` None, it does nothing. Pure-Python loops are stopped
    at once; a long C call (one huge ``json.loads``) is stopped when it returns.
    """
    if (
        not seconds
        or threading.current_thread() is not threading.main_thread()
        or not hasattr(signal, "SIGALRM")
    ):
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise TimeLimitExceeded(f"time limit of {seconds:g} s exceeded")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Slot:
    """One input item on its way: its future (None while waiting to be rerun) and deaths seen."""

    __slots__ = ("index", "item", "future", "deaths")

    def __init__(self, index: int, item: Any, future: Future | None) -> None:
        self.index, self.item, self.future, self.deaths = index, item, future, 0


def _lost(future: Future | None) -> bool:
    """Whether a future went down with its pool (not finished, or finished by the break)."""
    if future is None or not future.done():
        return True
    return not future.cancelled() and isinstance(future.exception(), BrokenProcessPool)


def _failure(index: int, exc: BaseException) -> ItemFailed:
    detail = f"{type(exc).__name__}: {str(exc)[:300]}"
    return ItemFailed(index, type(exc).__name__, detail)


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    *,
    window: int | None = None,
    threads: bool = False,
    errors: Literal["raise", "return"] = "raise",
    retries: int = 1,
    memory_bytes: int | None = None,
) -> Iterator[R | ItemFailed]:
    """Yield ``fn(item)`` for each item, in the order of ``items``, computed on ``workers`` workers.

    ``items`` is read lazily: at most ``window`` items (default ``2 * workers``) are submitted and
    not yet yielded, so memory is bounded by the window however long the input is. With
    ``workers <= 1`` everything runs in this process, one item after another (same results).

    ``errors="raise"``: an item's exception is raised here when its turn comes, after every earlier
    result was yielded; the items still in flight are cancelled (those already running finish
    first). ``errors="return"``: an :class:`ItemFailed` is yielded in its place instead.

    A process worker that dies fails only the items in flight; they are rerun one at a time in a
    fresh pool, and an item whose worker dies more than ``retries`` times fails with reason
    ``worker_died``. ``memory_bytes`` caps each worker's address space (processes only), so an
    allocation past it is a ``MemoryError`` of that item. With processes, ``fn`` and the items
    must be picklable (a module-level function).
    """
    if workers <= 1:
        for index, item in enumerate(items):
            try:
                yield fn(item)
            except Exception as exc:  # RecursionError and MemoryError are Exceptions too
                if errors == "raise":
                    raise
                yield _failure(index, exc)
        return
    window = max(1, window if window is not None else 2 * workers)

    def new_pool() -> Executor:
        return ThreadPoolExecutor(workers) if threads else worker_pool(workers, memory_bytes=memory_bytes)

    pool = new_pool()

    def submit(item: T) -> Future:
        try:
            return pool.submit(fn, item)
        except BrokenProcessPool as exc:  # broke while filling: handled like a break seen on a result
            lost: Future = Future()
            lost.set_exception(exc)
            return lost

    source = enumerate(items)
    pending: deque[_Slot] = deque()
    exhausted = False
    try:
        while True:
            # Fill the window, unless items of a broken pool are waiting to be rerun alone.
            while not exhausted and len(pending) < window and all(s.future is not None for s in pending):
                nxt = next(source, None)
                if nxt is None:
                    exhausted = True
                    break
                pending.append(_Slot(nxt[0], nxt[1], submit(nxt[1])))
            if not pending:
                return
            head = pending[0]
            if head.future is None:  # rerun after a break: alone, so a second death is its own
                head.future = submit(head.item)
            try:
                value = head.future.result()
            except BrokenProcessPool:
                pool.shutdown(wait=True, cancel_futures=True)
                pool = new_pool()
                for slot in pending:
                    if _lost(slot.future):
                        slot.deaths += 1
                        slot.future = None
                if head.deaths > retries:
                    pending.popleft()
                    detail = f"a worker died running item {head.index} ({head.deaths} times)"
                    if errors == "raise":
                        raise WorkerDied(detail) from None
                    yield ItemFailed(head.index, "worker_died", detail)
                continue
            except Exception as exc:
                pending.popleft()
                if errors == "raise":
                    raise
                yield _failure(head.index, exc)
                continue
            pending.popleft()
            yield value
    finally:
        for slot in pending:
            if slot.future is not None:
                slot.future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)

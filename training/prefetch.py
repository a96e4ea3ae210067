"""A background-thread prefetcher over any BatchSource, with pinned host memory and exact resume state.

Reading windows from memory-mapped shards and collating SFT rows is host work; done inline it leaves the
GPU idle between steps. The prefetcher keeps `depth` micro-batches ready (pinned, so the copy to the GPU
is asynchronous). Its `state()` is the source's position after the last batch *handed out*, not the
last one read ahead, so a checkpoint taken mid-stream resumes on exactly the next unseen batch.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import torch


class Prefetcher:
    """Wraps `source` (next_batch / eval_batches / state / load_state) for a fixed micro-batch size.

    The reader thread starts on the first `next_batch`. An exception in the thread is re-raised in the
    caller on the batch where it happened. Call `close()` when done (the loop does, in `finally`).
    """

    def __init__(self, source: Any, batch_size: int, depth: int = 2, pin_memory: bool = False) -> None:
        if depth < 1:
            raise ValueError("prefetch depth must be >= 1")
        self.source, self.batch_size, self.depth, self.pin = source, batch_size, depth, pin_memory
        self._state = source.state()
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _run(self, q: queue.Queue, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                batch = self.source.next_batch(self.batch_size)
                if self.pin:
                    batch = {k: v.pin_memory() for k, v in batch.items()}
                item: tuple[str, Any, Any] = ("ok", batch, self.source.state())
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, re-raised there
                item = ("error", e, None)
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[0] == "error":
                return

    def next_batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        if batch_size != self.batch_size:
            raise ValueError(f"prefetcher built for micro-batch {self.batch_size}, asked for {batch_size}")
        if self._thread is None:
            self._stop = threading.Event()
            self._queue = queue.Queue(maxsize=self.depth)
            self._thread = threading.Thread(
                target=self._run, args=(self._queue, self._stop), name="batch-prefetch", daemon=True
            )
            self._thread.start()
        assert self._queue is not None
        kind, payload, state = self._queue.get()
        if kind == "error":
            self.close()
            raise payload
        self._state = state
        return payload

    def eval_batches(self, batch_size: int, max_batches: int) -> list[dict[str, torch.Tensor]]:
        """Held-out batches straight from the source (they do not move the training position)."""
        return self.source.eval_batches(batch_size, max_batches)

    def state(self) -> dict[str, Any]:
        return dict(self._state)

    def load_state(self, state: dict[str, Any]) -> None:
        """Drop whatever was read ahead and continue from `state`."""
        self.close()
        self.source.load_state(state)
        self._state = self.source.state()

    def close(self) -> None:
        """Stop the reader thread and rewind the source to the last batch handed out (batches read ahead
        are discarded, so a later `next_batch` continues without a gap)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread, self._queue = None, None
            self.source.load_state(self._state)

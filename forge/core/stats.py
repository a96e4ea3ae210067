"""Counting what a step kept and dropped, by reason — nothing is dropped silently."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class StepStats:
    """Per-step counters: rows in, rows kept, rows dropped by reason, and a few examples.

    ``examples`` keeps up to ``max_examples`` (reason, detail) pairs per reason so an asset can
    show *what* was dropped in its metadata without holding every rejected row in memory.
    """

    name: str
    n_in: int = 0
    n_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 3
    #: events that are not drops (a truncated description, a cut recursive schema), by kind
    notes: Counter = field(default_factory=Counter)

    def keep(self, n: int = 1) -> None:
        self.n_in += n
        self.n_kept += n

    def drop(self, reason: str, detail: Any = "") -> None:
        self.n_in += 1
        self.dropped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < self.max_examples:
            ex.append(str(detail)[:300])
        if self.dropped[reason] <= self.max_examples:
            log.warning("%s: dropped (%s) %s", self.name, reason, str(detail)[:300])

    def note(self, event: str, n: int = 1) -> None:
        self.notes[event] += n

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def merge(self, other: StepStats) -> None:
        self.n_in += other.n_in
        self.n_kept += other.n_kept
        self.dropped.update(other.dropped)
        self.notes.update(other.notes)
        for reason, ex in other.examples.items():
            mine = self.examples.setdefault(reason, [])
            mine.extend(ex[: max(0, self.max_examples - len(mine))])

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "n_in": self.n_in,
            "n_kept": self.n_kept,
            "n_dropped": self.n_dropped,
            "dropped_by_reason": dict(self.dropped),
            "examples": self.examples,
            "notes": dict(self.notes),
        }

"""Quality filters over rows (datatrove style): each filter answers keep, or drop with a reason.

A filter is a callable ``row -> None | str``: ``None`` keeps the row, a string is the drop reason
(``"too_short"``, ``"non_alnum_fraction"``...). ``apply_filters`` runs a list of them in order,
counts every drop by reason in a ``StepStats`` and can hand dropped rows to a sink (e.g. to be
written to ``raw.dropped_rows``), so nothing is dropped silently. The text field defaults to
``"text"`` (general documents); pass ``field=`` for others (e.g. ``"description"`` on API rows).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from forge.core.stats import StepStats

Filter = Callable[[dict[str, Any]], str | None]


def _text(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    return value if isinstance(value, str) else ""


@dataclass
class MinChars:
    """Drop rows whose text is shorter than ``min_chars`` characters (after stripping)."""

    min_chars: int = 50
    field: str = "text"

    def __call__(self, row: dict[str, Any]) -> str | None:
        return "too_short" if len(_text(row, self.field).strip()) < self.min_chars else None


@dataclass
class MaxChars:
    """Drop rows whose text is longer than ``max_chars`` characters."""

    max_chars: int = 1_000_000
    field: str = "text"

    def __call__(self, row: dict[str, Any]) -> str | None:
        return "too_long" if len(_text(row, self.field)) > self.max_chars else None


@dataclass
class MaxNonAlnumFraction:
    """Drop rows where more than ``max_fraction`` of non-whitespace characters are not
    alphanumeric (encoded blobs, ASCII art, symbol soup)."""

    max_fraction: float = 0.5
    field: str = "text"

    def __call__(self, row: dict[str, Any]) -> str | None:
        chars = [c for c in _text(row, self.field) if not c.isspace()]
        if not chars:
            return None
        other = sum(1 for c in chars if not c.isalnum())
        return "non_alnum_fraction" if other / len(chars) > self.max_fraction else None


@dataclass
class MaxLineLength:
    """Drop rows with any line longer than ``max_line_chars`` (minified or generated code, data
    dumps); with ``mean=True`` the mean line length is tested instead."""

    max_line_chars: int = 1000
    mean: bool = False
    field: str = "text"

    def __call__(self, row: dict[str, Any]) -> str | None:
        lines = _text(row, self.field).splitlines() or [""]
        value = sum(map(len, lines)) / len(lines) if self.mean else max(map(len, lines))
        return "long_lines" if value > self.max_line_chars else None


@dataclass
class MaxRepeatedLines:
    """Drop rows where the lines that occur more than once make up more than ``max_fraction`` of
    all non-empty lines (boilerplate, logs, generated tables). Rows with < ``min_lines`` lines pass."""

    max_fraction: float = 0.3
    min_lines: int = 5
    field: str = "text"

    def __call__(self, row: dict[str, Any]) -> str | None:
        lines = [ln.strip() for ln in _text(row, self.field).splitlines() if ln.strip()]
        if len(lines) < self.min_lines:
            return None
        counts = Counter(lines)
        repeated = sum(n for n in counts.values() if n > 1)
        return "repeated_lines" if repeated / len(lines) > self.max_fraction else None


@dataclass
class ExactDedup:
    """Drop a row whose ``key`` (default ``sha256``) was already seen in this stream. Stateful:
    use one instance per stream. Rows without the key pass (nothing to compare)."""

    key: str = "sha256"
    seen: set[str] = field(default_factory=set)

    def __call__(self, row: dict[str, Any]) -> str | None:
        value = row.get(self.key)
        if value is None:
            return None
        if value in self.seen:
            return "exact_duplicate"
        self.seen.add(value)
        return None


def apply_filters(
    rows: Iterable[dict[str, Any]],
    filters: list[Filter],
    stats: StepStats,
    on_drop: Callable[[dict[str, Any], str], None] | None = None,
    detail_field: str = "uri",
) -> Iterator[dict[str, Any]]:
    """Yield the rows every filter keeps; the first filter that drops a row gives the reason.

    Drops are counted in ``stats`` (reason, with the row's ``detail_field`` as the example) and
    passed to ``on_drop(row, reason)`` when given, e.g. to collect ``raw.dropped_rows``.
    """
    for row in rows:
        reason = None
        for f in filters:
            reason = f(row)
            if reason:
                break
        if reason:
            stats.drop(reason, row.get(detail_field) or row.get("api_id") or "")
            if on_drop is not None:
                on_drop(row, reason)
            continue
        stats.keep()
        yield row


def default_text_filters() -> list[Filter]:
    """The filters the lead's general-document assets start from (bounds in characters)."""
    return [
        MinChars(50),
        MaxChars(500_000),
        MaxNonAlnumFraction(0.5),
        MaxLineLength(1000),
        MaxRepeatedLines(0.3),
        ExactDedup(),
    ]

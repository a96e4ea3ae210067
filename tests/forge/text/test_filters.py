"""Filters answer keep/drop with a reason, and apply_filters counts every drop."""

from __future__ import annotations

from forge.core.io import sha256_text
from forge.core.stats import StepStats
from forge.text.filters import (
    ExactDedup,
    MaxChars,
    MaxLineLength,
    MaxNonAlnumFraction,
    MaxRepeatedLines,
    MinChars,
    apply_filters,
    default_text_filters,
)


def _doc(uri: str, text: str) -> dict:
    return {"uri": uri, "text": text, "sha256": sha256_text(text)}


def test_each_filter_reason() -> None:
    assert MinChars(10)(_doc("u", "short")) == "too_short"
    assert MinChars(3)(_doc("u", "long enough")) is None
    assert MaxChars(5)(_doc("u", "too long text")) == "too_long"
    assert MaxNonAlnumFraction(0.5)(_doc("u", "%%%%$$$$ ab")) == "non_alnum_fraction"
    assert MaxNonAlnumFraction(0.5)(_doc("u", "plain words, mostly.")) is None
    assert MaxLineLength(100)(_doc("u", "ok\n" + "x" * 101)) == "long_lines"
    assert MaxLineLength(100, mean=True)(_doc("u", "ok\n" + "x" * 101)) is None
    assert MaxRepeatedLines(0.3)(_doc("u", "same\n" * 5 + "a\nb\n")) == "repeated_lines"
    assert MaxRepeatedLines(0.3)(_doc("u", "a\nb\nc\nd\ne\nf\ng\na\n")) is None  # 2 of 8 lines repeated
    dedup = ExactDedup()
    assert dedup(_doc("u1", "x")) is None and dedup(_doc("u2", "x")) == "exact_duplicate"
    assert MinChars(5, field="description")({"description": "abcdef"}) is None
    assert MinChars(5, field="description")({"description": None}) == "too_short"


def test_apply_filters_counts_and_sinks_drops() -> None:
    good = "A real paragraph of documentation text that is long enough to keep around.\n" * 1
    rows = [
        _doc("a", good),
        _doc("b", "tiny"),
        _doc("c", good),  # exact duplicate of a
        _doc("d", "line\n" * 20 + good),
        _doc("e", "x" * 2000),
    ]
    stats = StepStats("filters")
    dropped: list[tuple[str, str]] = []
    kept = list(
        apply_filters(
            rows, default_text_filters(), stats, on_drop=lambda r, why: dropped.append((r["uri"], why))
        )
    )
    assert [r["uri"] for r in kept] == ["a"]
    assert dropped == [
        ("b", "too_short"),
        ("c", "exact_duplicate"),
        ("d", "repeated_lines"),
        ("e", "long_lines"),
    ]
    assert stats.n_in == 5 and stats.n_kept == 1 and stats.examples["too_short"] == ["b"]

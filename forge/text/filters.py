"""Quality filters over rows (datatrove style): each filter answers keep, or drop with a reason.

A filter is a callable ``row -> None | str``: ``None`` keeps the row, a string is the drop reason
(``"too_short"``, ``"non_alnum_fraction"``...). ``apply_filters`` runs a list of them in order,
counts every drop by reason in a ``StepStats`` and can hand dropped rows to a sink (e.g. to be
written to ``raw.dropped_rows``), so nothing is dropped silently. The text field defaults to
``"text"`` (general documents); pass ``field=`` for others (e.g. ``"description"`` on API rows).

The checks cover length (:class:`MinChars`, :class:`MaxChars`), symbols (:class:`MaxNonAlnumFraction`,
:class:`MaxSymbolWordRatio`), minified lines (:class:`MaxLineLength`), repetition
(:class:`MaxRepeatedLines`, :class:`MaxRepeatedNgrams`), boilerplate (:class:`MaxBoilerplateLines`),
encoding damage (:class:`MaxEncodingDamage`) and language (:class:`EnglishText`: a stopword
heuristic, offline and dependency-free — no language-ID model is installed or downloaded).
:class:`FilterConfig` holds the thresholds of one pipeline; its presets (:func:`filter_config`) are
what every source runs: general code and text, agent documents, crawled pages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from forge.core.stage import StageConfig
from forge.core.stats import StepStats

Filter = Callable[[dict[str, Any]], str | None]
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_ASCII_SPACE = bytes(c for c in range(128) if chr(c).isspace())
_ASCII_ALNUM_OR_SPACE = bytes(c for c in range(128) if chr(c).isspace() or chr(c).isalnum())


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
        text = _text(row, self.field)
        # the ASCII characters counted in C (bytes.translate); the few others one by one
        data = text.encode("ascii", "ignore")
        n_visible = len(data.translate(None, _ASCII_SPACE))
        other = len(data.translate(None, _ASCII_ALNUM_OR_SPACE))
        if len(data) < len(text):
            for c in _NON_ASCII.findall(text):
                if not c.isspace():
                    n_visible += 1
                    other += not c.isalnum()
        if not n_visible:
            return None
        return "non_alnum_fraction" if other / n_visible > self.max_fraction else None


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


#: the 120 most frequent English function words (articles, pronouns, prepositions, auxiliaries)
ENGLISH_STOPWORDS = frozenset(
    """a about above after again all also an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just may me might more
    most must my no nor not now of off on once only or other our out over own same shall she should
    so some such than that the their them then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your
    used use using returns return see value values default""".split()
)
_WORD = re.compile(r"[^\W\d_]+")


@dataclass
class EnglishText:
    """Drop text that is not English: fewer than ``min_stopword_fraction`` of its words (in the
    first ``sample_chars`` characters) are English function words, or fewer than
    ``min_ascii_letter_fraction`` of its letters are ASCII (another script). Texts with fewer than
    ``min_words`` words pass (too little to tell). English prose scores ~0.4, API reference text
    ~0.2, German or French written in Latin script under 0.08."""

    min_stopword_fraction: float = 0.1
    min_ascii_letter_fraction: float = 0.7
    min_words: int = 30
    sample_chars: int = 20_000
    field: str = "text"

    def __call__(self, row: dict[str, Any]) -> str | None:
        sample = _text(row, self.field)[: self.sample_chars]
        words = _WORD.findall(sample)
        if len(words) < self.min_words:
            return None
        n_letters = sum(map(len, words))
        n_ascii = sum(len(w) for w in words if w.isascii())
        if n_ascii < self.min_ascii_letter_fraction * n_letters:
            return "not_english"
        hits = sum(map(ENGLISH_STOPWORDS.__contains__, map(str.lower, words)))
        return "not_english" if hits < self.min_stopword_fraction * len(words) else None


_MOJIBAKE = re.compile("\ufffd|[\u00c3\u00c2][\u0080-\u00bf]|\u00e2\u20ac|[\x00-\x08\x0b\x0e-\x1f\x7f]")


@dataclass
class MaxEncodingDamage:
    """Drop text with more than ``max_per_1000`` damaged characters per 1,000: U+FFFD replacement
    characters, UTF-8 read as Latin-1/cp1252 (``Ã©``, ``â€™``, ``Â``+symbol) and control characters
    other than tab, newline, carriage return and form feed."""

    max_per_1000: float = 1.0
    field: str = "text"

    def __call__(self, row: dict[str, Any]) -> str | None:
        text = _text(row, self.field)
        if not text:
            return None
        damaged = len(_MOJIBAKE.findall(text))
        return "encoding_damage" if damaged * 1000 > self.max_per_1000 * len(text) else None


_BOILERPLATE = re.compile(
    r"cookie|javascript (is )?(disabled|required)|enable javascript|all rights reserved|privacy policy|"
    r"terms (of|and) (use|service|conditions)|subscribe|skip to (main )?content|powered by|"
    r"^\W*(©|\(c\)|copyright)\b",
    re.I,
)
#: words that are boilerplate when they are a whole line (navigation links)
_NAV_LINES = frozenset(
    "home next previous back to top share menu search sign in sign up sign out log in log out login "
    "logout prev up top".split()
) | {"back to top", "sign in", "sign up", "sign out", "log in", "log out", "skip to content"}
#: a text holding none of these (lowercased) has no line _BOILERPLATE can match: skip the line scan
_BOILER_HINTS = ("cookie", "javascript", "reserved", "privacy", "terms ", "subscribe", "skip to", "powered by",
                 "©", "(c)", "copyright")  # fmt: skip
_EDGE_PUNCTUATION = " \t\r*-_=|>#[](){}<.:;,!?\"'`\u2022\u00bb\u00ab\u2190\u2192"


@dataclass
class MaxBoilerplateLines:
    """Drop rows where more than ``max_fraction`` of the non-empty lines are web boilerplate
    (cookie and legal notices, sign-in, navigation words, "powered by", copyright lines). Rows with
    fewer than ``min_lines`` lines pass."""

    max_fraction: float = 0.3
    min_lines: int = 5
    field: str = "text"

    def __call__(self, row: dict[str, Any]) -> str | None:
        text = _text(row, self.field)
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) < self.min_lines:
            return None
        boiler = sum(1 for ln in lines if len(ln) < 40 and ln.strip(_EDGE_PUNCTUATION).lower() in _NAV_LINES)
        lowered = text.lower()
        if any(h in lowered for h in _BOILER_HINTS):
            boiler += sum(1 for ln in lines if len(ln) < 200 and _BOILERPLATE.search(ln))
        return "boilerplate" if boiler > self.max_fraction * len(lines) else None


@dataclass
class MaxSymbolWordRatio:
    """Drop text with more than ``max_ratio`` hash signs and ellipses per word (Gopher's rule:
    tag lists, ASCII rulers, truncated snippets)."""

    max_ratio: float = 0.1
    field: str = "text"

    def __call__(self, row: dict[str, Any]) -> str | None:
        text = _text(row, self.field)
        words = len(text.split())  # whitespace-separated words, as Gopher counts them
        if not words:
            return None
        symbols = text.count("#") + text.count("...") + text.count("\u2026")
        return "symbol_ratio" if symbols > self.max_ratio * words else None


@dataclass
class MaxRepeatedNgrams:
    """Drop text where more than ``max_fraction`` of its word ``n``-grams occur more than once
    (text repeated inside the document: spam, generated tables, a paragraph pasted many times).
    Texts with fewer than ``min_words`` words pass."""

    n: int = 10
    max_fraction: float = 0.5
    min_words: int = 50
    field: str = "text"

    def __call__(self, row: dict[str, Any]) -> str | None:
        words = _WORD.findall(_text(row, self.field))
        if len(words) < max(self.min_words, self.n + 1):
            return None
        # words -> ids, n-grams -> a 64-bit polynomial hash (vectorized), then count distinct hashes
        vocab: dict[str, int] = {}
        ids = np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.uint64, count=len(words))
        total = len(words) - self.n + 1
        hashes = np.zeros(total, dtype=np.uint64)
        for i in range(self.n):
            hashes = hashes * np.uint64(1_000_003) + ids[i : i + total]
        _, counts = np.unique(hashes, return_counts=True)
        repeated = total - int(np.count_nonzero(counts == 1))
        return "repeated_ngrams" if repeated > self.max_fraction * total else None


class FilterConfig(StageConfig):
    """Thresholds of one filter pipeline, in the order the filters run; ``None`` turns a filter off."""

    min_chars: int = 50
    max_chars: int = 500_000
    max_encoding_damage_per_1000: float | None = 1.0
    max_non_alnum_fraction: float | None = 0.5
    max_line_chars: int | None = 1000
    max_repeated_lines: float | None = 0.3
    max_repeated_ngrams: float | None = 0.5
    max_boilerplate_lines: float | None = 0.3
    max_symbol_word_ratio: float | None = 0.1
    #: least share of English function words (None: no language check, e.g. for code)
    min_english_stopwords: float | None = 0.1

    def filters(self) -> list[Filter]:
        """The filters, cheapest and most specific first (the first to drop names the reason)."""
        out: list[Filter] = [MinChars(self.min_chars), MaxChars(self.max_chars)]
        if self.max_encoding_damage_per_1000 is not None:
            out.append(MaxEncodingDamage(self.max_encoding_damage_per_1000))
        if self.max_non_alnum_fraction is not None:
            out.append(MaxNonAlnumFraction(self.max_non_alnum_fraction))
        if self.max_line_chars is not None:
            out.append(MaxLineLength(self.max_line_chars))
        if self.max_repeated_lines is not None:
            out.append(MaxRepeatedLines(self.max_repeated_lines))
        if self.max_repeated_ngrams is not None:
            out.append(MaxRepeatedNgrams(max_fraction=self.max_repeated_ngrams))
        if self.max_boilerplate_lines is not None:
            out.append(MaxBoilerplateLines(self.max_boilerplate_lines))
        if self.max_symbol_word_ratio is not None:
            out.append(MaxSymbolWordRatio(self.max_symbol_word_ratio))
        if self.min_english_stopwords is not None:
            out.append(EnglishText(self.min_english_stopwords))
        return out


def filter_config(kind: Literal["code", "text", "agent", "web"], min_chars: int = 50) -> FilterConfig:
    """The preset of one kind of document. Code: operators are not noise (looser symbol bounds),
    ``#`` is a comment, and the language is a programming language. Agent documents (API reference
    and tool-call transcripts) legitimately repeat field names and JSON, so repetition, line and
    symbol bounds are looser; their prose is still checked for English. ``text`` and ``web``
    (crawled pages) share the defaults."""
    if kind == "code":
        return FilterConfig(
            min_chars=min_chars,
            max_non_alnum_fraction=0.6,
            max_repeated_lines=0.5,
            max_repeated_ngrams=0.8,
            max_boilerplate_lines=None,  # licence headers are comments, not page furniture
            max_symbol_word_ratio=None,
            min_english_stopwords=None,
        )
    if kind == "agent":
        # measured on 18,883 documents of 600 OpenAPI specs: every operation of an API repeats its
        # header parameters (AWS's X-Amz-*), enum lists make long lines, and newsletter or auth
        # APIs are full of "subscribe" and "sign in": none of it is noise here
        return FilterConfig(
            min_chars=min_chars,
            max_non_alnum_fraction=0.6,
            max_line_chars=20_000,
            max_repeated_lines=None,
            max_repeated_ngrams=0.95,
            max_boilerplate_lines=None,  # "subscribe", "sign in", "log out" are operations here
            max_symbol_word_ratio=0.5,
            min_english_stopwords=0.03,
        )
    return FilterConfig(min_chars=min_chars)


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


def filter_crawled_pages(
    documents_dir: Path, dropped_path: Path, cfg: FilterConfig | None = None
) -> dict[str, Any]:
    """Run the ``web`` preset over the crawled pages of ``documents_dir`` (raw.documents) that have
    text, and write what it drops to ``dropped_path`` (``DROPPED_ROWS``, asset ``documents``). The
    crawl's own table is left whole (it is the crawl's record); the warehouse leaves the dropped
    pages out of the corpus candidates. Returns the drops by reason (the asset's metadata)."""
    from contracts.tables import DROPPED_ROWS
    from forge.core.io import iter_parquet_rows, write_parquet

    cfg = cfg if cfg is not None else filter_config("web")
    stats = StepStats("page_filters")
    dropped: list[dict[str, Any]] = []
    pages = (
        {"text": r.get("text"), "uri": r.get("uri")}
        for r in iter_parquet_rows(documents_dir)
        if r.get("text") and r.get("status") in (200, 304)
    )

    def on_drop(row: dict[str, Any], reason: str) -> None:
        dropped.append({"asset": "documents", "reason": reason, "detail": None, "source_uri": row["uri"]})

    for _ in apply_filters(pages, cfg.filters(), stats, on_drop=on_drop):
        pass
    write_parquet(dropped_path, dropped, DROPPED_ROWS)
    return {"n_pages": stats.n_in, "n_kept": stats.n_kept, "dropped": dict(stats.dropped)}

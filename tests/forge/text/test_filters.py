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


# --- the filters every source runs: language, encoding, boilerplate, symbols, repetition ----------

from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from contracts import tables  # noqa: E402
from forge.core.io import read_parquet_rows  # noqa: E402
from forge.text.filters import (  # noqa: E402
    EnglishText,
    FilterConfig,
    MaxBoilerplateLines,
    MaxEncodingDamage,
    MaxRepeatedNgrams,
    MaxSymbolWordRatio,
    filter_config,
    filter_crawled_pages,
)

ENGLISH = (
    "The function returns a list of the files that were found in the directory, sorted by name. "
    "If the directory does not exist, an error is raised and nothing is written to the output. "
    "Use the recursive option when you want the files of every subdirectory as well."
)
GERMAN = (
    "Die Funktion gibt eine Liste der Dateien zurück, die im Verzeichnis gefunden wurden, sortiert "
    "nach Namen. Wenn das Verzeichnis nicht existiert, wird ein Fehler ausgelöst und nichts wird "
    "geschrieben. Verwenden Sie die rekursive Option, wenn Sie auch die Dateien aller Unterordner wollen."
)
CHINESE = (
    "该函数返回在目录中找到的文件列表，按名称排序。如果目录不存在，则会引发错误，并且不会写入任何内容。" * 4
)


def test_english_heuristic() -> None:
    assert EnglishText()({"text": ENGLISH}) is None
    assert EnglishText()({"text": GERMAN}) == "not_english"
    assert EnglishText(min_words=5)({"text": CHINESE + " " + ENGLISH[:80]}) == "not_english"
    assert EnglishText()({"text": "Too few words to tell."}) is None  # under min_words: kept


def test_encoding_damage() -> None:
    assert MaxEncodingDamage()({"text": ENGLISH}) is None
    assert MaxEncodingDamage()({"text": ENGLISH.replace("the", "thÃ©")}) == "encoding_damage"
    assert MaxEncodingDamage()({"text": ENGLISH + "\ufffd" * 5}) == "encoding_damage"
    assert MaxEncodingDamage()({"text": ENGLISH.replace(" ", "\x07", 3)}) == "encoding_damage"
    assert MaxEncodingDamage(max_per_1000=50)({"text": ENGLISH + "\ufffd"}) is None


def test_boilerplate_symbols_and_repetition() -> None:
    page = "\n".join(
        ["Home", "Next", "We use cookies to improve your experience.", "Sign in", ENGLISH, "Share"]
    )
    assert MaxBoilerplateLines(0.3)({"text": page}) == "boilerplate"
    assert (
        MaxBoilerplateLines(0.3)({"text": "\n".join([ENGLISH] * 6 + ["Next", "Previous"])}) is None
    )  # 2 of 8
    assert MaxSymbolWordRatio(0.1)({"text": "#tag #more #tags ... and words"}) == "symbol_ratio"
    assert MaxSymbolWordRatio(0.1)({"text": ENGLISH + " # one heading"}) is None
    assert MaxRepeatedNgrams(n=5, max_fraction=0.5)({"text": ENGLISH * 4}) == "repeated_ngrams"
    assert MaxRepeatedNgrams(n=5, max_fraction=0.5)({"text": ENGLISH + " " + GERMAN}) is None


def test_presets_and_config() -> None:
    code = filter_config("code")
    assert code.min_english_stopwords is None and code.max_symbol_word_ratio is None
    py = {
        "text": "# Sum the values.\n\ndef f(x):\n    # the keys are ignored\n    return sum(v for _k, v in x.items())\n"
    }
    assert [f for f in code.filters() if f(py)] == []  # code is not judged as English prose
    assert len(FilterConfig(max_repeated_ngrams=None, min_english_stopwords=None).filters()) == 8
    with pytest.raises(ValueError, match="extra"):
        FilterConfig(max_word=3)  # a misspelled threshold is an error, not ignored


def test_filter_crawled_pages(tmp_path: Path) -> None:
    docs = tmp_path / "documents"
    docs.mkdir()
    rows = [
        {"uri": "http://x/en.html", "status": 200, "text": ENGLISH},
        {"uri": "http://x/de.html", "status": 200, "text": GERMAN},
        {"uri": "http://x/short.html", "status": 304, "text": "Next"},
        {"uri": "http://x/gone.html", "status": 404, "text": None},
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=tables.DOCUMENTS), docs / "site.parquet")
    meta = filter_crawled_pages(docs, tmp_path / "_dropped" / "documents.parquet")
    assert meta == {"n_pages": 3, "n_kept": 1, "dropped": {"not_english": 1, "too_short": 1}}
    dropped = read_parquet_rows([tmp_path / "_dropped" / "documents.parquet"])
    assert {(d["asset"], d["reason"], d["source_uri"]) for d in dropped} == {
        ("documents", "not_english", "http://x/de.html"),
        ("documents", "too_short", "http://x/short.html"),
    }

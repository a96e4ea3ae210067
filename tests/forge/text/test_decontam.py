"""N-gram decontamination: planted benchmark text is found, near-misses and tiny items are not."""

from __future__ import annotations

import pytest

from forge.core.stats import StepStats
from forge.text.decontam import build_index, find_contamination, ngrams, normalize_words

QUESTION = "Find the area of a triangle with a base of 10 units and a height of 5 units."  # 18 words
ITEMS = [
    ("simple_1", "bfcl", QUESTION),
    (
        "simple_2",
        "bfcl",
        "What is the current stock price of Apple and Microsoft on the NASDAQ exchange today?",
    ),
    ("short_1", "bfcl", "Book a flight to Tokyo."),  # 5 words < n: matched by its full sequence
    ("tiny_1", "bfcl", "Yes, continue."),  # 2 words: too short to match safely, skipped
    (
        "api_9",
        "heldout_api",
        "Returns the list of invoices for a customer, filtered by status and date range.",
    ),
]
FILLER = "Our documentation explains how the service handles pagination and rate limits for every endpoint. "


@pytest.fixture(scope="module")
def index():
    return build_index(ITEMS, n=8)


def test_normalize_and_ngrams():
    assert normalize_words("Hello, WORLD! get_weather(city='Zürich') 3.5") == [
        "hello",
        "world",
        "get",
        "weather",
        "city",
        "zürich",
        "3",
        "5",
    ]
    assert ngrams(["a", "b", "c", "d"], 3) == {("a", "b", "c"), ("b", "c", "d")}
    assert ngrams(["a", "b"], 3) == set()
    with pytest.raises(ValueError):
        ngrams(["a"], 0)


def test_index_skips_tiny_items_and_counts_them(index):
    assert index.n_items == 4
    assert dict(index.stats.dropped) == {"too_few_words": 1}
    assert index.lengths == {5, 8}


def test_planted_overlap_is_found_despite_case_and_punctuation(index):
    planted = FILLER * 3 + QUESTION.upper().replace(" ", "  ").replace(".", "!") + " " + FILLER
    rows = list(
        find_contamination(
            [{"doc_id": "doc1", "text": planted}, {"doc_id": "clean", "text": FILLER * 5}], index
        )
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row["doc_id"], row["benchmark"], row["item_id"]) == ("doc1", "bfcl", "simple_1")
    assert row["n_shared_ngrams"] == 18 - 8 + 1  # every 8-gram of the question
    assert row["example_ngram"] in " ".join(normalize_words(QUESTION))
    assert len(row["example_ngram"].split()) == 8


def test_near_miss_is_not_flagged(index):
    words = QUESTION.split()
    # 1) Only 7 consecutive words of the question (one short of n).
    seven = " ".join(words[:7])
    # 2) The whole question with two words changed (positions 7 and 10): every 8-word window of
    #    the 18 covers one of them, so a light paraphrase shares no 8-gram.
    changed = " ".join(words[:7] + ["the", "base", "of", "12"] + words[11:])
    assert len(changed.split()) == 18 and changed != QUESTION
    assert index.matches(FILLER + seven + " something else entirely " + FILLER) == []
    assert index.matches(changed) == []
    assert index.matches(QUESTION) == [("bfcl", "simple_1", 11)]


def test_short_item_matched_by_full_sequence_only(index):
    assert index.matches("Please book a flight to Tokyo, next Monday.") == [("bfcl", "short_1", 1)]
    assert index.matches("Please book a flight to Osaka, next Monday.") == []
    assert index.matches("Yes, continue. Yes, continue.") == []  # tiny item skipped


def test_min_shared_threshold_and_partial_overlap(index):
    doc = {"doc_id": "d", "text": FILLER + " ".join(QUESTION.split()[:10]) + " " + FILLER}  # 3 shared 8-grams
    assert [r["n_shared_ngrams"] for r in find_contamination([doc], index)] == [3]
    assert list(find_contamination([doc], index, min_shared=4)) == []


def test_multiple_benchmarks_and_missing_text_counted(index):
    stats = StepStats("decontam")
    docs = [
        {
            "doc_id": "a",
            "text": "See: returns the list of invoices for a customer, filtered by status and date range. "
            + QUESTION,
        },
        {"doc_id": "b", "text": None},
    ]
    rows = list(find_contamination(docs, index, stats=stats))
    assert {(r["benchmark"], r["item_id"]) for r in rows} == {("heldout_api", "api_9"), ("bfcl", "simple_1")}
    assert stats.n_kept == 1 and dict(stats.dropped) == {"missing_text": 1}


def test_configurable_n():
    idx = build_index([("q", "bfcl", "alpha beta gamma delta epsilon zeta")], n=3)
    assert idx.matches("x beta gamma delta y") == [("bfcl", "q", 1)]
    assert (
        build_index([("q", "bfcl", "alpha beta gamma delta epsilon zeta")], n=8).matches(
            "x beta gamma delta y"
        )
        == []
    )


def test_counting_runs_and_stock_phrases_are_not_contamination():
    from forge.text.decontam import NgramIndex, find_contamination

    index = NgramIndex(n=8)
    index.add("java_9", "bfcl", "sort the array 1 2 3 4 5 6 7 8 in place")
    assert not index.add("live_863", "bfcl", "You are a helpful assistant", min_item_words=6)
    docs = [
        {"doc_id": "code", "text": "xs = [1, 2, 3, 4, 5, 6, 7, 8]"},
        {"doc_id": "chat", "text": "System: You are a helpful assistant. User: hi"},
        {"doc_id": "leak", "text": "please sort the array 1 2 3 4 5 6 7 8 in place now"},
    ]
    hits = {row["doc_id"] for row in find_contamination(docs, index)}
    assert hits == {"leak"}


# --- every benchmark: BFCL questions and function documents, HumanEval, held-out APIs --------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from forge.core.io import read_parquet_rows  # noqa: E402
from forge.text.decontam import (  # noqa: E402
    HumanEvalItemsConfig,
    benchmark_index,
    contamination_rows,
    distinct_function_docs,
    function_doc_text,
    write_humaneval_items,
)

FUNCTION = {
    "name": "geometry.calculate_triangle_area",
    "description": "Calculate the area of a triangle given its base and height.",
    "parameters": {
        "type": "dict",
        "properties": {
            "base": {"type": "integer", "description": "The base of the triangle in units."},
            "unit": {"type": "dict", "properties": {"name": {"type": "string", "description": "Unit name."}}},
        },
    },
}
HUMANEVAL_FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "humaneval" / "problems.jsonl"


def test_function_docs_text_and_distinct() -> None:
    text = function_doc_text(FUNCTION)
    assert text.startswith("geometry.calculate_triangle_area Calculate the area")
    assert "The base of the triangle in units." in text and "Unit name." in text
    other = {**FUNCTION, "description": "A different document under the same name, for another item."}
    items = [json.dumps([FUNCTION]), json.dumps([FUNCTION, other]), "not json", None]
    docs = list(distinct_function_docs(items))
    assert [i for i, _ in docs] == ["geometry.calculate_triangle_area", "geometry.calculate_triangle_area#2"]


def test_humaneval_items_stage_and_every_benchmark(tmp_path: Path) -> None:
    meta = write_humaneval_items(
        HumanEvalItemsConfig(), problems_path=HUMANEVAL_FIXTURE, out_dir=tmp_path / "he"
    )
    rows = read_parquet_rows([tmp_path / "he"])
    assert meta == {"n_rows": 6, "n_problems": 3} and {r["part"] for r in rows} == {
        "prompt",
        "canonical_solution",
    }
    prompt = next(r for r in rows if r["item_id"] == "HumanEval/0" and r["part"] == "prompt")["text"]
    solution = next(r for r in rows if r["item_id"] == "HumanEval/0" and r["part"] == "canonical_solution")[
        "text"
    ]

    index = benchmark_index(
        8,
        bfcl_questions=[("simple_1", QUESTION)],
        bfcl_functions=[json.dumps([FUNCTION])],
        humaneval=[(r["item_id"], r["part"], r["text"]) for r in rows],
        heldout_apis=[("api_9", ITEMS[4][2])],
    )
    docs = [
        {"doc_id": "leak_q", "text": "Forum post: " + QUESTION},
        {
            "doc_id": "leak_fn",
            "text": "Tool: Calculate the area of a triangle given its base and height. Done.",
        },
        {"doc_id": "leak_prompt", "text": "# copied\n" + prompt},
        {"doc_id": "leak_solution", "text": "def f(numbers, threshold):\n" + solution},
        {
            "doc_id": "clean",
            "text": "A page about something else entirely, with no benchmark text at all in it.",
        },
    ]
    found = {(r["doc_id"], r["benchmark"], r["reason"]) for r in contamination_rows(docs, index)}
    assert ("leak_q", "bfcl", "question") in found
    assert ("leak_fn", "bfcl", "function_doc") in found
    assert ("leak_prompt", "humaneval", "prompt") in found
    assert ("leak_solution", "humaneval", "canonical_solution") in found
    assert not any(d == "clean" for d, _, _ in found)

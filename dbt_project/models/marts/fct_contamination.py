"""Corpus documents that share word n-grams with an evaluation item: one row per (document, item).

Benchmarks: the official BFCL test questions, and the held-out providers' API documentation (the
unseen-API benchmark). The matching itself lives in ``forge.text.decontam`` so it is tested without
dbt; this model only feeds it the tables and returns what it found.
"""

import pandas as pd

from forge.text.decontam import NgramIndex, find_contamination

COLUMNS = ["doc_id", "benchmark", "item_id", "n_shared_ngrams", "example_ngram"]


def _rows(relation, columns):
    """Stream a DuckDB relation as dicts, a batch at a time (memory stays flat)."""
    reader = relation.select(", ".join(columns)).to_arrow_reader(10_000)
    for batch in reader:
        yield from batch.to_pylist()


def model(dbt, session):
    dbt.config(materialized="table")
    n = int(dbt.config.get("ngram") or 8)

    bfcl = dbt.ref("stg_bfcl__items")
    # Held-out APIs are matched on their own words (names, summaries, descriptions), not on our
    # rendered documentation, whose template phrases every API document shares.
    heldout = dbt.ref("int_heldout_api_operations")
    docs = dbt.ref("int_deduplicated_corpus_documents")

    index = NgramIndex(n=n)
    for r in _rows(bfcl, ["item_id", "question_text"]):
        # Questions shorter than the n-gram are matched whole, from 6 words up: shorter ones are
        # stock phrases ("You are a helpful assistant") that every chat transcript repeats.
        index.add(r["item_id"], "bfcl", r["question_text"], min_item_words=min(n, 6))
    for r in _rows(heldout, ["api_id", "summary", "description"]):
        # Short API phrases ("List all users") recur across unrelated APIs: only full n-grams count.
        text = " ".join(filter(None, [r["summary"], r["description"]]))
        index.add(r["api_id"], "heldout_api", text, min_item_words=n)

    found = list(find_contamination(_rows(docs, ["doc_id", "text"]), index))
    return pd.DataFrame(found, columns=COLUMNS)
